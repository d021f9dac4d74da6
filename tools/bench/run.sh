#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/run.sh: sockwayd side by side with nginx and HAProxy, and with no router at
# all ("direct"), on the same backends, routes and workloads, measured by wrk; sockwayd
# both on its userspace path alone (--no-accel) and with the kernel fast path
# ("sockwayd+accel": wrk, sockwayd and its backends in accelerated cgroups).
#
#   tools/bench/run.sh [--duration S] [--connections C] [--quick] [...]   (after make, as root)
#
# Everything it starts runs in the foreground as its child (pin dirs, backends, sockwayds,
# nginx, HAProxy), on 127.0.0.1 ports derived from its PID, and is stopped and removed on
# exit, error or Ctrl-C, with the accelerated cgroup and the network namespaces of the
# remote workloads. See tools/bench/README.md for the columns and the caveats.
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
ALL_WORKLOADS="small,keyed,big,shadow,remote,remote-be"
ALL_TARGETS="direct,direct+accel,sockwayd,sockwayd+accel,nginx,haproxy"
# Not run unless asked for: direct with wrk's threads split over both backends of the split.
EXTRA_TARGETS="direct-split,direct+accel-split"
WORKLOADS=$ALL_WORKLOADS
TARGETS=$ALL_TARGETS
BIG_BODY=1048576
ASWD_ARGS=()
CMDLINE="tools/bench/run.sh${*:+ $*}"

usage() {
	cat <<EOF
Usage: tools/bench/run.sh [--duration S] [--connections C] [--quick] [options]

  --duration S          seconds per measured run (default $DURATION)
  --connections C       wrk connections for all but big (default $CONNECTIONS)
  --big-connections C   wrk connections for the 1 MiB workload (default $BIG_CONNECTIONS)
  --quick               3 s runs and 1 s warm-ups
  --warmup S            seconds of warm-up before each measured run (default $WARMUP)
  --workers N           sockwayd workers, nginx workers, HAProxy threads (default $WORKERS)
  --backend-threads N   threads of each swbackend (default $BACKEND_THREADS)
  --workloads LIST      comma-separated subset of $WORKLOADS
  --targets LIST        comma-separated subset of $TARGETS
  --accel-sockwayd-arg A  one more argument for sockwayd+accel (repeat for more), e.g.
                        --no-splice to compare
  -h, --help            this text

Run from the repository root after make, as root. Installs wrk, nginx and haproxy from
Debian when missing. Writes the table to $OUTPUT/bench/results-DATE.md.

The accel targets need a cgroup v2 mount; the remote workloads create a network namespace
and a veth pair for the client, remote-be a second pair for its backends (removed at exit).
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
	--accel-sockwayd-arg) need_arg "$@"; ASWD_ARGS+=("$2"); shift 2 ;;
	--quick) DURATION=3; WARMUP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
	esac
