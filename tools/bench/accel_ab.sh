#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/accel_ab.sh: what sockwayd's default (the kernel fast path on) costs when
# nothing it talks to is accelerated: wrk and the backends outside every accelerated
# cgroup, as with remote clients and backends, so the fast path has nothing to gain. Two
# sockwayds on one policy, one as it runs by default (in its own accelerated cgroup), one
# with --no-accel, measured in turns (A B A B ...) by the same wrk on small GETs and on
# 1 MiB responses; prints each pair and the median ratio default / --no-accel.
#
#   tools/bench/accel_ab.sh [--duration S] [--pairs N] [--connections C] [--big-connections C]
#                                                               (after make, as root)
#
# Everything runs on 127.0.0.1 ports derived from its PID and is stopped, with its pin
# directory and cgroup, on exit.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
DURATION=8
PAIRS=3
CONNECTIONS=32
BIG_CONNECTIONS=8
WORKERS=2

while [ $# -gt 0 ]; do
	case $1 in
	--duration) DURATION=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	--connections) CONNECTIONS=$2; shift 2 ;;
	--big-connections) BIG_CONNECTIONS=$2; shift 2 ;;
	-h | --help) sed -n '3,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "accel_ab.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-bench-$$-ab
CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
BENCH=accel_ab.sh
. tools/bench/lib.sh || exit 1
bench_cleanup_last() {
	"$SOCKWAY" accel off >/dev/null 2>&1
	rmdir "$CGROUP2/$(basename "$SOCKWAY_PIN_ROOT")" 2>/dev/null
}
bench_prepare wrk

BASE=$((30000 + ($$ % 100) * 20))
P_SMALL=$BASE P_BIG=$((BASE + 1)) P_DEF=$((BASE + 2)) P_DEF_ADMIN=$((BASE + 3))
P_OFF=$((BASE + 4)) P_OFF_ADMIN=$((BASE + 5))

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
start default "$SOCKWAYD" --listen "127.0.0.1:$P_DEF" --admin "127.0.0.1:$P_DEF_ADMIN" \
	--workers "$WORKERS"
start no-accel "$SOCKWAYD" --listen "127.0.0.1:$P_OFF" --admin "127.0.0.1:$P_OFF_ADMIN" \
	--workers "$WORKERS" --no-accel
wait_http "http://127.0.0.1:$P_DEF/small/x"
wait_http "http://127.0.0.1:$P_OFF/small/x"
# The comparison means something only if the default one is on the fast path.
cg="/$(basename "$SOCKWAY_PIN_ROOT")"
[ "$(sed -n 's/^0:://p' "/proc/${PIDS[2]}/cgroup")" = "$cg" ] &&
	"$SOCKWAY" -j accel list | jq -e --arg p "$CGROUP2$cg" 'any(.cgroups[]; .path == $p)' >/dev/null ||
	{ echo "accel_ab.sh: the default sockwayd did not join its accelerated cgroup $CGROUP2$cg" >&2; exit 1; }

# rps PORT PATH CONNECTIONS: wrk's requests/s (a 1 s warm-up first).
rps() {
	wrk -t2 -c"$3" -d1s "http://127.0.0.1:$1$2" >/dev/null 2>&1
	wrk -t2 -c"$3" -d"${DURATION}s" "http://127.0.0.1:$1$2" 2>&1 |
		awk '/^Requests\/sec:/ { print $2 } /Non-2xx|Socket errors/ { print "ERR " $0 > "/dev/stderr" }'
}

echo "sockwayd default (accelerated cgroup) against --no-accel; wrk and backends not accelerated"
echo "wrk -t2, $DURATION s runs; small: $CONNECTIONS connections, 1 MiB: $BIG_CONNECTIONS"
echo
echo "| workload | pair | default req/s | --no-accel req/s | default / --no-accel |"
echo "|---|---:|---:|---:|---:|"
for wl in small big; do
	c=$CONNECTIONS
	[ $wl = big ] && c=$BIG_CONNECTIONS
	ratios=()
	for i in $(seq 1 "$PAIRS"); do
		# Alternate which goes first, so that a drift of the machine favours neither.
		if [ $((i % 2)) = 1 ]; then
			d=$(rps "$P_DEF" "/$wl/x" "$c")
			o=$(rps "$P_OFF" "/$wl/x" "$c")
		else
			o=$(rps "$P_OFF" "/$wl/x" "$c")
			d=$(rps "$P_DEF" "/$wl/x" "$c")
		fi
		r=$(awk -v d="$d" -v o="$o" 'BEGIN { printf "%.3f", (o > 0 ? d / o : 0) }')
		ratios+=("$r")
		echo "| $wl | $i | $d | $o | $r |"
	done
	echo "| $wl | median | | | $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }') |"
done
echo
"$SOCKWAY" -j accel list | jq -c '.stats | {sockets, untracked, passed, redirected}' |
	sed 's/^/accel_stats: /'
curl -s "http://127.0.0.1:$P_DEF_ADMIN/metrics" |
	awk '$1 ~ /^sockway_(upstream_untracked|lend_opened|kroute_[a-z]*|connections)_total$/ {
		print "default sockwayd: " $1 " " $2 }'
