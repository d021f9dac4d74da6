# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
#
# tools/bench/lib.sh: what the side-by-side benchmarks (ab.sh, accel_ab.sh, relay_floor.sh,
# churn_ab.sh) share. Sourced from the repository root with BENCH set to the script's name (for its
# messages); sets OUTPUT, SOCKWAY, SOCKWAYD, SWBACKEND, HZ, TMP (removed by bench_stop_all)
# and PIDS (what start started), and the exit trap (bench_exit).

OUTPUT=${OUTPUT:-.output}
SOCKWAY=$OUTPUT/sockway
SOCKWAYD=$OUTPUT/sockwayd
SWBACKEND=$OUTPUT/tools/swbackend
HZ=$(getconf CLK_TCK)
TMP=$(mktemp -d)
PIDS=()

# bench_prepare CMD...: root and the binaries built, or exit 1; then installs from Debian
# the packages named CMD (each the package of the same name) whose command is missing.
bench_prepare() {
	local want=() b p
	[ "$(id -u)" = 0 ] || { echo "$BENCH: run as root" >&2; exit 1; }
	for b in "$SOCKWAY" "$SOCKWAYD" "$SWBACKEND"; do
		[ -x "$b" ] || { echo "$BENCH: $b is missing; run make first" >&2; exit 1; }
	done
	for p in "$@"; do
		command -v "$p" >/dev/null || want+=("$p")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	echo "$BENCH: installing ${want[*]} from Debian" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null ||
		{ echo "$BENCH: ${want[*]} missing and could not be installed" >&2; exit 1; }
}

# bench_stop_all: stops what start started (TERM, then waits for each) and removes TMP.
bench_stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	rm -rf "$TMP"
}

# On exit (INT and TERM exit 130): the script's bench_cleanup_first if it defines one (what
# it started without start), what start started, its bench_cleanup_last if any (what needs
# those processes gone: cgroups), then the pin directory.
bench_exit() {
	declare -F bench_cleanup_first >/dev/null && bench_cleanup_first
	bench_stop_all
	declare -F bench_cleanup_last >/dev/null && bench_cleanup_last
	"$SOCKWAY" unload >/dev/null 2>&1
}
trap bench_exit EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: in the background, log in $TMP/NAME.log; its PID in $STARTED.
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
}

# wait_http URL [NAME]: until URL answers (60 s at most); else exit 1, with the end of
# NAME's log if given.
wait_http() {
	local i
	for i in $(seq 1 600); do
		curl -sf -o /dev/null --max-time 5 "$1" && return 0
		sleep 0.1
	done
	echo "$BENCH: $1 did not answer" >&2
	if [ -n "${2:-}" ]; then
		echo "$BENCH: the end of the log of $2:" >&2
		tail -n 5 "$TMP/$2.log" >&2
	fi
	exit 1
}

# cpu_ticks PID: user + system clock ticks of the process, all its threads.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
