#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# make install and the systemd unit. Files land under PREFIX, or DESTDIR/PREFIX, with the unit
# naming PREFIX/bin; systemd-analyze verify passes on the installed unit (and fails on a broken
# one). PID 1 here is not systemd, so the unit is emulated: its own ExecStartPre, ExecStart and
# ExecReload lines (tests/integration/unit_exec.py reads them as systemd does) run with only
# the unit's environment and its capability bounding set, the test's settings in a stand-in for
# /etc/default/sockwayd. Through them: start, a request routed, reload to a new policy, refused
# policies (at reload: nothing changes; at start: the start fails), a restart bridged by a
# second sockwayd on the same port, and SIGTERM draining within TimeoutStopSec.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

P_SWD=$(port 0)
P_ADMIN=$(port 1)
P_BRIDGE_ADMIN=$(port 2)
P_BLUE=$(port 10)
P_GREEN=$(port 11)
P_SLOW=$(port 12)

# --- make install ------------------------------------------------------------------------------
make -s --no-print-directory install PREFIX="$TMP/usr" DESTDIR= >"$TMP/install.out" 2>&1
eq "make install PREFIX=$TMP/usr exits 0" "$?" 0
UNIT=$TMP/usr/lib/systemd/system/sockwayd.service
for f in bin/sockway bin/sockwayd; do
	eq "it installs $f, mode 755" "$(stat -c %a "$TMP/usr/$f" 2>&1)" 755
done
eq "it installs lib/systemd/system/sockwayd.service, mode 644" "$(stat -c %a "$UNIT" 2>&1)" 644
for f in share/man/man8/sockway.8 share/man/man8/sockwayd.8 \
	share/bash-completion/completions/sockway share/bash-completion/completions/sockwayd; do
	eq "it installs $f, mode 644" "$(stat -c %a "$TMP/usr/$f" 2>&1)" 644
done
eq "no @...@ is left in the unit" "$(grep -c '@[A-Z]*@' "$UNIT")" 0
eq "ExecStart runs PREFIX/bin/sockwayd" \
	"$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT")" "$TMP/usr/bin/sockwayd"

make -s --no-print-directory install DESTDIR="$TMP/root" PREFIX=/usr >"$TMP/install2.out" 2>&1
eq "make install DESTDIR=$TMP/root PREFIX=/usr exits 0" "$?" 0
eq "DESTDIR: the files are under DESTDIR/PREFIX" \
	"$(cd "$TMP/root" && find . -type f | sort | tr '\n' ' ')" \
	"./usr/bin/sockway ./usr/bin/sockwayd ./usr/lib/systemd/system/sockwayd.service ./usr/share/bash-completion/completions/sockway ./usr/share/bash-completion/completions/sockwayd ./usr/share/man/man8/sockway.8 ./usr/share/man/man8/sockwayd.8 "
eq "DESTDIR: the unit names /usr/bin, not DESTDIR" \
	"$(grep -oE "[^ =']*/bin/sockwayd?\b" "$TMP/root/usr/lib/systemd/system/sockwayd.service" | sort -u | tr '\n' ' ')" \
	"/usr/bin/sockway /usr/bin/sockwayd "

# --- systemd-analyze verify ----------------------------------------------------------------------
# It only warns (exit 0) about a key or value it cannot parse: its output must be empty too.
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify "$UNIT" >"$TMP/verify.out" 2>&1
	eq "systemd-analyze verify passes on the installed unit" "$?:$(cat "$TMP/verify.out")" "0:"
	mkdir "$TMP/broken"
	sed 's|/bin/sockwayd |/bin/sockwayd-gone |' "$UNIT" >"$TMP/broken/sockwayd.service"
	systemd-analyze verify "$TMP/broken/sockwayd.service" >"$TMP/verify.out" 2>&1
	ne_rc=$?
	if [ "$ne_rc" -ne 0 ] && grep -q 'sockwayd-gone' "$TMP/verify.out"; then
		pass "and fails on a unit whose ExecStart binary is missing"
	else
		fail "systemd-analyze verify fails on a unit whose ExecStart binary is missing" "exit $ne_rc: $(cat "$TMP/verify.out")"
	fi
	sed 's|^LockPersonality=|LockPersonalty=|' "$UNIT" >"$TMP/broken/sockwayd.service"
	systemd-analyze verify "$TMP/broken/sockwayd.service" >"$TMP/verify.out" 2>&1
	check "and prints a warning for a misspelt key (which the check above counts)" \
		grep -q "Unknown key 'LockPersonalty'" "$TMP/verify.out"
else
	fail "systemd-analyze is missing (Debian package systemd)"
fi

# --- the unit, emulated --------------------------------------------------------------------------
# The stand-in for /etc/default/sockwayd: this test's pin directory, policy file and ports.
mkdir -p "$TMP/etc/sockway" "$TMP/etc/default"
POLICY=$TMP/etc/sockway/policy.json
ENVFILE=$TMP/etc/default/sockwayd
cat >"$ENVFILE" <<EOF
# as an operator would write it
SOCKWAY_PIN_ROOT=$SOCKWAY_PIN_ROOT
SOCKWAY_POLICY=$POLICY
SOCKWAYD_OPTS="--listen 127.0.0.1:$P_SWD --admin 127.0.0.1:$P_ADMIN --workers 2"
EOF

unit() {
	python3 tests/integration/unit_exec.py "$UNIT" "$ENVFILE" "$@"
}
mapfile -t UNIT_ENV < <(unit env)
UNIT_CAPS=$(unit caps)
# As systemd starts a command: nothing of the test's environment but what the unit gives it
# (systemd's PATH, Environment=, EnvironmentFile=), within CapabilityBoundingSet=.
UNIT_RUN=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	"${UNIT_ENV[@]}" setpriv --bounding-set="$UNIT_CAPS" --)

