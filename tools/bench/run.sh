#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/run.sh: sockwayd side by side with nginx and HAProxy, and with no router at
# all ("direct"), on the same backends, routes and workloads, measured by wrk.
#
#   tools/bench/run.sh [--duration S] [--connections C] [--quick] [...]   (after make, as root)
#
# Everything it starts runs in the foreground as its child (pin dir, backends, sockwayd,
# nginx, HAProxy), on 127.0.0.1 ports derived from its PID, and is stopped and removed on
# exit, error or Ctrl-C. See tools/bench/README.md for the columns and the caveats.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BENCH_DIR=tools/bench
OUTPUT=${OUTPUT:-.output}
SOCKWAY=$OUTPUT/sockway
SOCKWAYD=$OUTPUT/sockwayd
SWBACKEND=$OUTPUT/tools/swbackend

DURATION=10
CONNECTIONS=32
BIG_CONNECTIONS=8
WARMUP=2
WRK_THREADS=2
WORKERS=2
BACKEND_THREADS=2
WORKLOADS="small,keyed,big,shadow"
TARGETS="direct,sockwayd,nginx,haproxy"
BIG_BODY=1048576
CMDLINE="tools/bench/run.sh${*:+ $*}"

usage() {
	cat <<EOF
Usage: tools/bench/run.sh [--duration S] [--connections C] [--quick] [options]

  --duration S          seconds per measured run (default $DURATION)
  --connections C       wrk connections for small, keyed and shadow (default $CONNECTIONS)
  --big-connections C   wrk connections for the 1 MiB workload (default $BIG_CONNECTIONS)
  --quick               3 s runs and 1 s warm-ups
  --warmup S            seconds of warm-up before each measured run (default $WARMUP)
  --workers N           sockwayd workers, nginx workers, HAProxy threads (default $WORKERS)
  --backend-threads N   threads of each swbackend (default $BACKEND_THREADS)
  --workloads LIST      comma-separated subset of $WORKLOADS
  --targets LIST        comma-separated subset of $TARGETS
  -h, --help            this text

Run from the repository root after make, as root. Installs wrk, nginx and haproxy from
Debian when missing. Writes the table to $OUTPUT/bench/results-DATE.md.
EOF
}

need_arg() {
	if [ $# -lt 2 ] || [ -z "$2" ]; then
		echo "run.sh: $1 needs a value" >&2
		exit 2
	fi
}
need_number() {
	case $2 in
	'' | *[!0-9]* | 0)
		echo "run.sh: $1 takes a positive whole number, not \"$2\"" >&2
		exit 2
		;;
	esac
}

while [ $# -gt 0 ]; do
	case $1 in
	--duration) need_arg "$@"; need_number "$1" "$2"; DURATION=$2; shift 2 ;;
	--connections) need_arg "$@"; need_number "$1" "$2"; CONNECTIONS=$2; shift 2 ;;
	--big-connections) need_arg "$@"; need_number "$1" "$2"; BIG_CONNECTIONS=$2; shift 2 ;;
	--warmup) need_arg "$@"; need_number "$1" "$2"; WARMUP=$2; shift 2 ;;
	--workers) need_arg "$@"; need_number "$1" "$2"; WORKERS=$2; shift 2 ;;
	--backend-threads) need_arg "$@"; need_number "$1" "$2"; BACKEND_THREADS=$2; shift 2 ;;
	--workloads) need_arg "$@"; WORKLOADS=$2; shift 2 ;;
	--targets) need_arg "$@"; TARGETS=$2; shift 2 ;;
	--quick) DURATION=3; WARMUP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
	esac
