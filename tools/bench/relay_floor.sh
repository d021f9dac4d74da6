#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/relay_floor.sh: how close the userspace path comes, on 1 MiB responses, to
# the cheapest relay there is. Four targets on the same two 1 MiB backends, measured in
# rounds by the same wrk (-t2, 8 connections), the order rotating from round to round:
#   direct        wrk straight to one backend (no relay: the physical reference)
#   sockwayd      sockwayd --no-accel (nothing accelerated), 50/50 over the two backends
#   haproxy-http  HAProxy in HTTP mode with `option splice-response`, as run.sh runs it
#   haproxy-tcp   HAProxy in TCP mode splicing both ways: a relay that parses nothing, the
#                 floor of what any userspace HTTP router can cost on this work
# Per round: req/s, the machine's CPU per response (all CPUs busy, from /proc/stat: wrk
# and backends included) and the target's own (utime + stime of its process). Then the
# median and range of each, and of each target's req/s and machine CPU against
# haproxy-http in the same round.
#
#   tools/bench/relay_floor.sh [--duration S] [--rounds N] [--connections C]
#                                                              (after make, as root)
#
# Everything runs on 127.0.0.1 ports derived from its PID and is stopped, with its pin
# directory, on exit.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
DURATION=8
ROUNDS=5
CONNECTIONS=8
WORKERS=2

usage() { sed -n '3,21p' "$0" | sed 's/^# \{0,1\}//'; }
need_number() {
	case $2 in
	'' | *[!0-9]* | 0)
		echo "relay_floor.sh: $1 takes a positive whole number, not \"$2\"" >&2
		exit 2
		;;
	esac
}
while [ $# -gt 0 ]; do
	case $1 in
	--duration | --rounds | --connections)
		need_number "$1" "${2:-}"
		case $1 in
		--duration) DURATION=$2 ;;
		--rounds) ROUNDS=$2 ;;
		--connections) CONNECTIONS=$2 ;;
		esac
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	*) echo "relay_floor.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-bench-$$-floor
BENCH=relay_floor.sh
. tools/bench/lib.sh || exit 1
bench_prepare wrk haproxy

# Six ports below the ephemeral range (32768 up by default), none of them bound already.
BASE=$((31000 + ($$ % 70) * 10))
for _ in $(seq 70); do
	ss -Htan "( sport >= :$BASE and sport <= :$((BASE + 5)) )" | grep -q . || break
	BASE=$((BASE + 10))
	[ $BASE -ge 31700 ] && BASE=31000
done
P_BIG1=$BASE P_BIG2=$((BASE + 1)) P_SWD=$((BASE + 2)) P_ADMIN=$((BASE + 3))
P_HTTP=$((BASE + 4)) P_TCP=$((BASE + 5))

# HAProxy, both modes: the HTTP one as tools/bench/haproxy.conf.in has it for /big.
haproxy_cfg() { # haproxy_cfg MODE PORT
	cat <<EOF
global
	nbthread $WORKERS
	maxconn 4096
defaults
	mode $1
	timeout connect 2s
	timeout client 60s
	timeout server 60s
EOF
	if [ "$1" = http ]; then
		printf '\t%s\n' "option http-keep-alive" "option forwardfor" "http-reuse always" \
			"option splice-response"
	else
		printf '\t%s\n' "option splice-request" "option splice-response"
	fi
	cat <<EOF
frontend bench
	bind 127.0.0.1:$2
	default_backend big
backend big
	balance roundrobin
	server big1 127.0.0.1:$P_BIG1
	server big2 127.0.0.1:$P_BIG2
EOF
}
haproxy_cfg http "$P_HTTP" >"$TMP/http.cfg"
haproxy_cfg tcp "$P_TCP" >"$TMP/tcp.cfg"

"$SOCKWAY" load >/dev/null || exit 1
start big1 "$SWBACKEND" --name big1 --listen "127.0.0.1:$P_BIG1" --threads 2 --body-size 1048576
PID_DIRECT=$STARTED
start big2 "$SWBACKEND" --name big2 --listen "127.0.0.1:$P_BIG2" --threads 2 --body-size 1048576
wait_http "http://127.0.0.1:$P_BIG1/__swbackend/stats" big1
wait_http "http://127.0.0.1:$P_BIG2/__swbackend/stats" big2
"$SOCKWAY" apply -f - >/dev/null <<EOF || exit 1
{"version": 1,
 "backends": {"big1": {"replicas": ["127.0.0.1:$P_BIG1"]},
              "big2": {"replicas": ["127.0.0.1:$P_BIG2"]}},
 "endpoints": {"big": {"route": "/big", "traffic": {"big1": 0.5, "big2": 0.5}}}}
EOF
start sockwayd "$SOCKWAYD" --listen "127.0.0.1:$P_SWD" --admin "127.0.0.1:$P_ADMIN" \
	--workers "$WORKERS" --no-accel