# unit_exec KEY: runs the unit's KEY= lines in order, as systemd does: the first failing line
# (without a "-" prefix) ends it with its exit code; stderr is in $TMP/KEY.err.
unit_exec() {
	local key=$1 flag words rc argv
	: >"$TMP/$key.err"
	while IFS=$'\t' read -r flag words; do
		eval "argv=($words)"
		"${UNIT_RUN[@]}" "${argv[@]}" >>"$TMP/$key.out" 2>>"$TMP/$key.err"
		rc=$?
		if [ "$rc" -ne 0 ] && [ "$flag" != - ]; then
			return "$rc"
		fi
	done < <(unit "$key")
	return 0
}

# unit_start_main [ARGS...]: the unit's ExecStart with ARGS added, in the background, waits for
# "ready"; its PID (the same process from env to sockwayd: each execs the next) in $MAIN_PID.
unit_start_main() {
	local words argv name=main-$SECONDS-$RANDOM
	IFS=$'\t' read -r _ words < <(unit ExecStart)
	eval "argv=($words)"
	spawn "$name" "${UNIT_RUN[@]}" "${argv[@]}" "$@"
	MAIN_PID=$SPAWNED
	MAIN_LOG=$TMP/$name.log
	if ! wait_until "$WAIT_S" grep -q '; ready' "$MAIN_LOG"; then
		fail "the unit's ExecStart printed ready" "$(head -c 400 "$MAIN_LOG")"
		return 1
	fi
}

# routed PATH: the X-Backend of a request through sockwayd.
routed() {
	curl -s --max-time 30 -o /dev/null -w '%header{x-backend}' "http://127.0.0.1:$P_SWD$1"
}

# routed_is PATH BACKEND (for wait_until)
routed_is() {
	[ "$(routed "$1")" = "$2" ]
}

# policy_to BACKEND: the policy file with /app going to BACKEND (and /slow to the slow one).
policy_to() {
	cat >"$POLICY" <<EOF
{
  "version": 1,
  "backends": {
    "blue": { "replicas": ["127.0.0.1:$P_BLUE"] },
    "green": { "replicas": ["127.0.0.1:$P_GREEN"] },
    "slow": { "replicas": ["127.0.0.1:$P_SLOW"] }
  },
  "endpoints": {
    "app": { "route": "/app", "traffic": { "$1": 1 } },
    "slow": { "route": "/slow", "traffic": { "slow": 1 } }
  }
}
EOF
}

if ! command -v setpriv >/dev/null || ! command -v python3 >/dev/null; then
	fail "setpriv (util-linux) and python3 are needed to emulate the unit"
	finish
	exit 1
fi
start_backend blue "$P_BLUE"
start_backend green "$P_GREEN"
start_backend slow "$P_SLOW" --latency-ms 5000
policy_to blue

# Start: ExecStartPre (load, apply the file), then ExecStart.
unit_exec ExecStartPre
eq "start: ExecStartPre lines (load, apply $POLICY) exit 0" "$?" 0
check "the maps are pinned where the environment file said" test -d "$SOCKWAY_PIN_ROOT"
unit_start_main || { finish; exit 1; }
A_PID=$MAIN_PID
A_LOG=$MAIN_LOG
eq "start: a request is routed by the file's policy" "$(routed /app/x)" blue
eq "the unit's sockwayd runs within its capability bounding set" \
	"$(capsh --decode="$(awk '/^CapBnd/ { print $2 }' "/proc/$A_PID/status")" | sed 's/.*=//' | tr , '\n' | sort | tr '\n' ' ')" \
	"$(echo "$UNIT_CAPS" | tr , '\n' | sed -n 's/^+/cap_/p' | sort | tr '\n' ' ')"

# Reload: ExecReload applies the edited file; sockwayd follows the generation.
policy_to green
unit_exec ExecReload
eq "reload: ExecReload exits 0" "$?" 0
if wait_until "$WAIT_S" routed_is /app/x green; then
	pass "reload: the same sockwayd routes by the new policy"