done
# in_list WORD LIST: is WORD one of the comma-separated LIST?
in_list() { [[ ",$2," == *",$1,"* ]]; }
for w in ${WORKLOADS//,/ }; do
	in_list "$w" small,keyed,big,shadow ||
		{ echo "run.sh: unknown workload \"$w\" (small, keyed, big, shadow)" >&2; exit 2; }
done
for t in ${TARGETS//,/ }; do
	in_list "$t" direct,sockwayd,nginx,haproxy ||
		{ echo "run.sh: unknown target \"$t\" (direct, sockwayd, nginx, haproxy)" >&2; exit 2; }
done
# wrk needs at least one connection per thread.
[ "$CONNECTIONS" -lt "$WRK_THREADS" ] && CONNECTIONS=$WRK_THREADS
[ "$BIG_CONNECTIONS" -lt "$WRK_THREADS" ] && BIG_CONNECTIONS=$WRK_THREADS

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
	printf 'run.sh: %s\n' "$*" >&2
	exit 1
}

if [ "$(id -u)" != 0 ]; then
	die "needs root (BPF maps under /sys/fs/bpf, apt-get)"
fi
for bin in "$SOCKWAY" "$SOCKWAYD" "$SWBACKEND"; do
	[ -x "$bin" ] || die "$bin is missing: run make first"
done

# ---------------------------------------------------------------------------------------
# Dependencies. Debian starts a service when its package is installed unless
# /usr/sbin/policy-rc.d says no; we say no for the length of the install (only when no
# policy-rc.d exists already) and disable the units afterwards, so nothing listens on port
# 80 or starts at boot because of us.
# ---------------------------------------------------------------------------------------
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=0

apt_install() {
	local rc
	if [ ! -e "$POLICY_RC" ]; then
		printf '#!/bin/sh\n# tools/bench/run.sh: no service starts during its install\nexit 101\n' \
			>"$POLICY_RC" && chmod 755 "$POLICY_RC" && POLICY_RC_OURS=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$APT_LOG" 2>&1
	rc=$?
	if [ "$POLICY_RC_OURS" = 1 ]; then
		rm -f "$POLICY_RC"
		POLICY_RC_OURS=0
	fi
	return $rc
}

ensure_deps() {
	local want=() pkg unit
	APT_LOG=$(mktemp /tmp/sockway-bench-apt.XXXXXX)
	command -v wrk >/dev/null || want+=(wrk)
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || want+=(nginx)
	command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || want+=(haproxy)
	if [ ${#want[@]} -gt 0 ]; then
		log "installing ${want[*]} from Debian"
		if ! apt_install "${want[@]}"; then
			apt-get update -q >>"$APT_LOG" 2>&1
			if ! apt_install "${want[@]}"; then
				# nginx-light is the smaller flavour; it has mirror, split_clients and hash.
				want=("${want[@]/#nginx/nginx-light}")
				apt_install "${want[@]}" || {
					tail -n 20 "$APT_LOG" >&2
					rm -f "$APT_LOG"
					die "apt-get install ${want[*]} failed"
				}
			fi
		fi
		for pkg in "${want[@]}"; do
			case $pkg in nginx*) unit=nginx ;; haproxy) unit=haproxy ;; *) continue ;; esac
			if command -v systemctl >/dev/null; then
				systemctl disable "$unit.service" >/dev/null 2>&1 || true
			fi
		done
	fi
	rm -f "$APT_LOG"
	PATH=$PATH:/usr/sbin:/sbin
	command -v wrk >/dev/null || die "wrk is missing after install"
	command -v nginx >/dev/null || die "nginx is missing after install"
	command -v haproxy >/dev/null || die "haproxy is missing after install"
}
ensure_deps

# ---------------------------------------------------------------------------------------
# Cleanup: every PID we start is listed; the trap ends them, unpins our pin dir and removes
# the temp dir, on exit, error or Ctrl-C.
# ---------------------------------------------------------------------------------------
PIDS=()
declare -A PID_NAME
WRK_PID=
LOADED=0
TMP=
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-bench-$$

