#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# No socket is taken for another on an equal hash. The conns map finds sockwayd's
# connections by a tag, a hash of the socket's key that anyone who picks a connection's
# addresses and ports can make collide. This test runs the narrow-hash build (make narrow:
# 12-bit tags, so collide.py finds a colliding key by trying ports) and attacks from a
# process in an accelerated cgroup:
#   1. a forged response sent from a socket whose peer's key shares the tag of sockwayd's
#      upstream connection while its response is armed for the kernel: it must reach its
#      own peer, and the client of the real exchange must get the backend's answer;
#   2. a connection established with a key of that tag: sockops must not free the live
#      entry of sockwayd's connection.
# Both worked against the tag-only lookup; tests/integration/collide.py has the model.
set -u
cd "$(dirname "$0")/../.."
OUTPUT=${OUTPUT:-.output}
SOCKWAY=${SOCKWAY_NARROW:-$OUTPUT/narrow/sockway}
SOCKWAYD=${SOCKWAYD_NARROW:-$OUTPUT/narrow/sockwayd}
. tests/integration/lib.sh

COLLIDE="python3 tests/integration/collide.py"
P_B=$(port 0)
P_SWD=$(port 1)
P_ADMIN=$(port 2)
P_L=$(port 3)
P_L2=$(port 4)
GATE=$TMP/gate

if [ ! -x "$SOCKWAY" ] || [ ! -x "$SOCKWAYD" ]; then
	fail "the narrow-hash build exists ($SOCKWAY, $SOCKWAYD): run make narrow"
	finish
	exit 1
fi
if [ -z "$CGROUP2" ]; then
	fail "a cgroup v2 hierarchy is mounted (see /proc/mounts)"
	finish
	exit 1
fi

check "load (narrow-hash build)" "$SOCKWAY" load
cgroup_new fast
CG=$CGROUP
check "accel add the test's cgroup" "$SOCKWAY" accel add "$CG"
ACCEL_MODE=on
warn0=$(kernel_warnings)

SPAWN_CGROUP=$CG spawn backend $COLLIDE backend "$P_B" "$GATE"
wait_until 5 grep -q ready "$TMP/backend.log" || fail "backend did not start" "$(cat "$TMP/backend.log")"
check "backend b" "$SOCKWAY" backend create b "127.0.0.1:$P_B"
check "endpoint e" "$SOCKWAY" endpoint create e --route / --backend b
# Kernel routing off (--lend 0): the attacks are on sockwayd's own upstream connection and
# its splice, and collide.py's backend serves one connection at a time.
start_sockwayd "$P_SWD" "$P_ADMIN" --workers 1 --lend 0
NETNS=$($COLLIDE netns)

# conn_way TAG: "WAY OWNER SPLICE LOCAL_PORT" of the conns entry whose way in bucket TAG
# (12-bit tags: the bucket is the tag) holds TAG, or nothing.
conn_way() {
	local tags way idx
	tags=$(bpftool -j map lookup pinned "$SOCKWAY_PIN_ROOT/conn_tags" \
		key $(($1 & 255)) $(($1 >> 8)) 0 0 | jq -c '.formatted.value.tag')
	way=$(jq -r --argjson t "$1" 'index($t) // empty' <<<"$tags")
	[ -n "$way" ] || return 0
	idx=$(($1 * 4 + way))
	bpftool -j map lookup pinned "$SOCKWAY_PIN_ROOT/conns" \
		key $((idx & 255)) $((idx >> 8)) 0 0 |
		jq -r --argjson w "$way" '.formatted.value | "\($w) \(.owner) \(.splice) \(.self.local_port // "none")"'
}

# --- 1. a forged response from a socket whose peer shares the tag ---------------------------------
# The victim's request waits at the backend (GATE), with sockwayd's response armed for the
# kernel (PREARMED: the whole response may go backend -> client without waking sockwayd).
SPAWN_CGROUP=$CG spawn victim curl -s --max-time 60 -o "$TMP/victim.body" -w '%{http_code}' \
	"http://127.0.0.1:$P_SWD/v"
VICTIM=$SPAWNED
wait_until 10 grep -q request "$TMP/backend.log" || fail "1: the request reached the backend"
UPORT=$(ss -tnH state established "( dport = :$P_B )" | awk '{ n = split($3, a, ":"); print a[n]; exit }')
TAG=$($COLLIDE tag "$NETNS" 127.0.0.1 "$UPORT" 127.0.0.1 "$P_B")
read -r WAY OWNER SPLICE LPORT <<<"$(conn_way "$TAG")"
eq "1: sockwayd's upstream connection has a conns entry with the tag collide.py computes" \
	"${OWNER:-none} ${LPORT:-none}" "$SWD_PID $UPORT"