PID_SWD=$STARTED
start haproxy-http haproxy -db -f "$TMP/http.cfg"
PID_HTTP=$STARTED
start haproxy-tcp haproxy -db -f "$TMP/tcp.cfg"
PID_TCP=$STARTED
wait_http "http://127.0.0.1:$P_SWD/big" sockwayd
wait_http "http://127.0.0.1:$P_HTTP/big" haproxy-http
wait_http "http://127.0.0.1:$P_TCP/big" haproxy-tcp

busy_ticks() { # all CPUs' busy clock ticks (user nice system irq softirq steal)
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# run TARGET: "REQ/S MACHINE_US PROC_US" per response of one wrk run after a 1 s warm-up.
# A run with errors or non-2xx answers is reported and ends the benchmark.
run() {
	local port pid b0 b1 c0 c1
	case $1 in
	direct) port=$P_BIG1 pid=$PID_DIRECT ;;
	sockwayd) port=$P_SWD pid=$PID_SWD ;;
	haproxy-http) port=$P_HTTP pid=$PID_HTTP ;;
	haproxy-tcp) port=$P_TCP pid=$PID_TCP ;;
	esac
	wrk -t2 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$port/big" >/dev/null 2>&1
	b0=$(busy_ticks) c0=$(cpu_ticks "$pid")
	wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$port/big" >"$TMP/wrk.out" 2>&1
	b1=$(busy_ticks) c1=$(cpu_ticks "$pid")
	if grep -qE 'Non-2xx|Socket errors' "$TMP/wrk.out"; then
		grep -E 'Non-2xx|Socket errors' "$TMP/wrk.out" | sed "s|^|relay_floor.sh: $1: |" >&2
		exit 1
	fi
	awk -v b=$((b1 - b0)) -v c=$((c1 - c0)) -v hz="$HZ" '
		/ requests in / { n = $1 }
		/^Requests\/sec:/ { r = $2 }
		END { if (n > 0) printf "%.0f %.1f %.1f\n", r, b * 1e6 / hz / n, c * 1e6 / hz / n }' \
		"$TMP/wrk.out"
}

TARGETS=(direct sockwayd haproxy-http haproxy-tcp)
echo "# relay floor: 1 MiB responses, wrk -t2 -c$CONNECTIONS, ${DURATION} s runs, $ROUNDS rounds," \
	"$(date -u '+%F %H:%M') UTC, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "| round | target | req/s | CPU µs/resp, machine | CPU µs/resp, target | req/s ×haproxy-http | machine CPU ×haproxy-http |"
echo "|---:|---|---:|---:|---:|---:|---:|"
: >"$TMP/all"
for round in $(seq 1 "$ROUNDS"); do
	: >"$TMP/round"
	for i in 0 1 2 3; do
		t=${TARGETS[$(((i + round - 1) % 4))]}
		echo "$t $(run "$t")" >>"$TMP/round"
	done
	# Ratios against haproxy-http of the same round.
	awk -v round="$round" '
		{ t[NR] = $1; r[NR] = $2; m[NR] = $3; p[NR] = $4; if ($1 == "haproxy-http") { hr = $2; hm = $3 } }
		END {
			for (i = 1; i <= NR; i++)
				printf "%d %s %s %s %s %.3f %.3f\n", round, t[i], r[i], m[i], p[i],
					r[i] / hr, m[i] / hm
		}' "$TMP/round" >>"$TMP/all"
	awk '$1 == '"$round"' { printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' \
		"$TMP/all"
done
echo
echo "| target | req/s (median) | machine µs/resp (median) | target µs/resp (median) | req/s ×haproxy-http: median (range) | machine CPU ×haproxy-http: median (range) |"
echo "|---|---:|---:|---:|---:|---:|"
for t in "${TARGETS[@]}"; do
	awk -v t="$t" '
		function med(a, n,   i, j, x) {
			for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		$2 == t { n++; r[n] = $3; m[n] = $4; p[n] = $5; rr[n] = $6; mr[n] = $7 }
		END {
			lo1 = hi1 = rr[1]; lo2 = hi2 = mr[1]
			for (i = 1; i <= n; i++) {
				if (rr[i] < lo1) lo1 = rr[i]; if (rr[i] > hi1) hi1 = rr[i]
				if (mr[i] < lo2) lo2 = mr[i]; if (mr[i] > hi2) hi2 = mr[i]
			}
			printf "| %s | %.0f | %.0f | %.0f | %.2f (%.2f–%.2f) | %.2f (%.2f–%.2f) |\n", t,
				med(r, n), med(m, n), med(p, n), med(rr, n), lo1, hi1, med(mr, n), lo2, hi2
		}' "$TMP/all"
done
echo
echo "machine: all CPUs busy (wrk and backends included); target: the relay's own process" \
	"(direct: the backend wrk hits)."