# stop_pid PID: TERM, up to 5 s, then KILL; reaps it and says so if it crashed.
stop_pid() {
	local pid=$1 rc
	kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return; }
	for _ in $(seq 50); do
		pid_running "$pid" || break
		sleep 0.1
	done
	pid_running "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	if [ $rc -gt 128 ] && [ $rc -ne 143 ] && [ $rc -ne 137 ]; then
		log "note: pid $pid ($(pid_name "$pid")) ended with signal $((rc - 128)) when stopped"
	fi
}
# pid_running PID: alive and not a zombie waiting to be reaped.
pid_running() {
	local st
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}
pid_name() {
	local name
	for name in "${!PID_NAME[@]}"; do
		[ "${PID_NAME[$name]}" = "$1" ] && { echo "$name"; return; }
	done
	echo "?"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local rc=$? i
	trap - INT TERM EXIT HUP
	[ -n "$WRK_PID" ] && stop_pid "$WRK_PID"
	# Routers first (newest first), then the backends they talk to.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[i]}"
	done
	if [ "$LOADED" = 1 ]; then
		"$SOCKWAY" unload >/dev/null 2>&1 || log "sockway unload of $SOCKWAY_PIN_ROOT failed"
	fi
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		rm -rf "$TMP"
	fi
	if [ "$POLICY_RC_OURS" = 1 ]; then
		rm -f "$POLICY_RC"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted; cleaning up"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

TMP=$(mktemp -d /tmp/sockway-bench.XXXXXX) || die "mktemp failed"
# nginx's workers run as nobody and must reach their (unused) temp paths under here.
chmod 755 "$TMP"

# ---------------------------------------------------------------------------------------
# Ports: a block of 12 from $$, below the ephemeral range, moved on while any is taken.
# ---------------------------------------------------------------------------------------
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_ports() {
	local base p ok
	base=$((10000 + ($$ % 220) * 100))
	for _ in $(seq 40); do
		ok=1
		for p in $(seq "$base" $((base + 11))); do
			if port_taken "$p"; then
				ok=0
				break
			fi
		done
		if [ $ok = 1 ]; then
			P_B1=$base P_B2=$((base + 1)) P_B3=$((base + 2))
			P_BIG1=$((base + 3)) P_BIG2=$((base + 4))
			P_SOCKWAYD=$((base + 5)) P_ADMIN=$((base + 6))
			P_NGINX=$((base + 7)) P_HAPROXY=$((base + 8))
			return 0
		fi
		base=$((base + 100))
		[ $base -ge 32000 ] && base=10000
	done
	die "no free block of 12 ports on 127.0.0.1 between 10000 and 32000"
}
pick_ports

# ---------------------------------------------------------------------------------------
# Small helpers: HTTP probes, waiting for servers, CPU accounting.
# ---------------------------------------------------------------------------------------

# http_get PORT PATH [HEADER] -> prints the whole response (bodies here are small).
http_get() {
	timeout 3 curl -s -i --max-time 2 ${3:+-H "$3"} "http://127.0.0.1:$1$2" 2>/dev/null
}
# http_status PORT PATH -> prints the status code, or 000.
http_status() {
	timeout 3 curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" \
		2>/dev/null || true
}

# wait_ready NAME PID PORT PATH LOG: waits up to 10 s for 200 on PATH; dies with the log.
wait_ready() {
	local name=$1 pid=$2 port=$3 path=$4 logf=$5 code
	for _ in $(seq 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$logf" >&2
			die "$name (pid $pid) exited during start-up; its log is above"
		fi
		code=$(http_status "$port" "$path")
		[ "$code" = 200 ] && return 0
		sleep 0.1
	done
	tail -n 20 "$logf" >&2
	die "$name did not answer 200 on 127.0.0.1:$port$path within 10 s (last: $code)"
}

# start NAME LOG CMD...: starts CMD in the background, records its PID in START_PID.
start() {
	local name=$1 logf=$2
	shift 2
	"$@" </dev/null >"$logf" 2>&1 &
	START_PID=$!
	PIDS+=("$START_PID")
	PID_NAME[$name]=$START_PID
	log "started $name (pid $START_PID)"
}

CLK_TCK=$(getconf CLK_TCK)
# Room for every connection of every server started below.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# tree_pids PID...: the PIDs and all their descendants (by a scan of /proc).
tree_pids() {
	local -A kids=()
	local f st rest pid out=() queue=("$@")
	for f in /proc/[0-9]*/stat; do
		read -r st 2>/dev/null <"$f" || continue
		pid=${st%% *}
		rest=${st##*) }
		set -- $rest
		kids[$2]+=" $pid"
	done
	while [ ${#queue[@]} -gt 0 ]; do
		pid=${queue[0]}
		queue=("${queue[@]:1}")
		out+=("$pid")
		# shellcheck disable=SC2206
		queue+=(${kids[$pid]:-})
	done
	echo "${out[@]}"
}

# proc_ticks PID...: utime + stime of these processes (all their threads), in clock ticks.
proc_ticks() {
	local pid st rest sum=0
	for pid in "$@"; do
		read -r st 2>/dev/null <"/proc/$pid/stat" || continue
		rest=${st##*) }
		set -- $rest
		sum=$((sum + ${12} + ${13}))
	done
	echo $sum
}

# machine_ticks: busy clock ticks of all CPUs (user nice system irq softirq steal).
machine_ticks() {
	local cpu user nice system idle iowait irq softirq steal rest
	# shellcheck disable=SC2034  # the fields are named for the reader
	read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}

# backend_requests PORT: the swbackend's request counter.
backend_requests() {
	local body
	body=$(timeout 3 curl -s --max-time 2 "http://127.0.0.1:$1/__swbackend/stats" 2>/dev/null)
	body=${body#*\"requests\":}
	body=${body%%,*}
	case $body in '' | *[!0-9]*) echo 0 ;; *) echo "$body" ;; esac
}

# ---------------------------------------------------------------------------------------
# The machine before we add load: how busy is it already (other tenants, leftovers)?
# ---------------------------------------------------------------------------------------
NCPU=$(nproc)
m0=$(machine_ticks)
sleep 2
m1=$(machine_ticks)
IDLE_BUSY=$(awk -v t=$((m1 - m0)) -v hz="$CLK_TCK" -v n="$NCPU" \
	'BEGIN { printf "%.0f", 100 * t / hz / 2 / n }')
log "machine busy before the bench: ${IDLE_BUSY}% of $NCPU CPUs"
[ "$IDLE_BUSY" -gt 10 ] && log "warning: something else is using the CPUs; figures will be noisy"

# ---------------------------------------------------------------------------------------
# Bring everything up.
# ---------------------------------------------------------------------------------------
log "pin dir $SOCKWAY_PIN_ROOT, ports from $P_B1, temp dir $TMP"
"$SOCKWAY" load >"$TMP/load.log" 2>&1 || {
	cat "$TMP/load.log" >&2
	die "sockway load failed"
}
LOADED=1

declare -A BACKEND_PID
for spec in "b1 $P_B1" "b2 $P_B2" "b3 $P_B3" "big1 $P_BIG1 $BIG_BODY" "big2 $P_BIG2 $BIG_BODY"; do
	set -- $spec
	start "backend $1" "$TMP/$1.log" "$SWBACKEND" --name "$1" --listen "127.0.0.1:$2" \
		--threads "$BACKEND_THREADS" ${3:+--body-size "$3"}
	BACKEND_PID[$1]=$START_PID
done
for spec in "b1 $P_B1" "b2 $P_B2" "b3 $P_B3" "big1 $P_BIG1" "big2 $P_BIG2"; do
	set -- $spec
	wait_ready "backend $1" "${BACKEND_PID[$1]}" "$2" /small "$TMP/$1.log"
done

cat >"$TMP/policy.json" <<EOF
{
  "version": 1,
  "backends": {
    "b1": { "replicas": ["127.0.0.1:$P_B1"] },
    "b2": { "replicas": ["127.0.0.1:$P_B2"] },
    "b3": { "replicas": ["127.0.0.1:$P_B3"] },
    "big1": { "replicas": ["127.0.0.1:$P_BIG1"] },
    "big2": { "replicas": ["127.0.0.1:$P_BIG2"] }
  },
  "endpoints": {
    "small": { "route": "/small", "traffic": { "b1": 0.5, "b2": 0.5 } },
    "keyed": { "route": "/keyed", "traffic": { "b1": 0.5, "b2": 0.5 } },
    "big": { "route": "/big", "traffic": { "big1": 0.5, "big2": 0.5 } },
    "shadow": {
      "route": "/shadow",
      "traffic": { "b1": 0.5, "b2": 0.5 },
      "shadows": { "b3": 0.1 }
    }
  }
}
EOF
"$SOCKWAY" apply -f "$TMP/policy.json" >"$TMP/apply.log" 2>&1 || {
	cat "$TMP/apply.log" >&2
	die "sockway apply failed"
}

start sockwayd "$TMP/sockwayd.log" "$SOCKWAYD" --listen "127.0.0.1:$P_SOCKWAYD" \
	--admin "127.0.0.1:$P_ADMIN" --workers "$WORKERS"
SOCKWAYD_PID=$START_PID
wait_ready sockwayd "$SOCKWAYD_PID" "$P_ADMIN" /healthz "$TMP/sockwayd.log"
wait_ready sockwayd "$SOCKWAYD_PID" "$P_SOCKWAYD" /small "$TMP/sockwayd.log"

fill_template() {
	sed -e "s|@TMP@|$TMP|g" -e "s|@WORKERS@|$WORKERS|g" \
		-e "s|@P_B1@|$P_B1|g" -e "s|@P_B2@|$P_B2|g" -e "s|@P_B3@|$P_B3|g" \
		-e "s|@P_BIG1@|$P_BIG1|g" -e "s|@P_BIG2@|$P_BIG2|g" \
		-e "s|@P_NGINX@|$P_NGINX|g" -e "s|@P_HAPROXY@|$P_HAPROXY|g" "$1"
}

mkdir -p "$TMP/nginx"
fill_template "$BENCH_DIR/nginx.conf.in" >"$TMP/nginx/nginx.conf"
nginx -t -q -p "$TMP/nginx/" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" \
	>"$TMP/nginx/test.log" 2>&1 || {
	cat "$TMP/nginx/test.log" >&2
	die "nginx refused its configuration"
}
start nginx "$TMP/nginx/stderr.log" nginx -p "$TMP/nginx/" -e "$TMP/nginx/error.log" \
	-c "$TMP/nginx/nginx.conf" -g 'daemon off;'
NGINX_PID=$START_PID
wait_ready nginx "$NGINX_PID" "$P_NGINX" /small "$TMP/nginx/stderr.log"

fill_template "$BENCH_DIR/haproxy.conf.in" >"$TMP/haproxy.cfg"
haproxy -c -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 || {
	cat "$TMP/haproxy-check.log" >&2
	die "haproxy refused its configuration"
}
start haproxy "$TMP/haproxy.log" haproxy -f "$TMP/haproxy.cfg" -db
HAPROXY_PID=$START_PID
wait_ready haproxy "$HAPROXY_PID" "$P_HAPROXY" /small "$TMP/haproxy.log"

# Each router must route like the policy before anything is measured.
check_route() {
	local name=$1 port=$2 path=$3 expect=$4 resp
	resp=$(http_get "$port" "$path")
	case $resp in
	"HTTP/1.1 200"*) ;;
	*) die "$name: GET $path did not answer 200" ;;
	esac
	if ! grep -qiE "^X-Backend: ($expect)"$'\r'"?$" <<<"$resp"; then
		die "$name: GET $path went to the wrong backend (wanted $expect)"
	fi
}
big_len() {
	timeout 5 curl -s --max-time 4 -o /dev/null -w '%{size_download}' "http://127.0.0.1:$1/big" \
		2>/dev/null || echo 0
}
for spec in "sockwayd $P_SOCKWAYD" "nginx $P_NGINX" "haproxy $P_HAPROXY"; do
	set -- $spec
	check_route "$1" "$2" /small 'b1|b2'
	check_route "$1" "$2" /keyed 'b1|b2'
	check_route "$1" "$2" /shadow 'b1|b2'
	check_route "$1" "$2" /big 'big1|big2'
	[ "$(big_len "$2")" = "$BIG_BODY" ] || die "$1: GET /big did not return $BIG_BODY bytes"
done
log "all servers up and routing"

# ---------------------------------------------------------------------------------------
# Measuring.
# ---------------------------------------------------------------------------------------
cp "$BENCH_DIR/report.lua" "$TMP/report.lua"
cat "$BENCH_DIR/keyed.lua" "$BENCH_DIR/report.lua" >"$TMP/keyed.lua"

# run_wrk SECONDS CONNS SCRIPT URL OUT: wrk in the background so that Ctrl-C is prompt.
run_wrk() {
	wrk -t"$WRK_THREADS" -c"$2" -d"$1"s --latency -s "$3" "$4" >"$5" 2>&1 </dev/null &
	WRK_PID=$!
	wait "$WRK_PID"
	local rc=$?
	WRK_PID=
	return $rc
}

declare -A R_RPS
ANY_ERRORS=0
NOTES=()
ROWS=()

fmt_ms() { awk -v us="$1" 'BEGIN { ms = us / 1000; f = ms < 10 ? "%.2f ms" : "%.1f ms"; printf f, ms }'; }

# measure WORKLOAD TARGET
measure() {
	local wl=$1 tg=$2 port path script conns roots pids out
	local pt0 pt1 mt0 mt1 s1 s2 s3 e1 e2 e3
	case $tg in
	direct) [ "$wl" = big ] && port=$P_BIG1 || port=$P_B1 ;;
	sockwayd) port=$P_SOCKWAYD ;;
	nginx) port=$P_NGINX ;;
	haproxy) port=$P_HAPROXY ;;
	esac
	case $tg in
	direct) [ "$wl" = big ] && roots=${BACKEND_PID[big1]} || roots=${BACKEND_PID[b1]} ;;
	sockwayd) roots=$SOCKWAYD_PID ;;
	nginx) roots=$NGINX_PID ;;
	haproxy) roots=$HAPROXY_PID ;;
	esac
	path=/$wl
	conns=$CONNECTIONS
	[ "$wl" = big ] && conns=$BIG_CONNECTIONS
	script=$TMP/report.lua
	[ "$wl" = keyed ] && script=$TMP/keyed.lua

	if [ "$tg" = haproxy ] && [ "$wl" = shadow ]; then
		ROWS+=("| $wl | haproxy | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
		NOTES+=("shadow/haproxy: n/a, HAProxy has no built-in request mirroring.")
		return
	fi
	log "$wl / $tg: warm-up ${WARMUP}s, then ${DURATION}s with $conns connections"
	run_wrk "$WARMUP" "$conns" "$script" "http://127.0.0.1:$port$path" "$TMP/warmup.out" ||
		die "wrk failed during warm-up of $wl / $tg: $(tail -n 3 "$TMP/warmup.out")"

	# shellcheck disable=SC2086
	pids=$(tree_pids $roots)
	if [ "$wl" = big ]; then
		s1=$(backend_requests "$P_BIG1") s2=$(backend_requests "$P_BIG2") s3=0
	else
		s1=$(backend_requests "$P_B1") s2=$(backend_requests "$P_B2")
		s3=$(backend_requests "$P_B3")
	fi
	# shellcheck disable=SC2086
	pt0=$(proc_ticks $pids)
	mt0=$(machine_ticks)
	out=$TMP/$wl-$tg.out
	run_wrk "$DURATION" "$conns" "$script" "http://127.0.0.1:$port$path" "$out" ||
		die "wrk failed on $wl / $tg: $(tail -n 3 "$out")"
	mt1=$(machine_ticks)
	# shellcheck disable=SC2086
	pt1=$(proc_ticks $pids)
	if ! kill -0 "$roots" 2>/dev/null; then
		case $tg in
		sockwayd) tail -n 20 "$TMP/sockwayd.log" >&2 ;;
		nginx) tail -n 20 "$TMP/nginx/error.log" >&2 ;;
		haproxy) tail -n 20 "$TMP/haproxy.log" >&2 ;;
		esac
		die "$tg (pid $roots) died during the $wl run"
	fi
	if [ "$wl" = big ]; then
		e1=$(backend_requests "$P_BIG1") e2=$(backend_requests "$P_BIG2") e3=0
	else
		e1=$(backend_requests "$P_B1") e2=$(backend_requests "$P_B2")
		e3=$(backend_requests "$P_B3")
	fi

	local line requests duration_us bytes p50_us p99_us connect read write status tmo kv
	line=$(grep '^SWBENCH ' "$out" | tail -n 1)
	[ -n "$line" ] || die "no summary from wrk on $wl / $tg: $(tail -n 5 "$out")"
	for kv in ${line#SWBENCH }; do
		case ${kv%%=*} in
		requests) requests=${kv#*=} ;;
		duration_us) duration_us=${kv#*=} ;;
		bytes) bytes=${kv#*=} ;;
		p50_us) p50_us=${kv#*=} ;;
		p99_us) p99_us=${kv#*=} ;;
		connect) connect=${kv#*=} ;;
		read) read=${kv#*=} ;;
		write) write=${kv#*=} ;;
		status) status=${kv#*=} ;;
		timeout) tmo=${kv#*=} ;;
		esac
	done
	[ "${requests:-0}" -gt 0 ] || die "wrk completed no request on $wl / $tg"

	local rps ratio cpu_proc cpu_machine errs errtxt
	rps=$(awk -v n="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", n * 1e6 / d }')
	R_RPS[$wl/$tg]=$rps
	if [ "$tg" = direct ]; then
		ratio=1.00
	elif [ -n "${R_RPS[$wl/direct]:-}" ]; then
		ratio=$(awk -v a="$rps" -v b="${R_RPS[$wl/direct]}" 'BEGIN { printf "%.2f", a / b }')
	else
		ratio=-
	fi
	cpu_proc=$(awk -v t=$((pt1 - pt0)) -v hz="$CLK_TCK" -v n="$requests" \
		'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
	cpu_machine=$(awk -v t=$((mt1 - mt0)) -v hz="$CLK_TCK" -v n="$requests" \
		'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
	errs=$((connect + read + write + status + tmo))
	if [ "$errs" -eq 0 ]; then
		errtxt=0
	else
		ANY_ERRORS=1
		errtxt="**$errs** ⚠"
		NOTES+=("**ERRORS** $wl/$tg: connect $connect, read $read, write $write, status>399 $status, timeout $tmo (of $requests requests).")
	fi
	# Every figure also as a ratio to direct: "0.55 ms (4.2×)".
	R_P50[$wl/$tg]=$p50_us
	R_P99[$wl/$tg]=$p99_us
	R_CPUP[$wl/$tg]=$cpu_proc
	R_CPUM[$wl/$tg]=$cpu_machine
	ROWS+=("| $wl | $tg | $rps | $ratio | $(fmt_ms "$p50_us")$(vs_direct R_P50 "$wl" "$p50_us") | $(fmt_ms "$p99_us")$(vs_direct R_P99 "$wl" "$p99_us") | $cpu_proc$(vs_direct R_CPUP "$wl" "$cpu_proc") | $cpu_machine$(vs_direct R_CPUM "$wl" "$cpu_machine") | $errtxt |")

	# What the backends saw: the split, and for /shadow the mirrored fraction.
	local d1=$((e1 - s1)) d2=$((e2 - s2)) d3=$((e3 - s3)) note
	if [ "$tg" != direct ] && [ $((d1 + d2)) -gt 0 ]; then
		note=$(awk -v a=$d1 -v b=$d2 -v c=$d3 -v w="$wl" -v t="$tg" -v gb="$((bytes / 1048576))" 'BEGIN {
			printf "%s/%s: first backend got %.1f%% of %d primary requests", w, t, 100 * a / (a + b), a + b
			if (w == "shadow") printf "; shadow backend got %d (%.2f%% of primaries)", c, 100 * c / (a + b)
			if (w == "big") printf "; %d MiB to the client", gb
		}')
		NOTES+=("$note.")
	fi
}

# " (N×)": value divided by the direct row's, when there is one.
vs_direct() {
	local -n table=$1
	local base=${table[$2/direct]:-}

	[ -n "$base" ] || return 0
	awk -v a="$3" -v b="$base" 'BEGIN { if (b > 0) printf " (%.2f×)", a / b }'
}
declare -A R_P50 R_P99 R_CPUP R_CPUM

START_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for wl in ${WORKLOADS//,/ }; do
	# direct first: the others are divided by it.
	for tg in direct sockwayd nginx haproxy; do
		in_list "$tg" "$TARGETS" && measure "$wl" "$tg"
	done
done

# ---------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | head -c 1)
[ -n "$dirty" ] && commit="$commit (work tree modified)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REPORT=$TMP/report.md
{
	echo "# sockway bench, $START_DATE"
	echo
	echo "\`$CMDLINE\` — commit $commit, Linux $(uname -r), $NCPU × $cpu_model."
	echo "wrk -t$WRK_THREADS, ${DURATION} s per run after a ${WARMUP} s warm-up; $CONNECTIONS connections" \
		"($BIG_CONNECTIONS for big). sockwayd --workers $WORKERS, nginx worker_processes $WORKERS," \
		"HAProxy nbthread $WORKERS; swbackend --threads $BACKEND_THREADS."
	echo "$(nginx -v 2>&1 | sed 's|nginx version: ||'), $(haproxy -v 2>/dev/null | head -n 1 | awk '{ print "HAProxy " $3 }'), $(wrk -v 2>&1 | head -n 1 | awk '{ print $1 " " $2 }')." \
		"Machine busy before the bench: ${IDLE_BUSY}%."
	echo
	echo "| workload | target | req/s | ×direct | p50 (×direct) | p99 (×direct) | CPU µs/req, proc (×direct) | CPU µs/req, machine (×direct) | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "proc: the target's processes (direct: the backend it hits); machine: all CPUs busy," \
		"wrk and backends included. See tools/bench/README.md."
	if [ ${#NOTES[@]} -gt 0 ]; then
		echo
		for n in "${NOTES[@]}"; do
			echo "- $n"
		done
	fi
	if [ "$ANY_ERRORS" = 1 ]; then
		echo
		echo "**WARNING: some runs had errors; errors must be zero.**"
	fi
} >"$REPORT"

mkdir -p "$OUTPUT/bench"
RESULT=$OUTPUT/bench/results-$(date +%Y%m%d-%H%M%S).md
cp "$REPORT" "$RESULT"
echo
cat "$REPORT"
echo
log "saved to $RESULT"
[ "$ANY_ERRORS" = 0 ] || exit 1
exit 0