eq "1: its response is armed for the kernel (PREARMED)" "${SPLICE:-none}" 4

# The attacker's listener is outside every accelerated cgroup, its client inside: the client's
# sends run sk_msg, with the listener's accepted socket as the peer, whose key has the tag.
printf 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED' >"$TMP/forged"
spawn listener $COLLIDE listen 127.0.0.2 "$P_L" "$TMP/listener.out"
wait_until 5 grep -q ready "$TMP/listener.log" || fail "1: the attacker's listener started"
(SPAWN_CGROUP=$CG lib_exec $COLLIDE connect "$TAG" "$NETNS" 127.0.0.2 "$P_L" 127.0.0.3 server \
	"$TMP/forged") >"$TMP/attack1.json"
eq "1: the attacker found a key with the victim's tag" "$(jq -r .tag "$TMP/attack1.json")" "$TAG"
forged_arrived() { cmp -s "$TMP/listener.out" "$TMP/forged"; }
wait_until 10 forged_arrived
check "1: the forged response reached the attacker's own peer, every byte" \
	cmp "$TMP/listener.out" "$TMP/forged"
touch "$GATE"
wait "$VICTIM"
eq "1: the victim got the backend's answer: status" "$(cat "$TMP/victim.log")" 200
eq "1: and body (not the forged one)" "$(cat "$TMP/victim.body")" hello

# --- 2. a connection established with a key of that tag ------------------------------------------
# A request over a keep-alive client, so that an upstream connection stays pooled with its
# entry live; then both ends of the attacker's connection are in the accelerated cgroup, so
# sockops runs for both at ESTABLISHED, where it frees stale entries of the same key.
SPAWN_CGROUP=$CG spawn keeper curl -s --max-time 60 -o "$TMP/keeper.body" -w '%{http_code}' \
	"http://127.0.0.1:$P_SWD/k"
KEEPER=$SPAWNED
wait "$KEEPER"
eq "2: a request through sockwayd: 200" "$(cat "$TMP/keeper.log")" 200
UPORT=$(ss -tnH state established "( dport = :$P_B )" | awk '{ n = split($3, a, ":"); print a[n]; exit }')
TAG=$($COLLIDE tag "$NETNS" 127.0.0.1 "$UPORT" 127.0.0.1 "$P_B")
settled_idle() { [ "$(conn_way "$TAG" | awk '{ print $3 }')" = 0 ]; }
wait_until 10 settled_idle
read -r WAY0 OWNER0 _ LPORT0 <<<"$(conn_way "$TAG")"
eq "2: the pooled upstream connection has its entry" "${OWNER0:-none} ${LPORT0:-none}" \
	"$SWD_PID $UPORT"
: >"$TMP/empty"
SPAWN_CGROUP=$CG spawn listener2 $COLLIDE listen 127.0.0.4 "$P_L2" "$TMP/listener2.out"
wait_until 5 grep -q ready "$TMP/listener2.log" || fail "2: the attacker's listener started"
(SPAWN_CGROUP=$CG lib_exec $COLLIDE connect "$TAG" "$NETNS" 127.0.0.4 "$P_L2" 127.0.0.5 server \
	"$TMP/empty") >"$TMP/attack2.json"
eq "2: the attacker found a key with its tag" "$(jq -r .tag "$TMP/attack2.json")" "$TAG"
wait_until 5 grep -q accepted "$TMP/listener2.log" || fail "2: the attacker's connection was accepted"
read -r WAY1 OWNER1 _ LPORT1 <<<"$(conn_way "$TAG")"
eq "2: after it, the live entry is still there, still sockwayd's, same socket" \
	"${WAY1:-none} ${OWNER1:-none} ${LPORT1:-none}" "$WAY0 $SWD_PID $UPORT"
eq "2: a request over the pooled connection: 200 hello" \
	"$(SPAWN_CGROUP=$CG lib_exec curl -s --max-time 10 "http://127.0.0.1:$P_SWD/again" -w ' %{http_code}')" \
	"hello 200"

stop_pid "$SWD_PID"
eq "sockwayd exited cleanly" "$STOP_RC" 0
eq "no new kernel warnings in dmesg" "$(kernel_warnings)" "$warn0"
finish
