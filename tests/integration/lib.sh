# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
# shellcheck shell=bash
#
# Helpers for the bash integration tests. Each test runs the real sockway binary as root
# against its own pin directory (SOCKWAY_PIN_ROOT), unpins it at exit, and ends with
# "N passed, M failed".
set -u
# Debian's tools first, as tests/run.sh has it, for a test run alone.
case $PATH in
/usr/sbin:/usr/bin:/sbin:/bin:*) ;;
*) export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH ;;
esac
SOCKWAY=${SOCKWAY:-.output/sockway}
export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-test-$$
PASS=0
FAIL=0
TMP=$(mktemp -d)

if [ "$(id -u)" != 0 ]; then
	echo "not ok - this test needs root (BPF maps, bpffs)"
	echo "0 passed, 1 failed"
	exit 1
fi

# Processes a test started (backends, sockwayd, clients), stopped by PID at exit.
LIB_PIDS=()
# cgroup v2 directories a test created (cgroup_new), removed at exit once their processes
# are gone, children first.
LIB_CGROUPS=()
# The cgroup v2 directory the test's shell came from, when accel_mode_enter moved it out;
# it goes back there at exit, since a cgroup with a process in it cannot be removed.
LIB_HOME_CGROUP=

# lib_stop_all: kills every process the test started and waits for them (a test with more
# to undo before lib_cleanup, such as namespaces its processes live in, calls it first).
# Under the sanitizers (ASAN_OPTIONS set: tests/run.sh's sanitized pass), each sockwayd
# goes last, with SIGTERM, so that it leaves through main and LeakSanitizer checks it
# (SIGKILL after 10 s).
lib_stop_all() {
	local pid i rest=() term=()
	for pid in "${LIB_PIDS[@]}"; do
		if [ -n "${ASAN_OPTIONS:-}" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sockwayd ]; then
			term+=("$pid")
		else
			rest+=("$pid")
		fi
	done
	for pid in "${rest[@]}"; do
		kill -KILL "$pid" 2>/dev/null
	done
	for pid in "${rest[@]}"; do
		wait "$pid" 2>/dev/null
	done
	for pid in "${term[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${term[@]}"; do
		for i in $(seq 1 100); do
			# Gone, or exited and not yet reaped (kill -0 still finds a zombie).
			case $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) in
			'' | Z) break ;;
			esac
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
}

# free_net V4 [V6]: a number N such that no route but the default one covers V4.N.1 (nor
# V6:N::1): a /24 (and /64) a test can give a veth pair without shadowing a real network.
# Empty if there is none. Never 0: V6:0::1 is written V6::1 by every tool, so a test's
# "V6:$N::" would not match what it reads back.
free_net() {
	local n
	for n in $(seq $(($$ % 200 + 1)) 255) $(seq 1 $(($$ % 200))); do
		ip -4 route show match "$1.$n.1" | grep -qv '^default' && continue
		[ -n "${2:-}" ] && ip -6 route show match "$2:$n::1" | grep -qv '^default' && continue
		echo "$n"
		return
	done
}

