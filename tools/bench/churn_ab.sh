#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/churn_ab.sh A B: two sockwayd binaries side by side on connection churn:
# clients in an accelerated cgroup that close their connection after every request (wrk
# with "Connection: close"), two local backends in the same cgroup, sockwayd in its own
# (the default, accelerated). Each turn starts one sockwayd on the same pins, port and
# policy, warms it up for 2 s and measures it; A and B take turns (A B, B A, ...). Prints
# each run's req/s, sockwayd's CPU per request (utime + stime, all threads) and its bpf(2)
# and futex(2) calls per request (perf stat), then the medians. Every closed connection the
# kernel fast path knew costs sockwayd bookkeeping at close (a grace period ticket among
# it), which keep-alive benchmarks never show.
#
#   tools/bench/churn_ab.sh OLD_SOCKWAYD NEW_SOCKWAYD [--duration S] [--pairs N]
#                           [--connections C]                  (after make, as root)
#
# e.g. git stash; make; cp .output/sockwayd /tmp/old; git stash pop; make;
#      tools/bench/churn_ab.sh /tmp/old .output/sockwayd
# Needs cgroup v2. Everything runs on 127.0.0.1 ports derived from its PID and is stopped,
# with its pin directory and cgroup, on exit.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
DURATION=8
PAIRS=3
CONNECTIONS=32
WORKERS=2
BINS=()

while [ $# -gt 0 ]; do
	case $1 in
	--duration) DURATION=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	--connections) CONNECTIONS=$2; shift 2 ;;
	-h | --help) sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "churn_ab.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	*) BINS+=("$1"); shift ;;
	esac
done
[ ${#BINS[@]} = 2 ] || { echo "churn_ab.sh: give two sockwayd binaries (try --help)" >&2; exit 2; }
for b in "${BINS[@]}"; do
	[ -x "$b" ] || { echo "churn_ab.sh: $b is not an executable" >&2; exit 2; }
done
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-bench-$$-churn
BENCH=churn_ab.sh
. tools/bench/lib.sh || exit 1
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG2" ] || { echo "churn_ab.sh: no cgroup v2 mount" >&2; exit 1; }
CG=$CG2/sockway-bench-$$-churn-clients
SWD_PID=
bench_cleanup_first() {
	[ -n "$SWD_PID" ] && kill -TERM "$SWD_PID" 2>/dev/null && wait "$SWD_PID" 2>/dev/null
}
bench_cleanup_last() {
	"$SOCKWAY" accel del "$CG" >/dev/null 2>&1
	rmdir "$CG" 2>/dev/null
}
bench_prepare wrk
if ! command -v perf >/dev/null; then
	echo "churn_ab.sh: installing linux-perf from Debian" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null ||
		{ echo "churn_ab.sh: perf missing and could not be installed" >&2; exit 1; }
fi

BASE=$((30000 + ($$ % 100) * 20))
P_B1=$BASE P_B2=$((BASE + 1)) P_SWD=$((BASE + 2)) P_ADMIN=$((BASE + 3))

"$SOCKWAY" load >/dev/null || exit 1
mkdir "$CG" && "$SOCKWAY" accel add "$CG" >/dev/null || exit 1
# "${IN_CG[@]}" CMD...: CMD, in the clients' accelerated cgroup (the same process: sh
# moves itself, then execs CMD).
IN_CG=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG")
start b1 "${IN_CG[@]}" "$SWBACKEND" --name b1 --listen "127.0.0.1:$P_B1"
start b2 "${IN_CG[@]}" "$SWBACKEND" --name b2 --listen "127.0.0.1:$P_B2"
wait_http "http://127.0.0.1:$P_B1/__swbackend/stats" b1
wait_http "http://127.0.0.1:$P_B2/__swbackend/stats" b2
"$SOCKWAY" apply -f - >/dev/null <<EOF || exit 1
{"version": 1,
 "backends": {"b1": {"replicas": ["127.0.0.1:$P_B1"]},
              "b2": {"replicas": ["127.0.0.1:$P_B2"]}},
 "endpoints": {"small": {"route": "/small", "traffic": {"b1": 0.5, "b2": 0.5}}}}
EOF

# "${WRK[@]}" -dDURATION URL: the clients, from their cgroup.
WRK=("${IN_CG[@]}" wrk -t2 -c"$CONNECTIONS" -H 'Connection: close')
URL=http://127.0.0.1:$P_SWD/small/x

# run BIN: one measured run of sockwayd BIN; "REQ/S CPU_US BPF FUTEX" (per request) in
# $TMP/res. (Not in a subshell: bench_cleanup_first must see SWD_PID.) wrk runs as perf's
# workload, so that both count the same window. A run with wrk errors or non-2xx answers,
# or without perf's counts, is not a measure: the script stops.
run() {
	local t0 t1 n
	"$1" --listen "127.0.0.1:$P_SWD" --admin "127.0.0.1:$P_ADMIN" --workers "$WORKERS" \
		>"$TMP/sockwayd.log" 2>&1 &
	SWD_PID=$!
	wait_http "$URL"
	"${WRK[@]}" -d2s "$URL" >/dev/null 2>&1
	t0=$(cpu_ticks "$SWD_PID")
	perf stat -x, -e syscalls:sys_enter_bpf,syscalls:sys_enter_futex -p "$SWD_PID" \
		-o "$TMP/perf.txt" -- "${WRK[@]}" -d"${DURATION}s" "$URL" >"$TMP/wrk.out" 2>&1
	t1=$(cpu_ticks "$SWD_PID")
	kill -TERM "$SWD_PID"
	wait "$SWD_PID"
	SWD_PID=
	if grep -qE 'Non-2xx|Socket errors' "$TMP/wrk.out"; then
		echo "churn_ab.sh: $1: wrk saw errors, not a measure:" >&2
		grep -E 'Non-2xx|Socket errors' "$TMP/wrk.out" >&2
		exit 1
	fi
	n=$(awk '/ requests in / { print $1 }' "$TMP/wrk.out")
	awk -F, -v t=$((t1 - t0)) -v hz="$HZ" -v n="${n:-0}" \
		-v r="$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")" '
		$3 == "syscalls:sys_enter_bpf" && $1 ~ /^[0-9]+$/ { b = $1; nb++ }
		$3 == "syscalls:sys_enter_futex" && $1 ~ /^[0-9]+$/ { f = $1; nf++ }
		END { if (n > 0 && nb && nf)
			      printf "%.0f %.1f %.3f %.3f\n", r, t * 1e6 / hz / n, b / n, f / n }' \
		"$TMP/perf.txt" >"$TMP/res" 2>/dev/null
	if ! [ -s "$TMP/res" ]; then
		echo "churn_ab.sh: $1: no requests, or perf counted nothing:" >&2
		cat "$TMP/perf.txt" "$TMP/wrk.out" >&2 2>/dev/null
		exit 1
	fi
}

stats() { # stats FORMAT: "MEDIAN (LOW–HIGH)" of the numbers on stdin
	sort -g | awk -v f="$1" '{ a[NR] = $1 }
		END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		      printf f " (" f "–" f ")\n", m, a[1], a[NR] }'
}

