#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/deploy without a cluster, an image build or a Prometheus server. Kubernetes: the
# manifests parse, and say what sockway needs (hostNetwork, the node's bpffs and cgroup2, the
# capabilities of the systemd unit, the init containers' load and apply, the watcher, a probe
# on sockwayd's admin port, a grace period above preStop and the drain); their commands run
# here (the ConfigMap's policy applied to a test pin directory, sockwayd with the manifest's
# options answering the probe). The Containerfile installs the packages of the libraries the
# binaries link. Prometheus: promtool checks the rules and their unit tests, and a live
# /metrics scrape after traffic that reaches every metric the rules read.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

# Debian's python, which has python3-yaml; the python3 on PATH may be another.
PY=/usr/bin/python3
K=tools/deploy/kubernetes
PROM=tools/deploy/prometheus
P_SWD=$(port 0)
SWD_ADMIN=$(port 1)
P_OK=$(port 10)
P_FAIL=$(port 11)
P_SHADOW=$(port 12)
P_CLOSED=$(port 13)

# yaml_json FILE: the documents of FILE as one JSON array.
yaml_json() {
	"$PY" -c 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))' "$1"
}

for f in "$K"/*.yaml "$PROM"/*.yml; do
	if yaml_json "$f" >"$TMP/$(basename "$f").json" 2>"$TMP/yaml.err"; then
		pass "$f is YAML"
	else
		fail "$f is YAML" "$(head -c 400 "$TMP/yaml.err")"
	fi
done

# --- the DaemonSet -------------------------------------------------------------------------------
# ds FILTER: jq -r FILTER on the DaemonSet's pod spec.
ds() {
	jq -r ".[0].spec.template.spec | $1" "$TMP/daemonset.yaml.json"
}
ALL='(.initContainers + .containers)[]'
eq "daemonset.yaml is a DaemonSet" "$(jq -r '.[0].kind' "$TMP/daemonset.yaml.json")" DaemonSet
eq "in the host's network namespace" "$(ds .hostNetwork)" true
eq "the node's bpffs and cgroup2 are host paths" \
	"$(ds '[.volumes[] | select(.hostPath) | "\(.name)=\(.hostPath.path)"] | sort | join(" ")')" \
	"bpffs=/sys/fs/bpf cgroup2=/sys/fs/cgroup"
eq "every container mounts both where the node has them" \
	"$(ds "[$ALL | [.volumeMounts[] | select(.name == \"bpffs\" or .name == \"cgroup2\") | .mountPath] | sort | join(\",\")] | unique | join(\" \")")" \
	"/sys/fs/bpf,/sys/fs/cgroup"
eq "no container is privileged" "$(ds "[$ALL | .securityContext.privileged] | unique | join(\" \")")" false
eq "every container drops all capabilities" \
	"$(ds "[$ALL | .securityContext.capabilities.drop | join(\",\")] | unique | join(\" \")")" ALL
# The unit's bounding set less CAP_NET_BIND_SERVICE (the manifest listens on 8000).
unit_caps=$(sed -n 's/^CapabilityBoundingSet=//p' tools/systemd/sockwayd.service | tr ' ' '\n' |
	grep -v NET_BIND_SERVICE | sed 's/^CAP_//' | sort | tr '\n' ' ')
eq "and adds the systemd unit's ($unit_caps)" \
	"$(ds "[$ALL | .securityContext.capabilities.add | sort | join(\" \")] | unique | join(\"|\")") " \
	"$unit_caps"
eq "as root (sockway refuses anyone else)" "$(ds "[$ALL | .securityContext.runAsUser] | unique | join(\" \")")" 0
eq "the init containers load, then apply the policy file" \
	"$(ds '[.initContainers[] | .command | join(" ")] | join("; ")')" \
	"sockway load; sockway apply -f /etc/sockway/policy.json"
eq "the watcher applies it on every change" \
	"$(ds '.containers[] | select(.name == "policy-watcher") | .command | join(" ")')" \
	"sockway apply -f /etc/sockway/policy.json --watch"
eq "the policy is the ConfigMap's, mounted whole (a subPath mount is never updated)" \
	"$(ds "[$ALL | .volumeMounts[] | select(.name == \"policy\") | \"\(.mountPath) \(.subPath // \"-\")\"] | unique | join(\"|\")")" \
	"/etc/sockway -"
eq "the ConfigMap the volume names is configmap.yaml's" \
	"$(ds '.volumes[] | select(.name == "policy") | .configMap.name')" \
	"$(jq -r '.[0].metadata.name' "$TMP/configmap.yaml.json")"
eq "in the same namespace" "$(jq -r '.[0].metadata.namespace' "$TMP/configmap.yaml.json")" \
	"$(jq -r '.[0].metadata.namespace' "$TMP/daemonset.yaml.json")"

mapfile -t SWD_CMD < <(ds '.containers[] | select(.name == "sockwayd") | .command[]')
admin=$(printf '%s\n' "${SWD_CMD[@]}" | grep -A1 -x -- --admin | tail -n 1)
eq "the readiness probe asks /healthz" "$(ds '.containers[] | select(.name == "sockwayd") | .readinessProbe.httpGet.path')" /healthz
eq "on sockwayd's --admin port" \
	"$(ds '.containers[] | select(.name == "sockwayd") | .readinessProbe.httpGet.port')" "${admin##*:}"
eq "the Prometheus annotation names it too" \
	"$(jq -r '.[0].spec.template.metadata.annotations["prometheus.io/port"]' "$TMP/daemonset.yaml.json")" "${admin##*:}"
drain=$(printf '%s\n' "${SWD_CMD[@]}" | grep -A1 -x -- --drain | tail -n 1)
[ -n "$drain" ] || drain=$("$SOCKWAYD" --help | sed -n 's/.*--drain MS.*(default \([0-9]*\)).*/\1/p')
pre_stop=$(ds '.containers[] | select(.name == "sockwayd") | .lifecycle.preStop.exec.command | select(.[0] == "sleep") | .[1]')
grace=$(ds .terminationGracePeriodSeconds)
ge "terminationGracePeriodSeconds ($grace s) is above preStop ($pre_stop s) and the drain ($drain ms)" \
	"$((grace * 1000))" "$((pre_stop * 1000 + drain + 1))"

