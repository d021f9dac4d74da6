#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/ab.sh: what one of sockwayd's userspace-path features saves, side by side.
# Two sockwayds on one policy, both --no-accel (nothing accelerated: wrk, backends and
# sockwayds in no accelerated cgroup, so every socket is off the fast path), one as it runs
# by default, one with the feature off (--off OPTION), measured in turns (A B, B A, ...) by
# the same wrk on 1 MiB responses and small GETs. Prints each pair's req/s and sockwayd's
# CPU per response (utime + stime from /proc/PID/stat over the measured run, all threads),
# then the median and the range over the pairs of each column, and the metric that proves
# the feature worked on one side and not the other.
#   --off --no-pipe   the pipe (response bodies moved with splice(2), never copied into
#                     sockwayd; small GETs are the control it does not touch); the default
#   --off --no-uring  batched writes (one io_uring_enter per event-loop round)
#
#   tools/bench/ab.sh [--off OPTION] [--duration S] [--pairs N] [--connections C]
#                     [--big-connections C]                     (after make, as root)
# tools/bench/pipe_ab.sh is ab.sh --off --no-pipe.
#
# Everything runs on 127.0.0.1 ports derived from its PID and is stopped, with its pin
# directory, on exit.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
DURATION=8
PAIRS=3
CONNECTIONS=32
BIG_CONNECTIONS=8
WORKERS=2
OFF=--no-pipe

while [ $# -gt 0 ]; do
	case $1 in
	--off) OFF=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	--connections) CONNECTIONS=$2; shift 2 ;;
	--big-connections) BIG_CONNECTIONS=$2; shift 2 ;;
	-h | --help) sed -n '3,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "ab.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
# The metric that says the feature did its work, and what the table calls each side.
case $OFF in
--no-pipe) METRIC=sockway_piped_bytes_total ON=pipe WHAT="piped bytes" ;;
--no-uring) METRIC=sockway_batched_writes_total ON=batched WHAT="batched writes" ;;
*) echo "ab.sh: --off takes --no-pipe or --no-uring" >&2; exit 2 ;;
esac
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-bench-$$-ab
BENCH=ab.sh
. tools/bench/lib.sh || exit 1
bench_prepare wrk

BASE=$((30000 + ($$ % 100) * 20))
P_SMALL=$BASE P_BIG=$((BASE + 1)) P_PIPE=$((BASE + 2)) P_PIPE_ADMIN=$((BASE + 3))
P_COPY=$((BASE + 4)) P_COPY_ADMIN=$((BASE + 5))
metric() { # metric ADMIN_PORT: that sockwayd's $METRIC
	curl -s --max-time 10 "http://127.0.0.1:$1/metrics" | awk -v m="$METRIC" '$1 == m { print $2 }'
}

"$SOCKWAY" load >/dev/null || exit 1
start small "$SWBACKEND" --name small --listen "127.0.0.1:$P_SMALL" --threads 2
start big "$SWBACKEND" --name big --listen "127.0.0.1:$P_BIG" --threads 2 --body-size 1048576
wait_http "http://127.0.0.1:$P_SMALL/__swbackend/stats"
wait_http "http://127.0.0.1:$P_BIG/__swbackend/stats"
"$SOCKWAY" apply -f - >/dev/null <<EOF || exit 1
{"version": 1,
 "backends": {"small": {"replicas": ["127.0.0.1:$P_SMALL"]},
              "big": {"replicas": ["127.0.0.1:$P_BIG"]}},
 "endpoints": {"small": {"route": "/small", "traffic": {"small": 1}},
               "big": {"route": "/big", "traffic": {"big": 1}}}}
EOF
start on "$SOCKWAYD" --listen "127.0.0.1:$P_PIPE" --admin "127.0.0.1:$P_PIPE_ADMIN" \
	--workers "$WORKERS" --no-accel
PID_PIPE=$STARTED
start off "$SOCKWAYD" --listen "127.0.0.1:$P_COPY" --admin "127.0.0.1:$P_COPY_ADMIN" \
	--workers "$WORKERS" --no-accel "$OFF"
PID_COPY=$STARTED
wait_http "http://127.0.0.1:$P_PIPE/small/x"
wait_http "http://127.0.0.1:$P_COPY/small/x"