done
# in_list WORD LIST: is WORD one of the comma-separated LIST?
in_list() { [[ ",$2," == *",$1,"* ]]; }
for w in ${WORKLOADS//,/ }; do
	in_list "$w" "$ALL_WORKLOADS" ||
		{ echo "run.sh: unknown workload \"$w\" (${ALL_WORKLOADS//,/, })" >&2; exit 2; }
done
for t in ${TARGETS//,/ }; do
	in_list "$t" "$ALL_TARGETS,$EXTRA_TARGETS" ||
		{ echo "run.sh: unknown target \"$t\" (${ALL_TARGETS//,/, }, ${EXTRA_TARGETS//,/, })" >&2; exit 2; }
done
# What has to be set up: the kernel fast path (a second pin dir, an accelerated cgroup,
# backends and a sockwayd of their own), the client's network namespace of the remote
# workloads, and the backends' namespace of remote-be.
NEED_ACCEL=0
{ in_list direct+accel "$TARGETS" || in_list sockwayd+accel "$TARGETS" ||
	in_list direct+accel-split "$TARGETS"; } && NEED_ACCEL=1
NEED_ASWD=0
in_list sockwayd+accel "$TARGETS" && NEED_ASWD=1
NEED_REMOTE=0
{ in_list remote "$WORKLOADS" || in_list remote-be "$WORKLOADS"; } && NEED_REMOTE=1
NEED_RBE=0
in_list remote-be "$WORKLOADS" && NEED_RBE=1
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
# The cgroup v2 mount: the accelerated cgroup goes under it, and the bench checks that its
# own cgroup (where wrk, the plain backends and the plain routers run) is not accelerated.
CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
SELF_CG=
if [ -n "$CGROUP2" ]; then
	SELF_CG=$CGROUP2$(awk -F: '$1 == "0" { print $3; exit }' /proc/self/cgroup)
	SELF_CG=${SELF_CG%/}
fi
if [ "$NEED_ACCEL" = 1 ]; then
	[ -n "$CGROUP2" ] ||
		die "the accel targets need a cgroup v2 mount (mount -t cgroup2 none /sys/fs/cgroup/unified), or leave them out with --targets"
	for bin in bpftool jq; do
		command -v "$bin" >/dev/null || die "$bin is missing: run make deps"
	done
fi
if [ "$NEED_REMOTE" = 1 ]; then
	command -v ip >/dev/null || die "ip (iproute2) is missing: run make deps"
fi

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
# Cleanup: every PID we start is listed; the trap ends them, then un-accelerates and
# removes our cgroup, unpins our pin dirs, deletes the network namespaces and their veth
# pairs, and removes the temp dir, on exit, error or Ctrl-C.
# ---------------------------------------------------------------------------------------
PIDS=()
NOTES=()
declare -A PID_NAME
WRK_PID=
LOADED=0
TMP=
# The plain pin dir: policy for sockwayd (--no-accel), no cgroup is ever accelerated in it.
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-bench-$$
# The accel pin dir: the same policy over the accel backends, the accelerated cgroups and
# the fast path's counters. Only sockwayd+accel and the accel agent commands use it.
PIN_ACCEL=/sys/fs/bpf/sockway-bench-$$-accel
ACCEL_LOADED=0
ACCEL_CG=
ACCEL_CG_ADDED=0
# sockwayd+accel joins the cgroup named after its pin dir, CGROUP2/sockway-bench-PID-accel
# (CGROUP2/sockway for the default pins); we remove it at exit if sockwayd did not.
SWD_CG=${CGROUP2:+$CGROUP2/${PIN_ACCEL##*/}}
SWD_CG_OURS=0
NETNS=
VETH_HOST_IF=
# The remote workload's /30 (picked below): sockwayd etc. listen on VETH_HOST_IP, wrk
# runs in the namespace NETNS with VETH_NS_IP.
VETH_HOST_IP=
VETH_NS_IP=
# remote-be's backends (r1, r2) listen in the namespace NETNS_BE on BE_NS_IP, the other
# end of a second veth pair (BE_HOST_IF, BE_HOST_IP on the host): the routers reach them
# over it without the host forwarding anything.
NETNS_BE=
BE_HOST_IF=
BE_HOST_IP=
BE_NS_IP=

# sw_accel ARGS...: the agent on the accel pin dir.
sw_accel() { SOCKWAY_PIN_ROOT=$PIN_ACCEL "$SOCKWAY" "$@"; }

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

# netns_remove NAME HOST_IF: deletes the namespace, and the veth pair if it outlived it.
# shellcheck disable=SC2317  # invoked by the EXIT trap
netns_remove() {
	ip netns del "$1" 2>/dev/null
	for _ in $(seq 20); do
		ip link show "$2" >/dev/null 2>&1 || break
		sleep 0.1
	done
	ip link del "$2" 2>/dev/null
	netns_exists "$1" && log "could not delete netns $1"
}
# netns_exists NAME (the whole name: sockway-bench-PID is a prefix of sockway-bench-PID-be).
netns_exists() { ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qxF "$1"; }

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local rc=$? i
	trap - INT TERM EXIT HUP
	[ -n "$WRK_PID" ] && stop_pid "$WRK_PID"
	# Routers first (newest first), then the backends they talk to.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[i]}"
	done
	# The accelerated cgroup: un-accelerate it, then remove it once its processes are gone
	# (they were all ours and were stopped above; a leftover is killed via cgroup.kill).
	if [ -n "$ACCEL_CG" ] && [ -d "$ACCEL_CG" ]; then
		if [ "$ACCEL_CG_ADDED" = 1 ]; then
			sw_accel accel del "$ACCEL_CG" >/dev/null 2>&1 ||
				log "sockway accel del $ACCEL_CG failed"
		fi
		if [ -s "$ACCEL_CG/cgroup.procs" ]; then
			log "processes left in $ACCEL_CG: $(tr '\n' ' ' <"$ACCEL_CG/cgroup.procs"); killing them"
			echo 1 >"$ACCEL_CG/cgroup.kill" 2>/dev/null
		fi
		for _ in $(seq 50); do
			rmdir "$ACCEL_CG" 2>/dev/null && break
			sleep 0.1
		done
		[ -d "$ACCEL_CG" ] && log "could not remove $ACCEL_CG"
	fi
	# sockwayd removes its cgroup itself when it leaves; if it was killed, we do.
	if [ "$SWD_CG_OURS" = 1 ] && [ -d "$SWD_CG" ] && [ ! -s "$SWD_CG/cgroup.procs" ]; then
		rmdir "$SWD_CG" 2>/dev/null
	fi
	if [ "$ACCEL_LOADED" = 1 ]; then
		# The kill switch detaches every link and the sk_msg program; then unpin all.
		sw_accel accel off >/dev/null 2>&1
		sw_accel unload >/dev/null 2>&1 || log "sockway unload of $PIN_ACCEL failed"
	fi
	if [ "$LOADED" = 1 ]; then
		"$SOCKWAY" unload >/dev/null 2>&1 || log "sockway unload of $SOCKWAY_PIN_ROOT failed"
	fi
	# Deleting a namespace deletes its veth end, and with it the pair.
	[ -n "$NETNS" ] && netns_remove "$NETNS" "$VETH_HOST_IF"
	[ -n "$NETNS_BE" ] && netns_remove "$NETNS_BE" "$BE_HOST_IF"
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
# Ports: a block of 20 from $$, below the ephemeral range, moved on while any is taken.
# ---------------------------------------------------------------------------------------
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_ports() {
	local base p ok
	base=$((10000 + ($$ % 220) * 100))
	for _ in $(seq 40); do
		ok=1
		for p in $(seq "$base" $((base + 19))); do
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
			# The accel set: its own backends and sockwayd.
			P_A1=$((base + 10)) P_A2=$((base + 11)) P_A3=$((base + 12))
			P_ABIG1=$((base + 13)) P_ABIG2=$((base + 14))
			P_ASOCKWAYD=$((base + 15)) P_AADMIN=$((base + 16))
			# remote-be's backends, in their own namespace (no clash possible there).
			P_R1=$((base + 17)) P_R2=$((base + 18))
			return 0
		fi
		base=$((base + 100))
		[ $base -ge 32000 ] && base=10000
	done
	die "no free block of 20 ports on 127.0.0.1 between 10000 and 32000"
}
pick_ports

# ---------------------------------------------------------------------------------------
# Small helpers: HTTP probes, waiting for servers, CPU accounting.
# ---------------------------------------------------------------------------------------

# Probes take PORT (on 127.0.0.1) or ADDR:PORT (remote-be's backends).
hostport() { case $1 in *:*) echo "$1" ;; *) echo "127.0.0.1:$1" ;; esac; }
# http_get PORT PATH [HEADER] -> prints the whole response (bodies here are small).
http_get() {
	timeout 3 curl -s -i --max-time 2 ${3:+-H "$3"} "http://$(hostport "$1")$2" 2>/dev/null
}
# ns_http_get PORT PATH -> the same from inside the remote workload's namespace, to the
# host end of the veth pair.
ns_http_get() {
	timeout 3 ip netns exec "$NETNS" curl -s -i --max-time 2 "http://$VETH_HOST_IP:$1$2" \
		2>/dev/null
}
# http_status PORT PATH -> prints the status code, or 000.
http_status() {
	timeout 3 curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(hostport "$1")$2" \
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
	die "$name did not answer 200 on $(hostport "$port")$path within 10 s (last: $code)"
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

# in_cgroup CMD...: in a background job or "( ... )" subshell, moves it into the
# accelerated cgroup, then becomes CMD (same PID). Never runs CMD outside the cgroup.
in_cgroup() {
	echo "$BASHPID" >"$ACCEL_CG/cgroup.procs" || {
		echo "run.sh: cannot move pid $BASHPID into $ACCEL_CG" >&2
		exit 126
	}
	exec "$@"
}
# cgroup_of PID: the directory of its cgroup v2 (the mount itself for the root cgroup).
cgroup_of() {
	local rel
	rel=$(awk -F: '$1 == "0" { print $3; exit }' "/proc/$1/cgroup" 2>/dev/null)
	rel=$CGROUP2$rel
	echo "${rel%/}"
}
# sockops_effective DIR: how many sockops programs act on sockets of cgroup DIR (its own
# and its ancestors'), whoever attached them; "error" if bpftool failed.
sockops_effective() {
	local out
	out=$(bpftool -j cgroup show "$1" effective 2>/dev/null) || { echo error; return; }
	[ -n "$out" ] || { echo 0; return; }
	jq '[.[] | select(.attach_type == "sock_ops" or .attach_type == "cgroup_sock_ops")] | length' \
		<<<"$out" 2>/dev/null || echo error
}
# swd_cg_others: PIDs in sockwayd+accel's cgroup other than itself (another sockwayd on the
# same pins, or an older sockwayd that joins CGROUP2/sockway whatever its pins: its sockets
# are then tracked by our sockops program too).
swd_cg_others() {
	[ -n "$ASOCKWAYD_PID" ] && [ -r "$SWD_CG/cgroup.procs" ] || return 0
	grep -vx "$ASOCKWAYD_PID" "$SWD_CG/cgroup.procs" 2>/dev/null | tr '\n' ' '
}
# accel_stats: "redirected redirected_bytes passed passed_bytes" of the accel pin dir.
accel_stats() {
	sw_accel -j accel list 2>/dev/null |
		jq -r '.stats | "\(.redirected) \(.redirected_bytes) \(.passed) \(.passed_bytes)"' \
			2>/dev/null || echo "0 0 0 0"
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

# backend_requests PORT|ADDR:PORT: the swbackend's request counter.
backend_requests() {
	local body
	body=$(timeout 3 curl -s --max-time 2 "http://$(hostport "$1")/__swbackend/stats" 2>/dev/null)
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

# The kernel fast path: a pin dir of its own, and a cgroup for wrk and the accel backends.
if [ "$NEED_ACCEL" = 1 ]; then
	log "accel pin dir $PIN_ACCEL"
	sw_accel load >"$TMP/load-accel.log" 2>&1 || {
		cat "$TMP/load-accel.log" >&2
		die "sockway load of $PIN_ACCEL failed"
	}
	ACCEL_LOADED=1
	# Set only once we made it: the cleanup removes $ACCEL_CG and kills what is left in it.
	mkdir "$CGROUP2/sockway-bench-$$" || die "cannot create the cgroup $CGROUP2/sockway-bench-$$"
	ACCEL_CG=$CGROUP2/sockway-bench-$$
	sw_accel accel add "$ACCEL_CG" >"$TMP/accel-add.log" 2>&1 || {
		cat "$TMP/accel-add.log" >&2
		die "sockway accel add $ACCEL_CG failed"
	}
	ACCEL_CG_ADDED=1
	if [ "$NEED_ASWD" = 1 ]; then
		if [ -d "$SWD_CG" ]; then
			if [ -s "$SWD_CG/cgroup.procs" ]; then
				log "warning: $SWD_CG already holds processes ($(tr '\n' ' ' <"$SWD_CG/cgroup.procs"));" \
					"another sockwayd shares the cgroup sockwayd+accel joins"
				NOTES+=("⚠ $SWD_CG held other processes when the bench started (another sockwayd?); they share the accelerated cgroup of sockwayd+accel.")
			fi
		else
			SWD_CG_OURS=1
		fi
	fi
fi

# The remote workloads: a namespace with one end of a veth pair; a free /30 of
# 10.203.0.0/16. pick_subnet sets PICK_HOST (.1) and PICK_NS (.2); a /30 set up by an
# earlier call is in use by then, so a second call picks another.
pick_subnet() {
	local i n a b addrs routes
	addrs=$(ip -o -4 addr show 2>/dev/null)
	routes=$(ip -4 route show table all 2>/dev/null)
	for i in $(seq 0 255); do
		n=$((($$ + i) % 16384))
		a=$((n / 64)) b=$((n % 64 * 4))
		if grep -qE " 10\.203\.$a\.($b|$((b + 1))|$((b + 2))|$((b + 3)))/" <<<"$addrs" ||
			grep -qE "(^| )10\.203\.$a\.$b/30( |$)" <<<"$routes"; then
			continue
		fi
		PICK_HOST=10.203.$a.$((b + 1)) PICK_NS=10.203.$a.$((b + 2))
		return 0
	done
	die "no free /30 in 10.203.0.0/16 for the remote workloads"
}
# netns_create NAME HOST_IF NS_IF HOST_IP NS_IP: the namespace, and a veth pair between it
# and the host on their /30. Only the connected route on each side: nothing is forwarded.
netns_create() {
	ip netns add "$1" || die "ip netns add $1 failed"
	{
		ip link add "$2" type veth peer name "$3" netns "$1" &&
			ip addr add "$4/30" dev "$2" &&
			ip link set "$2" up &&
			ip -n "$1" addr add "$5/30" dev "$3" &&
			ip -n "$1" link set "$3" up &&
			ip -n "$1" link set lo up
	} || die "could not set up the veth pair $2/$3"
}
if [ "$NEED_REMOTE" = 1 ]; then
	pick_subnet
	VETH_HOST_IP=$PICK_HOST VETH_NS_IP=$PICK_NS
	netns_exists "sockway-bench-$$" && die "netns sockway-bench-$$ exists already"
	# Set before it exists: the cleanup deletes whatever part of it was made.
	NETNS=sockway-bench-$$
	VETH_HOST_IF=swb$$h
	netns_create "$NETNS" "$VETH_HOST_IF" "swb$$n" "$VETH_HOST_IP" "$VETH_NS_IP"
	log "remote: netns $NETNS ($VETH_NS_IP) over veth to $VETH_HOST_IP ($VETH_HOST_IF)"
fi
# remote-be: the backends' namespace, on a second /30 (the client's is taken by now). The
# host is an end of both pairs, so the routers reach the client over one and the backends
# over the other; the namespaces never talk to each other, and no sysctl changes.
if [ "$NEED_RBE" = 1 ]; then
	pick_subnet
	BE_HOST_IP=$PICK_HOST BE_NS_IP=$PICK_NS
	netns_exists "sockway-bench-$$-be" && die "netns sockway-bench-$$-be exists already"
	NETNS_BE=sockway-bench-$$-be
	BE_HOST_IF=swb$$bh
	netns_create "$NETNS_BE" "$BE_HOST_IF" "swb$$bn" "$BE_HOST_IP" "$BE_NS_IP"
	log "remote-be: backends in netns $NETNS_BE ($BE_NS_IP) over veth to $BE_HOST_IP ($BE_HOST_IF)"
fi

declare -A BACKEND_PID
# name port [body size]; b1 also listens on the veth for remote/direct.
for spec in "b1 $P_B1" "b2 $P_B2" "b3 $P_B3" "big1 $P_BIG1 $BIG_BODY" "big2 $P_BIG2 $BIG_BODY"; do
	set -- $spec
	extra=()
	[ "$1" = b1 ] && [ "$NEED_REMOTE" = 1 ] && extra=(--listen "$VETH_HOST_IP:$2")
	start "backend $1" "$TMP/$1.log" "$SWBACKEND" --name "$1" --listen "127.0.0.1:$2" \
		"${extra[@]}" --threads "$BACKEND_THREADS" ${3:+--body-size "$3"}
	BACKEND_PID[$1]=$START_PID
done
# The accel set, in the accelerated cgroup. Names as long as the plain ones', so that
# responses have the same size (swbackend puts its name in a header and small bodies).
ACCEL_BACKENDS=()
[ "$NEED_ACCEL" = 1 ] &&
	ACCEL_BACKENDS=("a1 $P_A1" "a2 $P_A2" "a3 $P_A3" "abg1 $P_ABIG1 $BIG_BODY" "abg2 $P_ABIG2 $BIG_BODY")
for spec in "${ACCEL_BACKENDS[@]}"; do
	set -- $spec
	start "backend $1" "$TMP/$1.log" in_cgroup "$SWBACKEND" --name "$1" --listen "127.0.0.1:$2" \
		--threads "$BACKEND_THREADS" ${3:+--body-size "$3"}
	BACKEND_PID[$1]=$START_PID
done
# remote-be's backends, in their namespace: names as long as b1's, so that responses are
# as long. nsenter switches the network namespace only (ip netns exec also makes a mount
# namespace and remounts /sys, which hides bpffs); they stay in the bench's own cgroup.
REMOTE_BACKENDS=()
[ "$NEED_RBE" = 1 ] && REMOTE_BACKENDS=("r1 $BE_NS_IP:$P_R1" "r2 $BE_NS_IP:$P_R2")
for spec in "${REMOTE_BACKENDS[@]}"; do
	set -- $spec
	start "backend $1" "$TMP/$1.log" nsenter --net="/run/netns/$NETNS_BE" "$SWBACKEND" \
		--name "$1" --listen "$2" --threads "$BACKEND_THREADS"
	BACKEND_PID[$1]=$START_PID
done
for spec in "b1 $P_B1" "b2 $P_B2" "b3 $P_B3" "big1 $P_BIG1" "big2 $P_BIG2" "${ACCEL_BACKENDS[@]}" \
	"${REMOTE_BACKENDS[@]}"; do
	set -- $spec
	wait_ready "backend $1" "${BACKEND_PID[$1]}" "$2" /small "$TMP/$1.log"
done
for spec in "${ACCEL_BACKENDS[@]}"; do
	set -- $spec
	[ "$(cgroup_of "${BACKEND_PID[$1]}")" = "$ACCEL_CG" ] ||
		die "backend $1 is not in $ACCEL_CG"
done

# policy_json B1 B2 B3 BIG1 BIG2: the policy over these backend ports; with remote-be,
# also /rsmall over r1 and r2 in their namespace (the same two in both pin dirs: a remote
# backend cannot be in an accelerated cgroup).
policy_json() {
	local rb='' rep=''
	if [ "$NEED_RBE" = 1 ]; then
		rb='
    "r1": { "replicas": ["'$BE_NS_IP:$P_R1'"] },
    "r2": { "replicas": ["'$BE_NS_IP:$P_R2'"] },'
		rep='
    "rsmall": { "route": "/rsmall", "traffic": { "r1": 0.5, "r2": 0.5 } },'
	fi
	cat <<EOP
{
  "version": 1,
  "backends": {$rb
    "b1": { "replicas": ["127.0.0.1:$1"] },
    "b2": { "replicas": ["127.0.0.1:$2"] },
    "b3": { "replicas": ["127.0.0.1:$3"] },
    "big1": { "replicas": ["127.0.0.1:$4"] },
    "big2": { "replicas": ["127.0.0.1:$5"] }
  },
  "endpoints": {$rep
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
EOP
}
policy_json "$P_B1" "$P_B2" "$P_B3" "$P_BIG1" "$P_BIG2" >"$TMP/policy.json"
"$SOCKWAY" apply -f "$TMP/policy.json" >"$TMP/apply.log" 2>&1 || {
	cat "$TMP/apply.log" >&2
	die "sockway apply failed"
}
if [ "$NEED_ASWD" = 1 ]; then
	policy_json "$P_A1" "$P_A2" "$P_A3" "$P_ABIG1" "$P_ABIG2" >"$TMP/policy-accel.json"
	sw_accel apply -f "$TMP/policy-accel.json" >"$TMP/apply-accel.log" 2>&1 || {
		cat "$TMP/apply-accel.log" >&2
		die "sockway apply on $PIN_ACCEL failed"
	}
fi

# sockwayd, userspace only: --no-accel, so it stays in our (plain) cgroup.
remote_listen=()
[ "$NEED_REMOTE" = 1 ] && remote_listen=(--listen "$VETH_HOST_IP:$P_SOCKWAYD")
start sockwayd "$TMP/sockwayd.log" "$SOCKWAYD" --no-accel --listen "127.0.0.1:$P_SOCKWAYD" \
	"${remote_listen[@]}" --admin "127.0.0.1:$P_ADMIN" --workers "$WORKERS"
SOCKWAYD_PID=$START_PID
wait_ready sockwayd "$SOCKWAYD_PID" "$P_ADMIN" /healthz "$TMP/sockwayd.log"
wait_ready sockwayd "$SOCKWAYD_PID" "$P_SOCKWAYD" /small "$TMP/sockwayd.log"

# sockwayd+accel: without --no-accel it joins the cgroup named after its pin dir,
# CGROUP2/sockway-bench-PID-accel, and accelerates it in the accel pin dir (where its
# policy is).
ASOCKWAYD_PID=
if [ "$NEED_ASWD" = 1 ]; then
	remote_listen=()
	[ "$NEED_REMOTE" = 1 ] && remote_listen=(--listen "$VETH_HOST_IP:$P_ASOCKWAYD")
	start sockwayd+accel "$TMP/sockwayd-accel.log" env SOCKWAY_PIN_ROOT="$PIN_ACCEL" \
		"$SOCKWAYD" --listen "127.0.0.1:$P_ASOCKWAYD" "${remote_listen[@]}" \
		--admin "127.0.0.1:$P_AADMIN" --workers "$WORKERS" "${ASWD_ARGS[@]}"
	ASOCKWAYD_PID=$START_PID
	wait_ready sockwayd+accel "$ASOCKWAYD_PID" "$P_AADMIN" /healthz "$TMP/sockwayd-accel.log"
	wait_ready sockwayd+accel "$ASOCKWAYD_PID" "$P_ASOCKWAYD" /small "$TMP/sockwayd-accel.log"
	cg=$(cgroup_of "$ASOCKWAYD_PID")
	if grep -q 'fast path unused' "$TMP/sockwayd-accel.log" || [ "$cg" != "$SWD_CG" ]; then
		cat "$TMP/sockwayd-accel.log" >&2
		die "sockwayd+accel did not join the accelerated cgroup $SWD_CG (it is in ${cg:-?})"
	fi
	sw_accel -j accel list | jq -e --arg cg "$SWD_CG" '[.cgroups[].path] | index($cg)' \
		>/dev/null || die "sockwayd+accel did not accelerate $SWD_CG"
fi

# fill_template FILE: the configuration with our ports and paths. The lines from the one
# that starts with "# {remote-be" to the one that starts with "# }remote-be" (the /rsmall
# route) go when remote-be is not run: its backends do not exist then.
fill_template() {
	local drop=()
	[ "$NEED_RBE" = 1 ] ||
		drop=(-e '/^[[:space:]]*# {remote-be/,/^[[:space:]]*# }remote-be/d')
	sed "${drop[@]}" -e "s|@TMP@|$TMP|g" -e "s|@WORKERS@|$WORKERS|g" \
		-e "s|@P_B1@|$P_B1|g" -e "s|@P_B2@|$P_B2|g" -e "s|@P_B3@|$P_B3|g" \
		-e "s|@P_BIG1@|$P_BIG1|g" -e "s|@P_BIG2@|$P_BIG2|g" \
		-e "s|@BE_NS_IP@|$BE_NS_IP|g" -e "s|@P_R1@|$P_R1|g" -e "s|@P_R2@|$P_R2|g" \
		-e "s|@P_NGINX@|$P_NGINX|g" -e "s|@P_HAPROXY@|$P_HAPROXY|g" "$1"
}

mkdir -p "$TMP/nginx"
fill_template "$BENCH_DIR/nginx.conf.in" >"$TMP/nginx/nginx.conf"
if [ "$NEED_REMOTE" = 1 ]; then
	# A second listener on the veth, next to the loopback one.
	sed -i "s|^\([[:space:]]*\)listen 127\.0\.0\.1:$P_NGINX \(.*\)$|&\n\1listen $VETH_HOST_IP:$P_NGINX \2|" \
		"$TMP/nginx/nginx.conf"
	grep -q "listen $VETH_HOST_IP:$P_NGINX " "$TMP/nginx/nginx.conf" ||
		die "could not add the veth listener to nginx.conf"
fi
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
if [ "$NEED_REMOTE" = 1 ]; then
	sed -i "s|^\([[:space:]]*\)bind 127\.0\.0\.1:$P_HAPROXY$|&\n\1bind $VETH_HOST_IP:$P_HAPROXY|" \
		"$TMP/haproxy.cfg"
	grep -q "bind $VETH_HOST_IP:$P_HAPROXY" "$TMP/haproxy.cfg" ||
		die "could not add the veth listener to haproxy.cfg"
fi
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
	check_resp "$name" "$path" "$expect" "$resp"
}
check_resp() {
	local name=$1 path=$2 expect=$3 resp=$4
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
ROUTERS=("sockwayd $P_SOCKWAYD b" "nginx $P_NGINX b" "haproxy $P_HAPROXY b")
[ "$NEED_ASWD" = 1 ] && ROUTERS+=("sockwayd+accel $P_ASOCKWAYD a")
for spec in "${ROUTERS[@]}"; do
	set -- $spec
	if [ "$3" = a ]; then small='a1|a2' big='abg1|abg2'; else small='b1|b2' big='big1|big2'; fi
	check_route "$1" "$2" /small "$small"
	check_route "$1" "$2" /keyed "$small"
	check_route "$1" "$2" /shadow "$small"
	check_route "$1" "$2" /big "$big"
	[ "$(big_len "$2")" = "$BIG_BODY" ] || die "$1: GET /big did not return $BIG_BODY bytes"
	if [ "$NEED_REMOTE" = 1 ]; then
		check_resp "$1 (from $NETNS)" /small "$small" "$(ns_http_get "$2" /small)"
	fi
done
[ "$NEED_REMOTE" = 1 ] && check_resp "b1 (from $NETNS)" /small b1 "$(ns_http_get "$P_B1" /small)"

# remote-be: each router, asked from the client's namespace, must send /rsmall to both r1
# and r2 (one answer could come from either; up to 20 tries, each on a new connection).
check_both_remote() {
	local name=$1 port=$2 resp r1=0 r2=0
	for _ in $(seq 20); do
		resp=$(ns_http_get "$port" /rsmall)
		check_resp "$name (from $NETNS)" /rsmall 'r1|r2' "$resp"
		case $(tr -d '\r' <<<"$resp" | awk -F': ' 'tolower($1) == "x-backend" { print $2; exit }') in
		r1) r1=1 ;;
		r2) r2=1 ;;
		esac
		[ $r1 = 1 ] && [ $r2 = 1 ] && return 0
	done
	die "$name: GET /rsmall from $NETNS did not reach both r1 and r2 in 20 requests"
}
if [ "$NEED_RBE" = 1 ]; then
	for spec in "${ROUTERS[@]}"; do
		set -- $spec
		check_both_remote "$1" "$2"
	done
	# remote-be/direct: wrk on the host, straight to r1 over the backends' veth pair.
	check_resp "r1 (from the host)" /rsmall r1 "$(http_get "$BE_NS_IP:$P_R1" /rsmall)"
fi

# The plain rows must not be accelerated: wrk, the plain backends and the plain routers
# run in our own cgroup, where no sockops program may act (ours or anybody's).
if [ -n "$SELF_CG" ] && command -v bpftool >/dev/null && command -v jq >/dev/null; then
	n=$(sockops_effective "$SELF_CG")
	[ "$n" = 0 ] ||
		die "sockops programs act on the bench's own cgroup $SELF_CG ($n): the plain rows would not be plain"
fi
if [ "$NEED_ACCEL" = 1 ]; then
	n=$(sockops_effective "$ACCEL_CG")
	[ "$n" != error ] && [ "$n" -ge 1 ] || die "no sockops program acts on $ACCEL_CG"
	for pid in "$SOCKWAYD_PID" "$NGINX_PID" "$HAPROXY_PID" "${BACKEND_PID[b1]}" "${BACKEND_PID[big1]}" \
		${BACKEND_PID[r1]:+"${BACKEND_PID[r1]}"}; do
		[ "$(cgroup_of "$pid")" = "$SELF_CG" ] ||
			die "pid $pid ($(pid_name "$pid")) is not in the bench's own cgroup"
	done
fi
log "all servers up and routing"

# ---------------------------------------------------------------------------------------
# Measuring.
# ---------------------------------------------------------------------------------------
cp "$BENCH_DIR/report.lua" "$TMP/report.lua"
cat "$BENCH_DIR/keyed.lua" "$BENCH_DIR/report.lua" >"$TMP/keyed.lua"

# run_wrk WHERE SECONDS CONNS SCRIPT URL OUT: wrk in the background so that Ctrl-C is
# prompt. WHERE: plain (our own cgroup), accel (the accelerated cgroup) or remote (the
# network namespace; our own cgroup).
run_wrk() {
	local where=$1 cmd rc
	shift
	cmd=(wrk -t"$WRK_THREADS" -c"$2" -d"$1"s --latency -s "$3" "$4")
	case $where in
	plain) "${cmd[@]}" >"$5" 2>&1 </dev/null & ;;
	accel) in_cgroup "${cmd[@]}" >"$5" 2>&1 </dev/null & ;;
	remote) ip netns exec "$NETNS" "${cmd[@]}" >"$5" 2>&1 </dev/null & ;;
	esac
	WRK_PID=$!
	wait "$WRK_PID"
	rc=$?
	WRK_PID=
	return $rc
}

declare -A R_RPS
# Per row, the fast path's counters (accel pin dir) over the measured run:
# "redirected redirected_bytes passed passed_bytes requests".
declare -A R_KP
KP_ROWS=()
ANY_ERRORS=0
ROWS=()

fmt_ms() { awk -v us="$1" 'BEGIN { ms = us / 1000; f = ms < 10 ? "%.2f ms" : "%.1f ms"; printf f, ms }'; }

# measure WORKLOAD TARGET
measure() {
	local wl=$1 tg=$2 port host=127.0.0.1 path script conns roots pids out where=plain
	local pt0 pt1 mt0 mt1 s1 s2 s3 e1 e2 e3 bp1 bp2 bp3 grp=b k0 k1 others roots2= split=
	case $tg in *+accel | *+accel-split) grp=a where=accel ;; esac
	if [ "$wl" = big ]; then
		[ "$grp" = a ] && bp1=$P_ABIG1 bp2=$P_ABIG2 || bp1=$P_BIG1 bp2=$P_BIG2
		bp3=
	elif [ "$wl" = remote-be ]; then
		# One pair of remote backends for every target, accel or not.
		bp1=$BE_NS_IP:$P_R1 bp2=$BE_NS_IP:$P_R2 bp3=
	else
		[ "$grp" = a ] && bp1=$P_A1 bp2=$P_A2 bp3=$P_A3 || bp1=$P_B1 bp2=$P_B2 bp3=$P_B3
	fi
	case $tg in
	direct) [ "$wl" = big ] && roots=${BACKEND_PID[big1]} || roots=${BACKEND_PID[b1]}
		port=$bp1 ;;
	direct+accel) [ "$wl" = big ] && roots=${BACKEND_PID[abg1]} || roots=${BACKEND_PID[a1]}
		port=$bp1 ;;
	direct-split) [ "$wl" = big ] && roots=${BACKEND_PID[big1]} roots2=${BACKEND_PID[big2]} ||
		roots=${BACKEND_PID[b1]} roots2=${BACKEND_PID[b2]}
		port=$bp1 split=$bp2 ;;
	direct+accel-split)
		[ "$wl" = big ] && roots=${BACKEND_PID[abg1]} roots2=${BACKEND_PID[abg2]} ||
			roots=${BACKEND_PID[a1]} roots2=${BACKEND_PID[a2]}
		port=$bp1 split=$bp2 ;;
	sockwayd) port=$P_SOCKWAYD roots=$SOCKWAYD_PID ;;
	sockwayd+accel) port=$P_ASOCKWAYD roots=$ASOCKWAYD_PID ;;
	nginx) port=$P_NGINX roots=$NGINX_PID ;;
	haproxy) port=$P_HAPROXY roots=$HAPROXY_PID ;;
	esac
	path=/$wl
	conns=$CONNECTIONS
	[ "$wl" = big ] && conns=$BIG_CONNECTIONS
	script=$TMP/report.lua
	[ "$wl" = keyed ] && script=$TMP/keyed.lua
	# remote: GET /small from the namespace to the host end of the veth. wrk stands for a
	# client on another host, so it is never in the accelerated cgroup.
	if [ "$wl" = remote ]; then
		path=/small host=$VETH_HOST_IP where=remote
	fi
	# remote-be: GET /rsmall, the same way to the routers, whose backends are in the other
	# namespace. The client's namespace cannot reach that one without the host forwarding,
	# so direct is wrk on the host (our own cgroup) straight to r1 over the backends' veth
	# pair (direct-split: r1 and r2): one veth hop and no router.
	if [ "$wl" = remote-be ]; then
		path=/rsmall host=$VETH_HOST_IP where=remote
		case $tg in
		direct) roots=${BACKEND_PID[r1]} port=$P_R1 host=$BE_NS_IP where=plain ;;
		direct-split)
			roots=${BACKEND_PID[r1]} roots2=${BACKEND_PID[r2]}
			port=$P_R1 split=$P_R2 host=$BE_NS_IP where=plain
			;;
		esac
	fi

	if [ "$tg" = haproxy ] && [ "$wl" = shadow ]; then
		ROWS+=("| $wl | haproxy | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
		NOTES+=("shadow/haproxy: n/a, HAProxy has no built-in request mirroring.")
		return
	fi
	# The client's namespace reaches no backend's second port; remote backends are never
	# accelerated.
	if [ -n "$split" ] && { [ "$wl" = remote ] || { [ "$wl" = remote-be ] && [ "$grp" = a ]; }; }; then
		ROWS+=("| $wl | $tg | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
		return
	fi
	if [ -n "$split" ]; then
		[ -f "$TMP/split-${script##*/}" ] ||
			cat "$BENCH_DIR/split.lua" "$script" >"$TMP/split-${script##*/}"
		script=$TMP/split-${script##*/}
		export SWBENCH_SPLIT_PORT=$split
	else
		unset SWBENCH_SPLIT_PORT
	fi
	if [ "$tg" = direct+accel ] && [ "$wl" = remote ]; then
		ROWS+=("| $wl | direct+accel | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
		NOTES+=("remote/direct+accel: n/a, the client stands for another host and is not in an accelerated cgroup; the fast path cannot join a connection with a remote end (sockwayd+accel shows what it does to one).")
		return
	fi
	if [ "$tg" = direct+accel ] && [ "$wl" = remote-be ]; then
		ROWS+=("| $wl | direct+accel | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
		NOTES+=("remote-be/direct+accel: n/a, the client and the backends stand for other hosts; neither can be in an accelerated cgroup.")
		return
	fi
	if [ "$tg" = direct ] && [ "$wl" = remote-be ]; then
		NOTES+=("NOTE remote-be/direct is wrk on the host, in the bench's own cgroup, straight to r1 in the backends' namespace over their veth pair (the client's namespace cannot reach it without IP forwarding, which the bench leaves alone): one veth hop and no router. The routers' rows cross two veth pairs, client to router and router to backend.")
	fi
	log "$wl / $tg: warm-up ${WARMUP}s, then ${DURATION}s with $conns connections"
	run_wrk "$where" "$WARMUP" "$conns" "$script" "http://$host:$port$path" "$TMP/warmup.out" ||
		die "wrk failed during warm-up of $wl / $tg: $(tail -n 3 "$TMP/warmup.out")"

	# shellcheck disable=SC2086
	pids=$(tree_pids $roots $roots2)
	s1=$(backend_requests "$bp1") s2=$(backend_requests "$bp2") s3=0
	[ -n "$bp3" ] && s3=$(backend_requests "$bp3")
	[ "$ACCEL_LOADED" = 1 ] && k0=$(accel_stats)
	others=$(swd_cg_others)
	# shellcheck disable=SC2086
	pt0=$(proc_ticks $pids)
	mt0=$(machine_ticks)
	out=$TMP/$wl-$tg.out
	run_wrk "$where" "$DURATION" "$conns" "$script" "http://$host:$port$path" "$out" ||
		die "wrk failed on $wl / $tg: $(tail -n 3 "$out")"
	mt1=$(machine_ticks)
	# shellcheck disable=SC2086
	pt1=$(proc_ticks $pids)
	[ "$ACCEL_LOADED" = 1 ] && k1=$(accel_stats)
	others="$others $(swd_cg_others)"
	if [ -n "${others// /}" ]; then
		# shellcheck disable=SC2086
		NOTES+=("⚠ $wl/$tg: other processes were in $SWD_CG during the run (pids $(printf '%s\n' $others | sort -un | tr '\n' ' ' | sed 's/ $//')): another process shares the cgroup sockwayd+accel accelerates, and this bench's sockops program tracks its sockets too.")
	fi
	if ! kill -0 "$roots" ${roots2:+"$roots2"} 2>/dev/null; then
		case $tg in
		sockwayd) tail -n 20 "$TMP/sockwayd.log" >&2 ;;
		sockwayd+accel) tail -n 20 "$TMP/sockwayd-accel.log" >&2 ;;
		nginx) tail -n 20 "$TMP/nginx/error.log" >&2 ;;
		haproxy) tail -n 20 "$TMP/haproxy.log" >&2 ;;
		esac
		die "$tg (pid $roots) died during the $wl run"
	fi
	e1=$(backend_requests "$bp1") e2=$(backend_requests "$bp2") e3=0
	[ -n "$bp3" ] && e3=$(backend_requests "$bp3")

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

	# The fast path's counters over the run: an accel row must have used it; a plain row
	# runs in a cgroup without sockops, so what moves then comes from somebody else.
	if [ "$ACCEL_LOADED" = 1 ]; then
		local kp
		# shellcheck disable=SC2086
		kp=$(awk -v a="$k0" -v b="$k1" -v n="$requests" 'BEGIN {
			split(a, x, " "); split(b, y, " ")
			printf "%.0f %.0f %.0f %.0f %.0f", y[1] - x[1], y[2] - x[2], y[3] - x[3], y[4] - x[4], n }')
		R_KP[$wl/$tg]=$kp
		set -- $kp
		if [ "$grp" = a ] && [ "$wl" = remote-be ]; then
			# Neither of sockwayd+accel's peers is local: sockops leaves both hops out,
			# nothing can be redirected. The row is sockwayd's default with nothing to
			# accelerate.
			KP_ROWS+=("$wl/$tg")
			if [ "$1" != 0 ]; then
				NOTES+=("⚠ $wl/$tg: $1 sends were redirected, where none of this row's sockets has a local peer to redirect to; something else used the accel pin dir (another sockwayd in $SWD_CG?).")
			fi
		elif [ "$grp" = a ]; then
			KP_ROWS+=("$wl/$tg")
			if [ "$1" = 0 ]; then
				ANY_ERRORS=1
				NOTES+=("**ERROR** $wl/$tg: no send took the kernel path; this row measured plain TCP.")
			fi
		elif [ "$1" != 0 ] || [ "$3" != 0 ]; then
			KP_ROWS+=("$wl/$tg")
			NOTES+=("⚠ $wl/$tg: $1 sends were redirected and $3 passed on accelerated sockets during this plain row; not by its processes (their cgroup has no sockops program), so something else used the accel pin dir (another sockwayd in $SWD_CG?).")
		fi
	fi

	# What the backends saw: the split, and for /shadow the mirrored fraction.
	local d1=$((e1 - s1)) d2=$((e2 - s2)) d3=$((e3 - s3)) note
	if [ "$tg" != direct ] && [ "$tg" != direct+accel ] && [ $((d1 + d2)) -gt 0 ]; then
		note=$(awk -v a=$d1 -v b=$d2 -v c=$d3 -v w="$wl" -v t="$tg" -v gb="$((bytes / 1048576))" 'BEGIN {
			printf "%s/%s: first backend got %.1f%% of %d primary requests", w, t, 100 * a / (a + b), a + b
			if (w == "shadow") printf "; shadow backend got %d (%.2f%% of primaries)", c, 100 * c / (a + b)
			if (w == "big") printf "; %d MiB to the client", gb
		}')
		NOTES+=("$note.")
	fi
}