# --- the manifest's commands, here ----------------------------------------------------------------
"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["data"]["policy.json"], end="")' \
	"$TMP/configmap.yaml.json" >"$TMP/policy.json"
init_cmd() {
	ds ".initContainers[$1].command[]" | sed "s|^sockway$|$SOCKWAY|; s|^/etc/sockway/policy.json$|$TMP/policy.json|"
}
mapfile -t cmd < <(init_cmd 0)
check "init container 1 ($(ds '.initContainers[0].command | join(" ")')) runs" "${cmd[@]}"
check "the ConfigMap's policy passes sockway apply --dry-run" "$SOCKWAY" apply --dry-run -f "$TMP/policy.json"
mapfile -t cmd < <(init_cmd 1)
check "init container 2 ($(ds '.initContainers[1].command | join(" ")')) applies it" "${cmd[@]}"
eq "the maps hold the ConfigMap's policy (applying it again would change nothing)" \
	"$("$SOCKWAY" apply --dry-run -f "$TMP/policy.json")" "no changes"

# A policy that makes every metric the rules read move: a 5xx backend, a refused one, a shadow.
start_backend ok "$P_OK"
start_backend fail "$P_FAIL" --status 503
start_backend shadow "$P_SHADOW" --status 500
cat >"$TMP/metrics-policy.json" <<EOF
{
  "version": 1,
  "backends": {
    "ok": { "replicas": ["127.0.0.1:$P_OK"] },
    "fail": { "replicas": ["127.0.0.1:$P_FAIL"] },
    "shadow": { "replicas": ["127.0.0.1:$P_SHADOW"] },
    "closed": { "replicas": ["127.0.0.1:$P_CLOSED"] }
  },
  "endpoints": {
    "app": { "route": "/app", "traffic": { "ok": 1 }, "shadows": { "shadow": 1 } },
    "fail": { "route": "/fail", "traffic": { "fail": 1 } },
    "closed": { "route": "/closed", "traffic": { "closed": 1 } }
  }
}
EOF
check "apply the metrics test policy" "$SOCKWAY" apply -f "$TMP/metrics-policy.json"

