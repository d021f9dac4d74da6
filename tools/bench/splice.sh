#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/splice.sh: what the kernel splice of response bodies saves sockwayd. A
# backend sends each response head, then an 8 MiB body in 256 KiB pieces 2 ms apart (the
# body arrives after sockwayd forwarded the head: what the splice takes); curl downloads it
# N times through sockwayd with the fast path, once with the splice (default) and once with
# --no-splice (the body crosses sockwayd: read, then write). Prints sockwayd's CPU time and
# the wall time per download, and the kernel path's counters.
#
#   tools/bench/splice.sh [N]     (after make, as root; N defaults to 40)
#
# Everything runs on 127.0.0.1 ports derived from the PID, in a cgroup and a pin directory
# of its own, removed at exit.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUTPUT=${OUTPUT:-.output}
SOCKWAY=$OUTPUT/sockway
SOCKWAYD=$OUTPUT/sockwayd
N=${1:-40}
BODY=8388608
PORT=$((30000 + ($$ % 500) * 10))
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-splice-$$
CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
# The clients' cgroup: not the pin directory's name, which is sockwayd's own cgroup.
CG=$CGROUP2/sockway-splice-clients-$$
PIDS=()
LOG=$(mktemp)

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	# Whatever is left in our cgroup is ours (a python3 wrapper may have forked the backend).
	if [ -d "$CG" ]; then
		for p in $(cat "$CG/cgroup.procs"); do
			kill "$p" 2>/dev/null
		done
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			[ -s "$CG/cgroup.procs" ] || break
			sleep 0.1
		done
	fi
	"$SOCKWAY" accel off >/dev/null 2>&1
	"$SOCKWAY" unload >/dev/null 2>&1
	[ -d "$CG" ] && rmdir "$CG"
	rm -f "$LOG"
	[ -d "$CGROUP2/$(basename "$SOCKWAY_PIN_ROOT")" ] && rmdir "$CGROUP2/$(basename "$SOCKWAY_PIN_ROOT")"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "splice.sh: run as root" >&2; exit 1; }
[ -n "$CGROUP2" ] || { echo "splice.sh: no cgroup2 mount" >&2; exit 1; }
[ -x "$SOCKWAYD" ] || { echo "splice.sh: run make first" >&2; exit 1; }

# in_cg CMD...: CMD in the accelerated cgroup.
in_cg() {
	bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"
}

# cpu_ticks PID: user + system clock ticks of a process.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

"$SOCKWAY" load >/dev/null || exit 1
mkdir "$CG" || exit 1
"$SOCKWAY" accel add "$CG" >/dev/null || exit 1
in_cg python3 tests/integration/drip_backend.py "$PORT" "$BODY" 262144 2 >/dev/null 2>&1 &
PIDS+=($!)
"$SOCKWAY" backend create drip "127.0.0.1:$PORT" >/dev/null || exit 1
"$SOCKWAY" endpoint create drip --route /drip --backend drip >/dev/null || exit 1
sleep 0.5

hz=$(getconf CLK_TCK)
printf '%-12s %22s %22s %16s\n' mode "sockwayd CPU/download" "wall time/download" "bytes spliced"
for mode in splice no-splice; do
	args=()
	[ "$mode" = no-splice ] && args=(--no-splice)
	"$SOCKWAYD" --listen "127.0.0.1:$((PORT + 1))" --admin "127.0.0.1:$((PORT + 2))" \
		--workers 1 "${args[@]}" 2>"$LOG" &
	swd=$!
	PIDS+=("$swd")
	for _ in $(seq 50); do
		grep -q '; ready' "$LOG" && break
		sleep 0.1
	done
	grep -q '; ready' "$LOG" || { echo "splice.sh: sockwayd did not start:" >&2; cat "$LOG" >&2; exit 1; }
	sb0=$("$SOCKWAY" -j accel list | jq .stats.spliced_bytes)
	t0=$(cpu_ticks "$swd")
	w0=${EPOCHREALTIME/./}
	for ((i = 0; i < N; i++)); do
		size=$(in_cg curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$((PORT + 1))/drip/x")
		[ "$size" = "$BODY" ] || { echo "splice.sh: a download got $size bytes" >&2; exit 1; }
	done
	w1=${EPOCHREALTIME/./}
	t1=$(cpu_ticks "$swd")
	sb1=$("$SOCKWAY" -j accel list | jq .stats.spliced_bytes)
	printf '%-12s %19d us %19d ms %15.1f%%\n' "$mode" $(((t1 - t0) * 1000000 / hz / N)) \
		$(((w1 - w0) / 1000 / N)) "$(echo "100 * ($sb1 - $sb0) / ($N * $BODY)" | bc -l)"
	kill "$swd"
	wait "$swd" 2>/dev/null
done
echo "($N downloads of $BODY bytes each; CPU from /proc/PID/stat at $hz ticks per second)"