lib_cleanup() {
	local i _
	lib_stop_all
	if [ -d "$SOCKWAY_PIN_ROOT" ]; then
		# A test that accelerated cgroups turns the kernel path off before unpinning it.
		[ ${#LIB_CGROUPS[@]} -gt 0 ] && "$SOCKWAY" accel off >/dev/null 2>&1
		"$SOCKWAY" unload >/dev/null 2>&1 || rm -rf "$SOCKWAY_PIN_ROOT"
	fi
	# sockwayd names its cgroup after the pin directory and leaves it on a clean exit;
	# killed, it could not: remove it here (it is empty once the processes are gone).
	if [ -n "${CGROUP2:-}" ]; then
		LIB_CGROUPS=("$CGROUP2/$(basename "$SOCKWAY_PIN_ROOT")" "${LIB_CGROUPS[@]}")
	fi
	[ -n "$LIB_HOME_CGROUP" ] && echo $$ >"$LIB_HOME_CGROUP/cgroup.procs" 2>/dev/null
	for ((i = ${#LIB_CGROUPS[@]} - 1; i >= 0; i--)); do
		for _ in $(seq 1 20); do
			if rmdir "${LIB_CGROUPS[i]}" 2>/dev/null || [ ! -d "${LIB_CGROUPS[i]}" ]; then
				break
			fi
			sleep 0.05
		done
	done
	rm -rf "$TMP"
}
trap lib_cleanup EXIT
# A signal ends the test through exit, so that the EXIT trap still stops what it started.
trap 'exit 130' INT TERM HUP

pass() {
	PASS=$((PASS + 1))
	echo "ok - $1"
}

fail() {
	FAIL=$((FAIL + 1))
	echo "not ok - $1"
	[ $# -gt 1 ] && echo "    $2"
	return 0
}

# check DESC CMD...: CMD succeeds.
check() {
	local desc=$1
	shift
	if "$@" >"$TMP/check.out" 2>"$TMP/check.err"; then
		pass "$desc"
	else
		fail "$desc" "exit $?: $(head -c 400 "$TMP/check.err")"
	fi
}

# sw ARGS...: runs sockway, stdout in $TMP/out, stderr in $TMP/err, exit code in $RC.
sw() {
	"$SOCKWAY" "$@" >"$TMP/out" 2>"$TMP/err"
	RC=$?
}

# refused DESC PATTERN ARGS...: sockway ARGS exits 1 with one stderr line matching PATTERN,
# and the exported policy is byte-identical before and after.
refused() {
	local desc=$1 pattern=$2 before after lines
	shift 2
	before=$("$SOCKWAY" export)
	sw "$@"
	after=$("$SOCKWAY" export)
	lines=$(wc -l <"$TMP/err")
	if [ "$RC" -ne 1 ]; then
		fail "$desc" "exit $RC, expected 1; stderr: $(cat "$TMP/err")"
	elif [ "$lines" -ne 1 ]; then
		fail "$desc" "expected one line on stderr, got $lines: $(cat "$TMP/err")"
	elif ! grep -qE -- "$pattern" "$TMP/err"; then
		fail "$desc" "stderr does not match /$pattern/: $(cat "$TMP/err")"
	elif [ "$before" != "$after" ]; then
		fail "$desc" "the policy changed although the command was refused"
	else
		pass "$desc"
	fi
}

# eq DESC GOT WANT
eq() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1" "got '$2', want '$3'"
	fi
}

# le DESC A B: A <= B, as numbers (awk, so floats work).
le() {
	if awk -v a="$2" -v b="$3" 'BEGIN { exit !(a <= b) }'; then
		pass "$1"
	else
		fail "$1" "$2 > $3"
	fi
}

# ge DESC A B: A >= B, as numbers.
ge() {
	if awk -v a="$2" -v b="$3" 'BEGIN { exit !(a >= b) }'; then
		pass "$1"
	else
		fail "$1" "$2 < $3"
	fi
}

finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# --- processes: backends, sockwayd, clients --------------------------------------------------
# Every test uses ports PORT_BASE .. PORT_BASE + 49 on 127.0.0.1, derived from its PID so that
# two runs at once do not collide; port N is $(port N).
OUTPUT=${OUTPUT:-.output}
SOCKWAYD=${SOCKWAYD:-$OUTPUT/sockwayd}
SWBACKEND=${SWBACKEND:-$OUTPUT/tools/swbackend}
SWCLIENT=${SWCLIENT:-$OUTPUT/tools/swclient}
PORT_BASE=$((20000 + ($$ % 200) * 50))

port() {
	echo $((PORT_BASE + $1))
}

# The cgroup v2 mount (empty if there is none).
CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)

# stat_of FIELD: a counter of the kernel fast path, "sockway -j accel list" .stats.FIELD.
stat_of() {
	"$SOCKWAY" -j accel list | jq -r ".stats.$1"
}

# stat_above FIELD VALUE: the accel_stats counter FIELD is above VALUE now (for wait_until).
stat_above() {
	[ "$(stat_of "$1")" -gt "$2" ]
}

# accel_queue: the bytes a client's sk_msg queue takes before sends to it take TCP
# (sk_msg.bpf.c, has_room): SW_ACCEL_QUEUE (4 MiB), or tcp_rmem[2] if that is smaller, for a
# socket whose SO_RCVBUF is below it, as every client's here is.
accel_queue() {
	awk '{ print ($3 < 4194304 ? $3 : 4194304) }' /proc/sys/net/ipv4/tcp_rmem
}

# kernel_warnings: kernel log lines that say something went wrong (compare before/after).
kernel_warnings() {
	dmesg | grep -cE 'WARNING|BUG|Oops|refcount'
}

# cgroup_new NAME [PARENT]: creates the cgroup v2 directory sockway-test-$$-NAME under PARENT
# (default: the cgroup2 mount), removed at exit; its path is in $CGROUP.
cgroup_new() {
	CGROUP=${2:-$CGROUP2}/sockway-test-$$-$1
	mkdir "$CGROUP" || return 1
	LIB_CGROUPS+=("$CGROUP")
}

# lib_exec CMD...: in a subshell (a background job or "( ... )"), moves it into the cgroup v2
# directory $SPAWN_CGROUP when that is set, then execs CMD, which keeps the subshell's PID.
# "SPAWN_CGROUP=DIR spawn ..." (or start_backend, start_sockwayd, client) runs CMD in DIR.
lib_exec() {
	if [ -n "${SPAWN_CGROUP:-}" ]; then
		echo "$BASHPID" >"$SPAWN_CGROUP/cgroup.procs" || exit 126
	fi
	exec "$@"
}

# spawn NAME CMD...: starts CMD in the background with its output in $TMP/NAME.log, records
# its PID for the cleanup and leaves it in $SPAWNED.
spawn() {
	local name=$1
	shift
	lib_exec "$@" >"$TMP/$name.log" 2>&1 &
	SPAWNED=$!
	LIB_PIDS+=("$SPAWNED")
}

# stop_pid PID [SIGNAL]: signals PID (TERM by default) and waits for it; its exit code is in
# $STOP_RC. Only processes this test started are ever signalled.
stop_pid() {
	local i
	kill -"${2:-TERM}" "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	# shellcheck disable=SC2034 # read by the tests
	STOP_RC=$?
	# Reaped: its PID may be another process's from now on, which the cleanup must not kill.
	for i in "${!LIB_PIDS[@]}"; do
		[ "${LIB_PIDS[$i]}" = "$1" ] && unset 'LIB_PIDS[i]'
	done
	return 0
}

# How long a test waits for a state it expects before it calls it a failure: generous for a
# busy 2-core machine, where tests run beside other tests and load (STYLE.md rule 16). A
# wait that succeeds ends as soon as the state is there, so this costs a passing run nothing.
WAIT_S=60

# wait_until SECONDS CMD...: runs CMD every 50 ms until it succeeds; 1 if it never did.
wait_until() {
	local deadline=$((${EPOCHREALTIME/./} + $1 * 1000000))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "${EPOCHREALTIME/./}" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

# backend_stats PORT: the swbackend's own counters, {"name","requests","shadow_requests",
# "body_bytes"}, asked of it directly (the stats request itself is not counted).
backend_stats() {
	curl -s --max-time 30 "http://127.0.0.1:$1/__swbackend/stats"
}

# backend_count PORT FIELD: one of those counters.
backend_count() {
	backend_stats "$1" | jq -r ".$2"
}

# start_backend NAME PORT [ARGS...]: a swbackend named NAME on 127.0.0.1:PORT; waits until it
# answers. Its PID is in $BACKEND_PID (and in the cleanup list).
start_backend() {
	local name=$1 p=$2
	shift 2
	spawn "backend-$name-$p" "$SWBACKEND" --name "$name" --listen "127.0.0.1:$p" "$@"
	# shellcheck disable=SC2034 # read by the tests
	BACKEND_PID=$SPAWNED
	if ! wait_until "$WAIT_S" backend_stats "$p"; then
		fail "swbackend $name on port $p did not start" "$(head -c 400 "$TMP/backend-$name-$p.log")"
		return 1
	fi
}

# start_sockwayd LISTEN_PORT ADMIN_PORT [ARGS...]: sockwayd on 127.0.0.1, waits for "ready" on
# its stderr. Its PID is in $SWD_PID, its log in $SWD_LOG. After accel_mode_enter, it runs
# with --no-accel in mode off, and must have joined its accelerated cgroup in mode on.
start_sockwayd() {
	local p=$1 a=$2
	shift 2
	[ "$ACCEL_MODE" = off ] && set -- "$@" --no-accel
	SWD_LOG=$TMP/sockwayd-$p-$SECONDS-$RANDOM.log
	lib_exec "$SOCKWAYD" --listen "127.0.0.1:$p" --admin "127.0.0.1:$a" "$@" >"$SWD_LOG" 2>&1 &
	SWD_PID=$!
	LIB_PIDS+=("$SWD_PID")
	if ! wait_until "$WAIT_S" grep -q '; ready' "$SWD_LOG"; then
		fail "sockwayd on port $p did not print ready" "$(head -c 400 "$SWD_LOG")"
		return 1
	fi
	if [ "$ACCEL_MODE" = on ] && ! sockwayd_accelerated "$SWD_PID"; then
		fail "sockwayd on port $p joined its accelerated cgroup $(swd_cgroup)" \
			"it is in $(sed -n 's/^0:://p' "/proc/$SWD_PID/cgroup"); accel list: $("$SOCKWAY" -j accel list 2>&1 | head -c 300); log: $(head -c 300 "$SWD_LOG")"
		return 1
	fi
}

# client URL_PATH ARGS...: swclient against $SWD_URL (http://127.0.0.1:PORT), JSON in
# $TMP/client.json; 1 (and a failure) if it could not run.
client() {
	local path=$1
	shift
	if ! (lib_exec "$SWCLIENT" --url "$SWD_URL$path" "$@") >"$TMP/client.json" 2>"$TMP/client.err"; then
		fail "swclient $path $* could not run" "$(head -c 400 "$TMP/client.err")"
		return 1
	fi
}

# bodies_ok FILE N SHA: FILE holds N whole responses (ka_client.py KA_OUT), each a 200 whose
# body has that sha256, in order.
bodies_ok() {
	python3 - "$1" "$2" "$3" <<'EOF'
import hashlib, sys
data, n, want = open(sys.argv[1], "rb").read(), int(sys.argv[2]), sys.argv[3]
for i in range(n):
    head, _, data = data.partition(b"\r\n\r\n")
    length = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")[1:]
              if l.lower().startswith(b"content-length:")][0]
    body, data = data[:length], data[length:]
    if not head.startswith(b"HTTP/1.1 200") or hashlib.sha256(body).hexdigest() != want:
        sys.exit("response %d: %r, %d bytes" % (i, head[:40], len(body)))
sys.exit(1 if data else 0)
EOF
}

# admin_metric ADMIN_PORT NAME: the value of the metric line NAME of the sockwayd whose admin
# port is ADMIN_PORT.
admin_metric() {
	curl -s --max-time 30 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# metric NAME: the value of the metric line NAME (with its labels, as printed) of sockwayd's
# /metrics on $SWD_ADMIN.
metric() {
	curl -s --max-time 30 "http://127.0.0.1:$SWD_ADMIN/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

# cj FILTER [JQ_OPTIONS...]: jq -r FILTER on the last client result.
cj() {
	local filter=$1
	shift
	jq -r "$@" "$filter" "$TMP/client.json"
}

# share ENDPOINT BACKEND: BACKEND's share of ENDPOINT's live slot table (slots / 16384).
share() {
	"$SOCKWAY" -j traffic show "$1" |
		jq -r --arg b "$2" '([.backends[] | select(.backend == $b) | .slots] | add // 0) / .slots'
}

# within DESC OBSERVED N P: OBSERVED successes of N trials with probability P are within
# n*p +- (5.5 * sqrt(n*p*(1-p)) + 1), a two-sided bound that fails about 4e-8 of the time.
within() {
	local lo hi
	read -r lo hi < <(awk -v n="$3" -v p="$4" 'BEGIN {
		m = n * p; d = 5.5 * sqrt(n * p * (1 - p)) + 1
		printf "%.3f %.3f\n", m - d, m + d }')
	if awk -v o="$2" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(o >= lo && o <= hi) }'; then
		pass "$1 ($2 in [$lo, $hi])"
	else
		fail "$1" "got $2 of $3, want [$lo, $hi] (p = $4)"
	fi
}

# cell ENDPOINT BACKEND ROLE FILTER: FILTER (jq, on the counters object) of one counter cell
# of "sockway -j stats"; 0 when the cell does not exist.
cell() {
	"$SOCKWAY" -j stats | jq -r --arg e "$1" --arg b "$2" --arg r "$3" \
		"[.[] | select(.endpoint == \$e and .backend == \$b and .role == \$r) | .counters | $4] | first // 0"
}

# cell_is ENDPOINT BACKEND ROLE FILTER WANT: the cell's FILTER is WANT (for wait_until).
cell_is() {
	[ "$(cell "$1" "$2" "$3" "$4")" = "$5" ]
}

# --- acceleration mode: the same script with the kernel fast path on and off ----------------------
# A script that calls accel_mode_enter (after "sockway load") runs in the mode named by
# SOCKWAY_TEST_ACCEL; tests/run.sh runs it once in each.
#   on (the default): the test's shell moves into an accelerated cgroup, so every backend,
#     client and curl it starts from then on is in it, and sockwayd joins its own accelerated
#     cgroup (swd_cgroup) as it does by default;
#   off: no cgroup is accelerated and sockwayd runs with --no-accel.
# accel_mode_verify, at the end of the script, proves the mode from the accel_stats counters
# of the test's own pin directory, rather than assuming it.
ACCEL_MODE=
# accel_stats when accel_mode_enter ran, to compare with at the end.
ACCEL_STATS0=

# swd_cgroup: where sockwayd puts itself unless --no-accel (named after the pin directory).
swd_cgroup() {
	echo "$CGROUP2/$(basename "$SOCKWAY_PIN_ROOT")"
}

# sockwayd_accelerated PID: sockwayd PID is in swd_cgroup, and that cgroup is accelerated.
sockwayd_accelerated() {
	local cg
	cg=$(swd_cgroup)
	[ "$(sed -n 's/^0:://p' "/proc/$1/cgroup")" = "${cg#"$CGROUP2"}" ] &&
		"$SOCKWAY" -j accel list | jq -e --arg p "$cg" 'any(.cgroups[]; .path == $p)' >/dev/null
}

accel_mode_enter() {
	ACCEL_MODE=${SOCKWAY_TEST_ACCEL:-on}
	ACCEL_STATS0=$("$SOCKWAY" -j accel list | jq -c .stats)
	case $ACCEL_MODE in
	off)
		echo "# acceleration off: sockwayd --no-accel, no accelerated cgroup"
		;;
	on)
		if [ -z "$CGROUP2" ]; then
			fail "accel on: a cgroup v2 hierarchy is mounted (see /proc/mounts)"
			finish
			exit 1
		fi
		cgroup_new accel || { fail "accel on: cannot create a cgroup under $CGROUP2"; finish; exit 1; }
		check "accel on: sockway accel add $CGROUP" "$SOCKWAY" accel add "$CGROUP"
		LIB_HOME_CGROUP=$CGROUP2$(sed -n 's/^0:://p' /proc/$$/cgroup)
		LIB_HOME_CGROUP=${LIB_HOME_CGROUP%/}
		echo $$ >"$CGROUP/cgroup.procs"
		eq "accel on: the test's shell (and all it starts) is in $CGROUP" \
			"$CGROUP2$(sed -n 's/^0:://p' /proc/$$/cgroup)" "$CGROUP"
		;;
	*)
		fail "SOCKWAY_TEST_ACCEL is on or off, not '$ACCEL_MODE'"
		finish
		exit 2
		;;
	esac
}

# accel_mode_verify MIN_SENDS: in mode on, at least MIN_SENDS sends (and their bytes) took
# the sk_msg path since accel_mode_enter; in mode off, no socket entered sock_hash and nothing
# was redirected since then. The counters are this test's own (its pin directory).
accel_mode_verify() {
	local st grew
	st=$("$SOCKWAY" -j accel list | jq -c .stats)
	grew=$(jq -nc --argjson a "$ACCEL_STATS0" --argjson b "$st" '$b | with_entries(.value -= $a[.key])')
	echo "# accel $ACCEL_MODE: accel_stats grew by $grew"
	if [ "$ACCEL_MODE" = on ]; then
		ge "accel on: sends redirected through sk_msg (>= $1)" "$(jq .redirected <<<"$grew")" "$1"
		# The shortest HTTP message here (a status line, or a GET with its Host) is longer.
		ge "accel on: bytes redirected through sk_msg (>= 16 per send)" \
			"$(jq .redirected_bytes <<<"$grew")" $(($1 * 16))
	else
		eq "accel off: no socket entered sock_hash, no send was redirected" \
			"$(jq -c '[.sockets, .redirected, .redirected_bytes]' <<<"$grew")" "[0,0,0]"
		eq "accel off: no cgroup is accelerated" "$("$SOCKWAY" -j accel list | jq -c .cgroups)" "[]"
	fi
}