else
	fail "reload: the same sockwayd routes by the new policy" "got $(routed /app/x)"
fi
eq "reload: sockwayd did not restart" "$(kill -0 "$A_PID" 2>&1 && echo alive)" alive

# A refused file at reload: exit 1, one line on stderr, the policy unchanged.
before=$("$SOCKWAY" export)
sed -i 's/"green": 1/"purple": 1/' "$POLICY"
unit_exec ExecReload
eq "reload of a refused file fails (exit 1)" "$?" 1
eq "with one line on stderr" "$(wc -l <"$TMP/ExecReload.err")" 1
check "that names what is wrong" grep -q purple "$TMP/ExecReload.err"
eq "and the policy is unchanged" "$("$SOCKWAY" export)" "$before"
eq "and sockwayd still routes by it" "$(routed /app/x)" green

# A refused file at start (a restart's ExecStartPre, while the old sockwayd still runs): the
# start fails with sockway's line; load over the pinned maps changed nothing.
unit_exec ExecStartPre
eq "start with a refused file fails (exit 1)" "$?" 1
eq "with one line on stderr" "$(wc -l <"$TMP/ExecStartPre.err")" 1
check "that names what is wrong" grep -q purple "$TMP/ExecStartPre.err"
eq "the policy is unchanged" "$("$SOCKWAY" export)" "$before"
eq "and the running sockwayd still routes by it" "$(routed /app/x)" green

# No file: the start goes on with the policy the maps hold (the CLI's).
rm "$POLICY"
unit_exec ExecStartPre
eq "start without a policy file: ExecStartPre exits 0" "$?" 0
eq "and the policy is unchanged" "$("$SOCKWAY" export)" "$before"
policy_to green

# --- a restart bridged by a second sockwayd (the README's rolling restart) -------------------------
# A request in flight at SIGTERM, to the first sockwayd alone (the slow backend answers after
# 5 s): its exchange exists once sockwayd connects to the backend for it.
curl -s --max-time 60 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_SWD/slow/x" >"$TMP/slow.code" &
SLOW_CURL=$!
LIB_PIDS+=("$SLOW_CURL")
wait_until "$WAIT_S" bash -c "ss -Htn state established 'dport = :$P_SLOW' | grep -q ." ||
	fail "the slow request reached its backend"
# The bridge: the unit's ExecStart with another admin port, on the same --listen (SO_REUSEPORT).
unit_start_main --admin "127.0.0.1:$P_BRIDGE_ADMIN" || { finish; exit 1; }
BRIDGE_PID=$MAIN_PID
eq "a second sockwayd listens on the same port" \
	"$(ss -Hltnp "sport = :$P_SWD" | grep -oE "pid=($A_PID|$BRIDGE_PID)," | sort -u | wc -l)" 2
TIMEOUT_STOP=$(unit get TimeoutStopSec)
TIMEOUT_STOP=${TIMEOUT_STOP%s}
DRAIN_MS=$("$SOCKWAYD" --help | sed -n 's/.*--drain MS.*(default \([0-9]*\)).*/\1/p')
ge "TimeoutStopSec ($TIMEOUT_STOP s) is above sockwayd's --drain default ($DRAIN_MS ms)" \
	"$((TIMEOUT_STOP * 1000))" "$((DRAIN_MS + 1))"
eq "the slow request is still in flight at SIGTERM" "$(kill -0 "$SLOW_CURL" 2>&1 && echo yes)" yes
t0=${EPOCHREALTIME/./}
kill -TERM "$A_PID"
# stop: SIGTERM, and the exit within TimeoutStopSec (systemd would SIGKILL after it).
if wait_until "$TIMEOUT_STOP" bash -c "! kill -0 $A_PID 2>/dev/null || grep -q '^State:.*Z' /proc/$A_PID/status"; then
	pass "stop: sockwayd exits within TimeoutStopSec of SIGTERM ($(((${EPOCHREALTIME/./} - t0) / 1000)) ms)"
else
	fail "stop: sockwayd exits within TimeoutStopSec of SIGTERM"
fi
wait "$A_PID"
eq "stop: its exit code is 0 (a clean drain)" "$?" 0
check "it logged its stop" grep -q 'sockwayd: stopped' "$A_LOG"
wait "$SLOW_CURL"
eq "the request in flight at SIGTERM was answered" "$(cat "$TMP/slow.code")" 200
eq "while the first is gone, the bridge answers" "$(routed /app/x)" green
unit_exec ExecStartPre
eq "restart: ExecStartPre over the pinned maps, the bridge running, exits 0" "$?" 0
unit_start_main || { finish; exit 1; }
C_PID=$MAIN_PID
stop_pid "$BRIDGE_PID"
eq "the bridge drains and exits 0" "$STOP_RC" 0
eq "the restarted sockwayd routes by the file's policy" "$(routed /app/x)" green
stop_pid "$C_PID"
eq "and exits 0 on SIGTERM" "$STOP_RC" 0

finish
