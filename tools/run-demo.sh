#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# make run: loads sockway, starts three demo backends, applies the demo policy (the seed's
# examples) and runs sockwayd on 127.0.0.1:8000 in the foreground. Ctrl-C stops everything
# and unpins what it loaded. The backends run in an accelerated cgroup, so the hop from
# sockwayd (which accelerates its own cgroup) to them takes the kernel fast path when the
# host has cgroup v2; otherwise everything runs over plain TCP.
set -u
cd "$(dirname "$0")/.."
OUTPUT=${OUTPUT:-.output}
SOCKWAY=$OUTPUT/sockway
pids=()
CG=

cleanup() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if [ -n "$CG" ]; then
		"$SOCKWAY" accel del "$CG" >/dev/null 2>&1
		rmdir "$CG" 2>/dev/null
	fi
	"$SOCKWAY" unload >/dev/null 2>&1
	echo "demo stopped: backends and sockwayd ended, maps unpinned"
}

if [ "$(id -u)" != 0 ]; then
	echo "make run needs root (BPF maps under /sys/fs/bpf)" >&2
	exit 1
fi
for port in 8000 8001 9001 9002 9003; do
	if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		echo "port $port on 127.0.0.1 is in use; stop what uses it and run again" >&2
		exit 1
	fi
done
trap cleanup INT TERM EXIT
"$SOCKWAY" load || exit 1
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
if [ -n "$cg2" ] && mkdir -p "$cg2/sockway-demo" && "$SOCKWAY" accel add "$cg2/sockway-demo" >/dev/null; then
	CG=$cg2/sockway-demo
fi
i=1
for name in default_backend canary_backend new_backend; do
	(
		[ -n "$CG" ] && echo $BASHPID >"$CG/cgroup.procs"
		exec "$OUTPUT/tools/swbackend" --name "$name" --listen 127.0.0.1:900$i 2>/dev/null
	) &
	pids+=($!)
	i=$((i + 1))
done
"$SOCKWAY" apply -f tools/demo-policy.json || exit 1
cat <<'TXT'

sockway demo: sockwayd on 127.0.0.1:8000, admin on 127.0.0.1:8001. Try:
  curl http://127.0.0.1:8000/fifty                       # 50/50 default_backend / canary_backend
  curl http://127.0.0.1:8000/canary-test                 # 1% canary_backend
  curl -H 'X-SERVE-SHARD-KEY: user-42' http://127.0.0.1:8000/fifty   # always the same backend
  curl http://127.0.0.1:8000/shadow                      # default_backend; shadows at 0.5 and 0.1
  for i in $(seq 100); do curl -s http://127.0.0.1:8000/fifty; done | sort | uniq -c
  .output/sockway traffic set incremental default_backend=0.5 new_backend=0.5
  .output/sockway traffic set canary-test default_backend=1      # roll back
  .output/sockway stats
  curl http://127.0.0.1:8001/metrics
  .output/sockway accel list                              # what took the kernel fast path
TXT
if [ -n "$CG" ]; then
	cat <<TXT
The kernel routes the requests of clients in an accelerated cgroup, e.g. $CG (the first
requests to each backend go through sockwayd, which then lends the kernel connections):
  sh -c 'echo \$\$ > $CG/cgroup.procs; exec curl -s http://127.0.0.1:8000/fifty/{a,b,c,d,e,f}'
  .output/sockway accel list | grep routed                # requests routed by the kernel ...
  bpftool -j map dump pinned /sys/fs/bpf/sockway/counters |
      jq -c '.[] | select(.formatted.value.shard[0].requests > 0) | {cell: .key, kernel: .formatted.value.shard[0].requests}'
TXT
fi
printf 'Ctrl-C stops everything.\n\n'
"$OUTPUT/sockwayd" --listen 127.0.0.1:8000 --admin 127.0.0.1:8001 &
pids+=($!)
wait "${pids[-1]}"