# best_peer_table: per workload, sockwayd and sockwayd+accel against the better of nginx
# and HAProxy in this run: the highest req/s, and the lowest proc CPU per request (each
# figure its own best, named). Nothing when no router pair ran.
best_peer_table() {
	local wl peer rows=() brps bcpu rname cname c1 c2 c3 c4
	for wl in ${WORKLOADS//,/ }; do
		brps='' bcpu='' rname='' cname=''
		for peer in nginx haproxy; do
			[ -n "${R_RPS[$wl/$peer]:-}" ] || continue
			if [ -z "$brps" ] || [ "${R_RPS[$wl/$peer]}" -gt "$brps" ]; then
				brps=${R_RPS[$wl/$peer]} rname=$peer
			fi
			if [ -z "$bcpu" ] || awk -v a="${R_CPUP[$wl/$peer]}" -v b="$bcpu" 'BEGIN { exit !(a < b) }'; then
				bcpu=${R_CPUP[$wl/$peer]} cname=$peer
			fi
		done
		[ -n "$brps" ] || continue
		[ -n "${R_RPS[$wl/sockwayd]:-}${R_RPS[$wl/sockwayd+accel]:-}" ] || continue
		c1=$(ratio_of "${R_RPS[$wl/sockwayd]:-}" "$brps")
		c2=$(ratio_of "${R_RPS[$wl/sockwayd+accel]:-}" "$brps")
		c3=$(ratio_of "${R_CPUP[$wl/sockwayd]:-}" "$bcpu")
		c4=$(ratio_of "${R_CPUP[$wl/sockwayd+accel]:-}" "$bcpu")
		rows+=("| $wl | $brps ($rname) | $c1 | $c2 | $bcpu ($cname) | $c3 | $c4 |")
	done
	[ ${#rows[@]} -gt 0 ] || return 0
	echo
	echo "sockwayd vs best peer: req/s divided by the higher of nginx's and HAProxy's (above 1:" \
		"sockwayd is faster), and CPU µs/req (proc) divided by the lower of theirs (below 1:" \
		"sockwayd spends less per request), same workload, same run."
	echo
	echo "| workload | best peer req/s | sockwayd ÷ best | sockwayd+accel ÷ best | best peer CPU µs/req (proc) | sockwayd ÷ best | sockwayd+accel ÷ best |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}"
}
# ratio_of A B: A / B to two places; "-" when A is missing or B is not above 0.
ratio_of() {
	[ -n "$1" ] || { echo -; return; }
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
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
	for tg in ${ALL_TARGETS//,/ } ${EXTRA_TARGETS//,/ }; do
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
	echo "sockwayd runs with --no-accel, and wrk, its backends, nginx and HAProxy run in the" \
		"bench's own cgroup, on which no sockops program acts: plain TCP."
	if [ "$NEED_ACCEL" = 1 ]; then
		echo "direct+accel and sockwayd+accel: wrk and their own backends (a1, a2, a3, abg1, abg2, same" \
			"sizes) in \`$ACCEL_CG\`${ASOCKWAYD_PID:+, sockwayd+accel (without --no-accel) in \`$SWD_CG\`}," \
			"accelerated in their own pin dir."
	fi
	if in_list remote "$WORKLOADS"; then
		echo "remote: \`GET /small\` from wrk in a network namespace ($VETH_NS_IP) over a veth pair" \
			"to the targets' listeners on $VETH_HOST_IP (direct: b1; the routers' backends stay on" \
			"127.0.0.1); wrk is not in an accelerated cgroup."
	fi
	if [ "$NEED_RBE" = 1 ]; then
		echo "remote-be: \`GET /rsmall\` from wrk in a network namespace ($VETH_NS_IP) over a veth pair" \
			"to the targets' listeners on $VETH_HOST_IP; the routers (both sockwayds too) reach r1 and r2" \
			"in a second namespace ($BE_NS_IP) over a second veth pair from $BE_HOST_IP; direct is wrk on" \
			"the host straight to r1 over that pair."
	fi
	echo
	echo "| workload | target | req/s | ×direct | p50 (×direct) | p99 (×direct) | CPU µs/req, proc (×direct) | CPU µs/req, machine (×direct) | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "proc: the target's processes (direct: the backend it hits); machine: all CPUs busy," \
		"wrk and backends included. ×direct is always relative to the plain direct row." \
		"See tools/bench/README.md."
	best_peer_table
	if [ ${#KP_ROWS[@]} -gt 0 ]; then
		echo
		echo "Kernel fast path (sk_msg), counters of the accel pin dir over each measured run:" \
			"sends on accelerated sockets that went straight to the peer's socket, and those" \
			"that went to TCP (the peer was not accelerated, or was behind: accel_stats.held)."
		echo
		echo "| workload | target | sends redirected | per request | bytes redirected | per request | sends passed to TCP | bytes passed |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|"
		for r in "${KP_ROWS[@]}"; do
			# shellcheck disable=SC2086
			set -- ${R_KP[$r]}
			awk -v r="$r" -v red="$1" -v rb="$2" -v pas="$3" -v pb="$4" -v n="$5" 'BEGIN {
				split(r, wt, "/")
				printf "| %s | %s | %.0f | %.2f | %.1f MiB | %.0f | %.0f | %.1f MiB |\n", wt[1], wt[2],
					red, red / n, rb / 1048576, rb / n, pas, pb / 1048576 }'
		done
	fi
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