# run PORT PID PATH CONNECTIONS: "REQ/S CPU_US_PER_RESPONSE" of one wrk run (after a 1 s
# warm-up), CPU being sockwayd PID's over the measured run only. wrk's errors and non-2xx
# answers go to stderr: a run with any is not a measure of the feature.
run() {
	local t0 t1
	wrk -t2 -c"$4" -d1s "http://127.0.0.1:$1$3" >/dev/null 2>&1
	t0=$(cpu_ticks "$2")
	wrk -t2 -c"$4" -d"${DURATION}s" "http://127.0.0.1:$1$3" >"$TMP/wrk.out" 2>&1
	t1=$(cpu_ticks "$2")
	grep -E 'Non-2xx|Socket errors' "$TMP/wrk.out" | sed "s|^|ab.sh: port $1 $3: |" >&2
	awk -v t=$((t1 - t0)) -v hz="$HZ" '
		/ requests in / { n = $1 }
		/^Requests\/sec:/ { r = $2 }
		END { printf "%.0f %.1f\n", r, (n > 0 ? t * 1e6 / hz / n : 0) }' "$TMP/wrk.out"
}

# stats FORMAT: "MEDIAN LOW–HIGH" of the numbers on stdin, each printed with FORMAT (the
# median of an even count is the mean of the middle two).
stats() {
	sort -g | awk -v f="$1" '{ a[NR] = $1 }
		END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		      printf f " " f "–" f "\n", m, a[1], a[NR] }'
}

echo "sockwayd (default: $ON) against $OFF, both --no-accel; nothing accelerated"
echo "wrk -t2, $DURATION s runs after 1 s warm-ups, $PAIRS pairs in turns; small GETs:" \
	"$CONNECTIONS connections, 1 MiB: $BIG_CONNECTIONS; sockwayd --workers $WORKERS"
echo "CPU: sockwayd's utime + stime per response over each run ($HZ ticks per second)"
echo
echo "| workload | pair | $ON req/s | $OFF req/s | req/s $ON / $OFF | $ON CPU µs/resp | $OFF CPU µs/resp | CPU $ON / $OFF |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
m0=$(metric "$P_PIPE_ADMIN")
for wl in big small; do
	c=$CONNECTIONS
	[ $wl = big ] && c=$BIG_CONNECTIONS
	: >"$TMP/$wl.pairs"
	for i in $(seq 1 "$PAIRS"); do
		# Alternate which goes first, so that a drift of the machine favours neither.
		if [ $((i % 2)) = 1 ]; then
			read -r pr pc < <(run "$P_PIPE" "$PID_PIPE" "/$wl/x" "$c")
			read -r cr cc < <(run "$P_COPY" "$PID_COPY" "/$wl/x" "$c")
		else
			read -r cr cc < <(run "$P_COPY" "$PID_COPY" "/$wl/x" "$c")
			read -r pr pc < <(run "$P_PIPE" "$PID_PIPE" "/$wl/x" "$c")
		fi
		rr=$(awk -v a="$pr" -v b="$cr" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
		cpur=$(awk -v a="$pc" -v b="$cc" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
		echo "$pr $cr $rr $pc $cc $cpur" >>"$TMP/$wl.pairs"
		echo "| $wl | $i | $pr | $cr | $rr | $pc | $cc | $cpur |"
	done
	med=() rng=()
	formats=(%.0f %.0f %.3f %.1f %.1f %.3f)
	for col in 1 2 3 4 5 6; do
		read -r m r < <(awk -v c=$col '{ print $c }' "$TMP/$wl.pairs" | stats "${formats[col - 1]}")
		med+=("$m")
		rng+=("$r")
	done
	echo "| $wl | median | ${med[0]} | ${med[1]} | **${med[2]}** | ${med[3]} | ${med[4]} | **${med[5]}** |"
	echo "| $wl | range | ${rng[0]} | ${rng[1]} | ${rng[2]} | ${rng[3]} | ${rng[4]} | ${rng[5]} |"
done
echo
# The A/B means something only if the feature worked on one side and not the other.
echo "$WHAT: default sockwayd $(($(metric "$P_PIPE_ADMIN") - m0))," \
	"$OFF sockwayd $(metric "$P_COPY_ADMIN")"