# sockwayd with the manifest's command line, on this test's ports and the node address 127.0.0.1.
swd_args=()
for a in "${SWD_CMD[@]:1}"; do
	a=${a//\$(NODE_IP)/127.0.0.1}
	a=${a/#0.0.0.0:*/127.0.0.1:$P_SWD}
	swd_args+=("${a/%:${admin##*:}/:$SWD_ADMIN}")
done
echo "# sockwayd ${swd_args[*]}"
start_sockwayd "$P_SWD" "$SWD_ADMIN" "${swd_args[@]}" || { finish; exit 1; }
eq "the probe's request gets ok" "$(curl -s --max-time 30 "http://127.0.0.1:$SWD_ADMIN/healthz")" ok

# --- Prometheus ----------------------------------------------------------------------------------
for i in 1 2 3 4 5; do
	curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$P_SWD/app/$i"
	curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$P_SWD/fail/$i"
	curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$P_SWD/closed/$i"
done
shadow_answered() {
	[ "$(metric 'sockway_responses_total{endpoint="app",backend="shadow",role="shadow",class="5xx"}')" -ge 5 ]
}
wait_until "$WAIT_S" shadow_answered || fail "the shadow's five 500s are counted"
curl -s --max-time 30 "http://127.0.0.1:$SWD_ADMIN/metrics" >"$TMP/metrics"
if command -v promtool >/dev/null; then
	promtool check metrics <"$TMP/metrics" >"$TMP/promtool.out" 2>&1
	eq "promtool check metrics on a live scrape: no problem" "$?:$(cat "$TMP/promtool.out")" "0:"
	check "promtool check rules $PROM/sockway-rules.yml" promtool check rules "$PROM/sockway-rules.yml"
	check "promtool test rules: each alert fires on its case and not on the healthy ones" \
		promtool test rules "$PROM/sockway-rules.test.yml"
else
	fail "promtool is missing (Debian package prometheus, in make deps)"
fi
for m in 'sockway_responses_total{endpoint="fail",backend="fail",role="primary",class="5xx"} 5' \
	'sockway_shadow_status_match_total{endpoint="app",backend="shadow",role="shadow"} 0'; do
	check "the scrape has $m" grep -qxF "$m" "$TMP/metrics"
done
# The first refusal of each worker counts; then the replica is skipped (--replica-down): 503.
ge "and connect_refused errors of the closed backend" \
	"$(awk '$1 == "sockway_upstream_errors_total{endpoint=\"closed\",backend=\"closed\",role=\"primary\",kind=\"connect_refused\"}" { print $2 }' "$TMP/metrics")" 1

# Every metric the rules and their tests read, with every label they name, is in the scrape
# (instance is Prometheus's own).
"$PY" - "$TMP/metrics" "$PROM/sockway-rules.yml" "$PROM/sockway-rules.test.yml" >"$TMP/names.out" <<'EOF'
import re, sys, yaml
scraped = {}
for line in open(sys.argv[1]):
    m = re.match(r"([a-z_]+)(?:\{(.*)\})? ", line)
    if m:
        labels = set(re.findall(r'([a-z_]+)="', m.group(2) or ""))
        scraped.setdefault(m.group(1), set()).update(labels)
# A metric with the labels its selector or test series names: exported with them.
wanted = []
for group in yaml.safe_load(open(sys.argv[2]))["groups"]:
    for rule in group["rules"]:
        names = []
        for name, sel in re.findall(r"(sockway_[a-z_]+)(?:\{([^}]*)\})?", rule["expr"]):
            names.append(name)
            wanted.append((name, set(re.findall(r"([a-z_]+)\s*=", sel))))
        # A "by" or "on" label: some metric of the rule has it.
        for b in re.findall(r"(?:by|on) \(([^)]*)\)", rule["expr"]):
            for label in (l.strip() for l in b.split(",")):
                if label != "instance" and not any(label in scraped.get(n, ()) for n in names):
                    print(f"{rule['alert']}: no metric of it has {label}")
for t in yaml.safe_load(open(sys.argv[3]))["tests"]:
    for s in t["input_series"]:
        name, sel = re.match(r"([a-z_]+)\{(.*)\}", s["series"]).groups()
        wanted.append((name, set(re.findall(r"([a-z_]+)=", sel))))
for name, labels in wanted:
    if name not in scraped:
        print(f"{name}: not exported")
    elif labels - scraped[name] - {"instance"}:
        print(f"{name}: exported without {' '.join(sorted(labels - scraped[name]))}")
print(f"# {len({n for n, _ in wanted})} metrics checked")
EOF
eq "the rules and their tests read metrics sockwayd exports, by labels it gives them" \
	"$(grep -v '^#' "$TMP/names.out")" ""
nr_read=$(sed -n 's/^# \([0-9]*\).*/\1/p' "$TMP/names.out")
ge "(they read $nr_read metrics)" "$nr_read" 5

# --- the Containerfile ------------------------------------------------------------------------------
CF=$K/Containerfile
eq "Containerfile: built on debian:12, run on debian:12-slim" \
	"$(sed -n 's/^FROM \([^ ]*\).*/\1/p' "$CF" | tr '\n' ' ')" "debian:12 debian:12-slim "
check "the build stage runs make install" grep -q '^RUN make install ' "$CF"
build_pkgs=$(sed -n 's/^ARG BUILD_PACKAGES="\(.*\)"/\1/p' "$CF")
for p in $build_pkgs; do
	apt-cache show --no-all-versions "$p" >/dev/null 2>&1 || fail "build package $p is not a Debian package here"
done
pass "its build packages ($(echo "$build_pkgs" | wc -w)) are Debian packages"
# The runtime stage's packages are those of the libraries sockway and sockwayd link (libc6 is
# in the base image).
needed=$(for b in "$SOCKWAY" "$SOCKWAYD"; do readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; done | sort -u |
	while read -r lib; do
		dpkg -S "$(realpath "$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|x86_64|AArch64|aarch64/ { print $NF; exit }')")" 2>/dev/null |
			head -n 1 | cut -d: -f1
	done | grep -vx libc6 | sort -u | tr '\n' ' ')
runtime=$(awk '/^FROM debian:12-slim/ { r = 1 } r' "$CF" | grep -o 'install -y --no-install-recommends [^&]*' |
	sed 's/.*--no-install-recommends //' | tr ' ' '\n' | grep . | sort | tr '\n' ' ')
eq "the runtime stage installs the packages of the linked libraries only" "$runtime" "$needed"

stop_pid "$SWD_PID"
eq "sockwayd with the manifest's options stops cleanly on SIGTERM" "$STOP_RC" 0
finish