echo "A: ${BINS[0]}"
echo "B: ${BINS[1]}"
echo "clients close after each request (wrk -t2 -c$CONNECTIONS, Connection: close, in an"
echo "accelerated cgroup with the backends); sockwayd --workers $WORKERS; $DURATION s runs after"
echo "2 s warm-ups, $PAIRS pairs in turns; per request: sockwayd's CPU, bpf(2) and futex(2) calls"
echo
echo "| pair | A req/s | B req/s | B / A | A CPU µs | B CPU µs | A bpf | B bpf | A futex | B futex |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
: >"$TMP/pairs"
for i in $(seq 1 "$PAIRS"); do
	if [ $((i % 2)) = 1 ]; then
		run "${BINS[0]}" && read -r ar ac ab af <"$TMP/res"
		run "${BINS[1]}" && read -r br bc bb bf <"$TMP/res"
	else
		run "${BINS[1]}" && read -r br bc bb bf <"$TMP/res"
		run "${BINS[0]}" && read -r ar ac ab af <"$TMP/res"
	fi
	q=$(awk -v a="$ar" -v b="$br" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }')
	echo "$ar $br $q $ac $bc $ab $bb $af $bf" >>"$TMP/pairs"
	echo "| $i | $ar | $br | $q | $ac | $bc | $ab | $bb | $af | $bf |"
done
echo
echo "medians (ranges): B / A req/s $(cut -d' ' -f3 "$TMP/pairs" | stats %.3f)"
echo "per request: CPU µs A $(cut -d' ' -f4 "$TMP/pairs" | stats %.1f)," \
	"B $(cut -d' ' -f5 "$TMP/pairs" | stats %.1f); bpf(2) A $(cut -d' ' -f6 "$TMP/pairs" |
		stats %.3f), B $(cut -d' ' -f7 "$TMP/pairs" | stats %.3f); futex(2)" \
	"A $(cut -d' ' -f8 "$TMP/pairs" | stats %.3f), B $(cut -d' ' -f9 "$TMP/pairs" | stats %.3f)"
