#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The kernel fast path (sockops + sk_msg over sock_hash), as a user sees it: the accel CLI
# and its pins; sends between two local sockets of accelerated cgroups going through
# sk_msg (the accel_stats counters) and not when one end is outside; 16 MiB bodies
# byte-exact both ways; FIN and half-close propagation without leaked sockets; the kill
# switch flipped under load and with bytes queued; sockwayd on the fast path; a reader that
# stops, beside a normal client (its memory bounded); connections opened and closed as fast
# as they can while traffic flows (section 9: close races, dmesg clean); and processes
# killed with sockets in the map: the failure modes reported for sockmap in the field (stalls,
# lost FINs, queues that grow without bound, panics on teardown).
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

P_B2=$(port 10)
P_BIG=$(port 11)
P_UP=$(port 12)
P_FIN=$(port 13)
P_KS=$(port 14)
P_SWD=$(port 15)
P_SWD_ADMIN=$(port 16)
P_B7=$(port 17)
P_SLOW=$(port 18)
P_FAST=$(port 19)
P_B6=$(port 20)
MIB16=16777216

# sockops_on CG: how many sock_track programs are attached to cgroup CG (bpftool prints
# nothing at all for a cgroup without programs); "error" if bpftool failed.
sockops_on() {
	local out
	out=$(bpftool -j cgroup show "$1" 2>/dev/null) || { echo error; return; }
	jq -rs '[.[][] | select(.name == "sock_track")] | length' <<<"$out"
}

# link_pinned ID: the link file accel_ID is in the pin directory, as ls shows it.
link_pinned() {
	# shellcheck disable=SC2010 # what an operator sees
	ls "$SOCKWAY_PIN_ROOT" | grep -qx "accel_$1"
}

link_gone() {
	! link_pinned "$1"
}

# sock_entries: sockets in sock_hash now (bpftool lists the keys).
sock_entries() {
	bpftool -j map dump pinned "$SOCKWAY_PIN_ROOT/sock_hash" 2>/dev/null | jq length
}

# fin_states PORT: sockets in CLOSE-WAIT or FIN-WAIT-2 on either side of port PORT.
fin_states() {
	ss -Htan "( sport = :$1 or dport = :$1 )" | awk '$1 == "CLOSE-WAIT" || $1 == "FIN-WAIT-2"' | wc -l
}

no_fin_states() {
	[ "$(fin_states "$1")" -eq 0 ]
}

sock_hash_empty() {
	[ "$(sock_entries)" = 0 ]
}

# in_cg CG CMD...: runs CMD in the foreground inside cgroup CG ("" for the test's own).
in_cg() {
	local cg=$1
	shift
	(SPAWN_CGROUP=$cg lib_exec "$@")
}

# swc CG ARGS...: swclient inside cgroup CG, JSON in $TMP/client.json (read with cj).
swc() {
	local cg=$1
	shift
	if ! in_cg "$cg" "$SWCLIENT" "$@" >"$TMP/client.json" 2>"$TMP/client.err"; then
		fail "swclient $* could not run" "$(head -c 400 "$TMP/client.err")"
		echo '{}' >"$TMP/client.json"
		return 1
	fi
}

# all_ok DESC N: the last client run got N responses, all 200, and no error.
all_ok() {
	local got
	got=$(cj '"\(.responses) \(.status["200"] // 0) \(.errors)"')
	eq "$1: $2 responses, all 200, no error" "$got" "$2 $2 0"
}

# Two sockets in one process (so both are in its cgroup), for what swclient cannot show.
#   halfclose: A sends 1 MiB and shuts down its write side; B reads to EOF, answers and
#     closes; A reads the answer to EOF.
#   queued SOCKWAY: A sends 16 bytes that B has not read yet; "SOCKWAY accel off"; B reads
#     (a read waits 30 s at most: only a failure waits); then A sends 5 more bytes and B
#     reads them.
cat >"$TMP/pair.py" <<'EOF'
import hashlib, json, socket, subprocess, sys
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
a = socket.create_connection(ls.getsockname())
b, _ = ls.accept()
a.settimeout(30)
b.settimeout(30)
out = {}

def read_all(s, limit):
    got = b""
    try:
        while len(got) < limit:
            chunk = s.recv(65536)
            if not chunk:
                return got, True
            got += chunk
    except socket.timeout:
        return got, False
    return got, False

if sys.argv[1] == "halfclose":
    data = bytes(range(256)) * 4096
    a.sendall(data)
    a.shutdown(socket.SHUT_WR)
    got, eof = read_all(b, 1 << 30)
    out["b_bytes"] = len(got)
    out["b_intact"] = got == data
    out["b_eof"] = eof
    b.sendall(b"reply " + hashlib.sha256(got).hexdigest().encode())
    b.close()
    got, eof = read_all(a, 1 << 20)
    out["a_reply"] = got.decode(errors="replace")
    out["a_eof"] = eof
    out["want_reply"] = "reply " + hashlib.sha256(data).hexdigest()
else:
    a.sendall(b"queued-before-of")
    subprocess.run([sys.argv[2], "accel", "off"], check=True, stdout=subprocess.DEVNULL)
    got, _ = read_all(b, 16)
    out["before"] = got.decode(errors="replace")
    a.sendall(b"after")
    got, _ = read_all(b, 5)
    out["after"] = got.decode(errors="replace")
print(json.dumps(out))
EOF

if [ -z "$CGROUP2" ]; then
	fail "a cgroup v2 hierarchy is mounted (see /proc/mounts)"
	finish
	exit
fi
cgroup_new fast
CG=$CGROUP
cgroup_new other
CG_OTHER=$CGROUP
cgroup_new sub "$CG"
CG_SUB=$CGROUP
CG_ID=$(stat -c %i "$CG")
OTHER_ID=$(stat -c %i "$CG_OTHER")

# --- 1. CLI ---------------------------------------------------------------------------------
check "load" "$SOCKWAY" load
eq "1: list on a fresh load: on, no cgroup" "$("$SOCKWAY" -j accel list | jq -c '[.on, .cgroups]')" '[true,[]]'
check "1: accel add $CG" "$SOCKWAY" accel add "$CG"
eq "1: it is listed with its cgroup id" \
	"$("$SOCKWAY" -j accel list | jq -c '.cgroups')" "[{\"path\":\"$CG\",\"id\":$CG_ID}]"
check "1: adding it again is a no-op" "$SOCKWAY" accel add "$CG"
eq "1: still listed once" "$("$SOCKWAY" -j accel list | jq '.cgroups | length')" 1
check "1: link accel_$CG_ID is pinned" link_pinned "$CG_ID"
eq "1: bpftool cgroup show: sock_track attached to $CG" "$(sockops_on "$CG")" 1
refused "1: a directory that is not a cgroup v2 one is refused" 'not a cgroup v2 directory' \
	accel add "$TMP"
refused "1: a path that does not exist is refused" 'No such file' accel add "$CGROUP2/nonexistent-$$"
refused "1: del of a cgroup that is not accelerated is refused" 'not accelerated' \
	accel del "$CG_OTHER"
check "1: accel add $CG_OTHER" "$SOCKWAY" accel add "$CG_OTHER"
check "1: link accel_$OTHER_ID is pinned" link_pinned "$OTHER_ID"
check "1: accel del $CG_OTHER" "$SOCKWAY" accel del "$CG_OTHER"
eq "1: after del only $CG is listed" "$("$SOCKWAY" -j accel list | jq -c '[.cgroups[].path]')" "[\"$CG\"]"
check "1: after del accel_$OTHER_ID is gone" link_gone "$OTHER_ID"
eq "1: after del nothing is attached to $CG_OTHER" "$(sockops_on "$CG_OTHER")" 0
check "1: accel off" "$SOCKWAY" accel off
eq "1: off: listed as off, the cgroup remembered" \
	"$("$SOCKWAY" -j accel list | jq -c '[.on, [.cgroups[].id]]')" "[false,[$CG_ID]]"
check "1: off: accel_$CG_ID is gone" link_gone "$CG_ID"
eq "1: off: bpftool shows nothing attached to $CG" "$(sockops_on "$CG")" 0
check "1: accel on" "$SOCKWAY" accel on
check "1: on: accel_$CG_ID is back" link_pinned "$CG_ID"
eq "1: on: sock_track attached to $CG again" "$(sockops_on "$CG")" 1

# --- 2. sends take the sk_msg path, and only between accelerated sockets ----------------------
SPAWN_CGROUP=$CG start_backend b2 "$P_B2"
r0=$(stat_of redirected)
rb0=$(stat_of redirected_bytes)
swc "$CG" --url "http://127.0.0.1:$P_B2/x" --requests 1000 --connections 4
all_ok "2: client and backend in the cgroup" 1000
r1=$(stat_of redirected)
rb1=$(stat_of redirected_bytes)
ge "2: stats.redirected grew by >= 2000 (requests + responses)" $((r1 - r0)) 2000
ge "2: stats.redirected_bytes grew" $((rb1 - rb0)) 1
p1=$(stat_of passed)
u1=$(stat_of untracked)
swc "" --url "http://127.0.0.1:$P_B2/x" --requests 1000 --connections 4
all_ok "2: client outside the cgroup" 1000
r2=$(stat_of redirected)
p2=$(stat_of passed)
u2=$(stat_of untracked)
eq "2: client outside: stats.redirected did not grow" $((r2 - r1)) 0
# The backend's end of each connection has no tracked peer: it stays out of sock_hash, so
# its responses do not even pass through sk_msg.
eq "2: client outside: the backend's sends never ran sk_msg (stats.passed did not grow)" $((p2 - p1)) 0
ge "2: client outside: its 4 connections' backend ends were left out (stats.untracked)" $((u2 - u1)) 4
swc "$CG_SUB" --url "http://127.0.0.1:$P_B2/x" --requests 100 --connections 1
all_ok "2: client in a child cgroup" 100
ge "2: client in a child cgroup: stats.redirected grew by >= 200" $(($(stat_of redirected) - r2)) 200

# --- 3. 16 MiB bodies byte-exact both ways ----------------------------------------------------
SPAWN_CGROUP=$CG start_backend big "$P_BIG" --body-size $MIB16
# The backend writes 16 MiB at once to a client that reads nothing until it is told: sk_msg
# redirects into the client's queue up to its limit (accel_queue, 4 MiB), then holds the
# rest back on TCP (held_bytes), whose window blocks the backend; a redirect never would,
# and the backend would fill kernel memory. The test waits for that, then lets the client
# read it all. (Not curl: whether curl falls behind a local backend is up to the machine.)
rb0=$(stat_of redirected_bytes)
hb0=$(stat_of held_bytes)
SPAWN_CGROUP=$CG spawn big-hold python3 tests/integration/hold_client.py "$P_BIG" /big \
	"$TMP/big.fast" "$TMP/big.go"
big_hold=$SPAWNED
if wait_until "$WAIT_S" stat_above held_bytes "$hb0"; then
	pass "3: a client that does not read: once its queue is full, the sends take TCP (held_bytes grew)"
else
	fail "3: a client that does not read: once its queue is full, the sends take TCP (held_bytes grew)" \
		"redirected $(($(stat_of redirected_bytes) - rb0)) bytes, held none in $WAIT_S s"
fi
rb=$(($(stat_of redirected_bytes) - rb0))
echo "# 3: 16 MiB to a client that does not read: $rb bytes redirected before the sends took TCP"
ge "3: until then they went through sk_msg, up to the queue's limit" "$rb" "$(accel_queue)"
# Past the limit by one message at most: its size is checked before each (one message is
# at most MAX_SKB_FRAGS pages of 32 KiB, 544 KiB by default).
le "3: and not much past it" "$rb" $(($(accel_queue) + 2097152))
touch "$TMP/big.go"
wait "$big_hold"
rb1=$(stat_of redirected_bytes)
eq "3: 16 MiB download in the cgroup: 200 and the size, once the client reads" \
	"$(cat "$TMP/big-hold.log")" "200 $MIB16"
check "3: accel off" "$SOCKWAY" accel off
code=$(in_cg "$CG" curl -s --max-time 60 -o "$TMP/big.tcp" -w '%{http_code}' "http://127.0.0.1:$P_BIG/big")
eq "3: the same download with accel off: 200" "$code" 200
eq "3: redirected_bytes did not move with accel off" "$(stat_of redirected_bytes)" "$rb1"
eq "3: both downloads have the same sha256" "$(sha256sum <"$TMP/big.fast")" "$(sha256sum <"$TMP/big.tcp")"
check "3: accel on" "$SOCKWAY" accel on
SPAWN_CGROUP=$CG start_backend up "$P_UP"
bb0=$(backend_count "$P_UP" body_bytes)
rb0=$(stat_of redirected_bytes)
swc "$CG" --url "http://127.0.0.1:$P_UP/up" --method POST --body-size $MIB16 --requests 2 --timeout-ms 20000
all_ok "3: two 16 MiB POSTs from the cgroup" 2
eq "3: the backend received exactly 2 x 16 MiB of body" $(($(backend_count "$P_UP" body_bytes) - bb0)) $((2 * MIB16))
# Not all: when swclient writes faster than the backend reads, the rest of that body takes
# TCP (see the download above).
ge "3: the uploads went through sk_msg (redirected_bytes grew by >= 1 MiB)" \
	$(($(stat_of redirected_bytes) - rb0)) 1048576
bb0=$(backend_count "$P_UP" body_bytes)
swc "$CG" --url "http://127.0.0.1:$P_UP/up" --method POST --body-size $MIB16 --chunked --requests 2 --timeout-ms 20000
all_ok "3: two 16 MiB chunked POSTs from the cgroup" 2
eq "3: the backend received exactly 2 x 16 MiB of chunked body" $(($(backend_count "$P_UP" body_bytes) - bb0)) $((2 * MIB16))

# --- 4. FIN propagation at scale, half-close, no leaks --------------------------------------------
# 10,000 connections of one request each between accelerated sockets, straight from a client
# to a backend, then 10,000 more through sockwayd to a backend that closes after every
# response (so both of sockwayd's sides see FINs). Each must end cleanly: afterwards no socket
# on their ports may be CLOSE-WAIT (a FIN that never reached the application: the sockmap
# hazard), FIN-WAIT, LAST-ACK, CLOSING or ESTABLISHED, and sock_hash is back to its size
# before. TIME-WAIT is no leak: it is where the side that closed first waits out 60 s, with
# its socket already freed and out of sock_hash; it is counted, not refused.
P_FIN_UP=$(port 21)
P_FIN_SWD=$(port 22)
P_FIN_ADMIN=$(port 23)

# port_states PORT: "STATE:COUNT ..." of the sockets on either side of PORT.
port_states() {
	ss -Htan "( sport = :$1 or dport = :$1 )" | awk '{ n[$1]++ } END { for (s in n) printf "%s:%d ", s, n[s] }'
}

# only_closed PORT...: every socket on those ports is LISTEN or TIME-WAIT.
only_closed() {
	local p
	for p in "$@"; do
		[ "$(ss -Htan "( sport = :$p or dport = :$p )" | awk '$1 != "LISTEN" && $1 != "TIME-WAIT"' | wc -l)" -eq 0 ] || return 1
	done
}

sock_entries_are() {
	[ "$(sock_entries)" = "$1" ]
}

# fin_clean DESC ENTRIES PORT...: no CLOSE-WAIT or FIN-WAIT-2 on the ports, then nothing but
# LISTEN and TIME-WAIT, and sock_hash holds ENTRIES sockets again (each waited for: a socket
# that never gets there is the leak; one that gets there late is a busy machine).
fin_clean() {
	local desc=$1 entries=$2 p
	shift 2
	for p in "$@"; do
		if wait_until "$WAIT_S" no_fin_states "$p"; then
			pass "$desc: no CLOSE-WAIT or FIN-WAIT-2 socket left on port $p"
		else
			fail "$desc: no CLOSE-WAIT or FIN-WAIT-2 socket left on port $p" "after $WAIT_S s: $(port_states "$p")"
		fi
	done
	if wait_until "$WAIT_S" only_closed "$@"; then
		pass "$desc: nothing but LISTEN and TIME-WAIT on ports $*"
	else
		fail "$desc: nothing but LISTEN and TIME-WAIT on ports $*" \
			"$(for p in "$@"; do echo -n "$p: $(port_states "$p") "; done)"
	fi
	if wait_until "$WAIT_S" sock_entries_are "$entries"; then
		pass "$desc: sock_hash is back to $entries entries (closed sockets left it)"
	else
		fail "$desc: sock_hash is back to $entries entries" "$(sock_entries) entries"
	fi
	for p in "$@"; do
		echo "# $desc: port $p: $(port_states "$p")(TIME-WAIT: closed, outside sock_hash)"
	done
}

SPAWN_CGROUP=$CG start_backend fin "$P_FIN"
n0=$(sock_entries)
s0=$(stat_of sockets)
r0=$(stat_of redirected)
t0=${EPOCHREALTIME/./}
swc "$CG" --url "http://127.0.0.1:$P_FIN/x" --no-keepalive --requests 10000 --connections 32
t1=${EPOCHREALTIME/./}
all_ok "4: 10,000 connections without keep-alive, client to backend" 10000
echo "# 4: 10,000 direct connections in $(((t1 - t0) / 1000)) ms"
eq "4: both ends of all 10,000 entered sock_hash (stats.sockets)" $(($(stat_of sockets) - s0)) 20000
ge "4: every request and response went through sk_msg" $(($(stat_of redirected) - r0)) 20000
fin_clean "4: direct" "$n0" "$P_FIN"

SPAWN_CGROUP=$CG start_backend fin-up "$P_FIN_UP" --close
check "4: backend fin-up" "$SOCKWAY" backend create fin-up "127.0.0.1:$P_FIN_UP"
check "4: endpoint /fin -> fin-up" "$SOCKWAY" endpoint create fin --route /fin --backend fin-up
# sockwayd runs in $CG with --no-accel, as in section 7: this section is about the
# sockets, not about sockwayd's own cgroup (test_splice.sh section 9 covers that).
SPAWN_CGROUP=$CG start_sockwayd "$P_FIN_SWD" "$P_FIN_ADMIN" --workers 2 --no-accel
n0=$(sock_entries)
s0=$(stat_of sockets)
r0=$(stat_of redirected)
t0=${EPOCHREALTIME/./}
swc "$CG" --url "http://127.0.0.1:$P_FIN_SWD/fin/x" --no-keepalive --requests 10000 --connections 32
t1=${EPOCHREALTIME/./}
all_ok "4: 10,000 connections without keep-alive through sockwayd" 10000
echo "# 4: 10,000 connections through sockwayd in $(((t1 - t0) / 1000)) ms"
# A retry on a fresh upstream (a pooled one closed under sockwayd's feet) adds sockets.
ge "4: client and upstream connections, both ends, entered sock_hash" $(($(stat_of sockets) - s0)) 40000
ge "4: every send on both legs went through sk_msg" $(($(stat_of redirected) - r0)) 40000
fin_clean "4: through sockwayd" "$n0" "$P_FIN_SWD" "$P_FIN_UP"
stop_pid "$SWD_PID"
eq "4: sockwayd exits 0 on SIGTERM afterwards" "$STOP_RC" 0
r0=$(stat_of redirected)
in_cg "$CG" timeout 120 python3 "$TMP/pair.py" halfclose >"$TMP/halfclose.json" 2>"$TMP/halfclose.err"
eq "4: half-close: 1 MiB then SHUT_WR arrives whole, then EOF" \
	"$(jq -c '[.b_bytes, .b_intact, .b_eof]' "$TMP/halfclose.json" 2>/dev/null)" '[1048576,true,true]'
eq "4: half-close: the reply sent after EOF arrives, then EOF" \
	"$(jq -c '[.a_reply == .want_reply, .a_eof]' "$TMP/halfclose.json" 2>/dev/null)" '[true,true]'
ge "4: half-close: the bytes went through sk_msg" $(($(stat_of redirected) - r0)) 2

# --- 5. the kill switch ------------------------------------------------------------------------
# 16 keep-alive connections run until the test stops them (SIGTERM; the duration is only a
# cap), while the switch flips off and on 8 times; each flip waits until requests were
# answered in the state before (the backend's count grew by 16), so that every flip lands
# on traffic, however slowly the machine serves it.
SPAWN_CGROUP=$CG start_backend ks "$P_KS"
r0=$(stat_of redirected)
SPAWN_CGROUP=$CG spawn ks-client "$SWCLIENT" --url "http://127.0.0.1:$P_KS/x" --connections 16 \
	--duration-ms 600000 --timeout-ms 10000
ks_client=$SPAWNED
wait_until "$WAIT_S" stat_above redirected $((r0 + 99))
ge "5: the 16 connections were on the fast path before the first flip" $(($(stat_of redirected) - r0)) 100
# answered_from N: the backend has answered N requests or more.
answered_from() {
	[ "$(backend_count "$P_KS" requests)" -ge "$1" ]
}
offs=0
ons=0
served=0
for i in 1 2 3 4 5 6 7 8; do
	n=$(backend_count "$P_KS" requests)
	"$SOCKWAY" accel off >/dev/null 2>&1 && offs=$((offs + 1))
	wait_until "$WAIT_S" answered_from $((n + 16)) && served=$((served + 1))
	n=$(backend_count "$P_KS" requests)
	"$SOCKWAY" accel on >/dev/null 2>&1 && ons=$((ons + 1))
	wait_until "$WAIT_S" answered_from $((n + 16)) && served=$((served + 1))
done
stop_pid "$ks_client"
cp "$TMP/ks-client.log" "$TMP/client.json"
eq "5: accel off and accel on each succeeded 8 times" "$offs $ons" "8 8"
eq "5: after each of the 16 flips, requests went on being answered" "$served" 16
eq "5: flipping under load: swclient ran to its end" "$STOP_RC" 0
eq "5: flipping under load: no error" "$(cj .errors)" 0
eq "5: flipping under load: every request answered, all 200" \
	"$(cj '.status["200"] // 0')" "$(cj .requests)"
eq "5: the fast path is on after the last flip" "$("$SOCKWAY" -j accel list | jq .on)" true
# Deterministic: bytes already moved into the peer's queue when "accel off" empties
# sock_hash must still be read by the peer.
in_cg "$CG" timeout 120 python3 "$TMP/pair.py" queued "$SOCKWAY" >"$TMP/queued.json" 2>"$TMP/queued.err"
eq "5: bytes sent but not yet read before accel off are read after it" \
	"$(jq -r .before "$TMP/queued.json" 2>/dev/null)" queued-before-of
eq "5: bytes sent after accel off are read" "$(jq -r .after "$TMP/queued.json" 2>/dev/null)" after
check "5: accel on" "$SOCKWAY" accel on

# --- 7. through sockwayd ------------------------------------------------------------------------
SPAWN_CGROUP=$CG start_backend b7 "$P_B7"
check "7: backend b7" "$SOCKWAY" backend create b7 "127.0.0.1:$P_B7"
check "7: endpoint /p -> b7" "$SOCKWAY" endpoint create p --route /p --backend b7
# --no-accel keeps sockwayd in the test's cgroup (it would join <cgroup2>/sockway otherwise).
SPAWN_CGROUP=$CG start_sockwayd "$P_SWD" "$P_SWD_ADMIN" --workers 2 --no-accel
eq "7: sockwayd runs in $CG" "$(sed -n 's/^0:://p' "/proc/$SWD_PID/cgroup")" "${CG#"$CGROUP2"}"
r0=$(stat_of redirected)
swc "$CG" --url "http://127.0.0.1:$P_SWD/p/x" --requests 1000 --connections 4
all_ok "7: through sockwayd in the cgroup" 1000
eq "7: every response came from b7" "$(cj '.backends.b7 // 0')" 1000
r7=$(($(stat_of redirected) - r0))
echo "# 7: stats.redirected grew by $r7 (client->sockwayd, sockwayd->b7 and back)"
ge "7: sockwayd's sockets took the fast path (redirected grew by >= 4000)" "$r7" 4000
stop_pid "$SWD_PID"

# --- 8. a reader that stops, beside a normal client ----------------------------------------------
# A client stops reading a 64 MiB body (hold_client.py reads the head, then nothing until
# told), beside a normal client of another backend. The backend never blocks on sk_msg
# alone: without the limit in sk_msg.bpf.c all 64 MiB sat in the reader's queue. With it
# the reader's socket holds the queue's limit (accel_queue, 4 MiB) plus one message, and
# TCP's receive buffer; the rest waits in the backend, blocked by TCP's window. A reader
# that does not read at all makes that a state to wait for, where a slow one (curl at
# 2 MB/s) made it a race between its rate and the backend's.
SPAWN_CGROUP=$CG start_backend slow "$P_SLOW" --body-size $((64 * 1048576))
SPAWN_CGROUP=$CG start_backend fast "$P_FAST"
hb0=$(stat_of held_bytes)
SPAWN_CGROUP=$CG spawn slow-reader python3 tests/integration/hold_client.py "$P_SLOW" /big \
	/dev/null "$TMP/slow.go"
slow_reader=$SPAWNED
if wait_until "$WAIT_S" stat_above held_bytes "$hb0"; then
	pass "8: once the stopped reader's queue was full, the backend's sends took TCP (held_bytes grew)"
else
	fail "8: once the stopped reader's queue was full, the backend's sends took TCP (held_bytes grew)" \
		"nothing held in $WAIT_S s"
fi
swc "$CG" --url "http://127.0.0.1:$P_FAST/x" --requests 1000 --connections 4
all_ok "8: the normal client beside the stopped reader" 1000
# A sanity bound, not a measure (tools/bench measures latency): the backend answers in
# microseconds, and a client held up by the stopped reader would wait for as long as it
# stops; half of the requests taking 500 ms each is far beyond what a busy machine adds.
le "8: its p50 latency is under 500 ms (us)" "$(cj '.latency_us.p50 // 1e9')" 500000
# reader_rmem: the receive memory of the reader's socket (ss skmem "r": its TCP receive
# queue and the bytes sk_msg redirected into it), in bytes.
reader_rmem() {
	ss -Htmn "dport = :$P_SLOW" | sed -n 's/.*skmem:(r\([0-9]*\),.*/\1/p' | head -1
}
mem=$(reader_rmem)
echo "# 8: the stopped reader's socket holds ${mem:-?} bytes; the backend had 64 MiB to send"
le "8: the stopped reader's socket holds at most 16 MiB while the backend had 64 MiB to send" \
	"${mem:-1e18}" 16777216
eq "8: the stopped reader is still there, mid-body" \
	"$(kill -0 "$slow_reader" 2>/dev/null && [ -e "$TMP/slow.go.held" ] && echo yes)" yes
stop_pid "$slow_reader" KILL
# reader_gone: the reader's socket, and the bytes queued in it, are freed.
reader_gone() {
	[ -z "$(ss -Htn "dport = :$P_SLOW")" ]
}
if wait_until "$WAIT_S" reader_gone; then
	pass "8: killed, the stopped reader's socket and its queued bytes are freed"
else
	fail "8: killed, the stopped reader's socket and its queued bytes are freed" "$(ss -Htmn "dport = :$P_SLOW")"
fi

# --- 9. close races: connections opened and closed as fast as they can while traffic flows -----
# Four churners open and close 1500 connections each as fast as they can, two straight to
# backends and two through sockwayd, and leave in every way a client can: FIN or RST right
# after the request (the response racing the close), FIN after the response, half-close, RST
# or FIN in the middle of a 1 MiB response (bytes still queued for the dying socket; through
# sockwayd, a body the kernel splices backend to client), RST in the middle of a request
# body, and connect-then-close. Steady keep-alive clients run from before the churn to after it (they
# are stopped once the churners are done), straight and through sockwayd, one of them
# downloading 1 MiB bodies that the kernel splices, all on accelerated sockets; the churn
# goes on until the kernel spliced bodies and the downloads went on during it. Counts of
# work, never a time: a busy machine only takes longer.
# The steady clients must see no error and every byte right, sockwayd must still serve and
# exit cleanly, sock_hash must drain to where it was, no socket may be left half-closed, and
# the kernel must not complain (sockmap has panicked and leaked on these paths in the field).
P_RACE=$(port 24)
P_RACE_BIG=$(port 25)
P_RACE_SWD=$(port 26)
P_RACE_ADMIN=$(port 27)
P_DRIP=$(port 28)
RACE_COUNT=1500

# race.py churn SMALL_PORT SMALL_PATH BIG_PORT BIG_PATH COUNT STOP: opens and closes
#   connections as fast as it can, cycling through MODES, until it did COUNT and the file
#   STOP exists (300 s at most); only "read_close" expects an answer (a whole 200), the
#   others count resets and timeouts.
# race.py fetch PORT PATH STOP SHA256 PROGRESS: one keep-alive connection downloading PATH
#   again and again until the file STOP exists; every body must have that sha256; the count
#   of responses goes to the file PROGRESS after each.
# Both print their counts as JSON. Their timeouts only end a connection that is stuck.
cat >"$TMP/race.py" <<'PY'
import hashlib, json, os, socket, struct, sys, time
LINGER_RST = struct.pack("ii", 1, 0)
MODES = ["fin_unread", "rst_unread", "read_close", "halfclose", "big_fin", "big_rst",
         "post_rst", "connect_close"]

def get(path):
    return ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode()

def read_response(s, buf=b""):
    """Reads one response with a Content-Length body: (status line, body, bytes after it)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return "EOF after %d bytes" % len(buf), b"", b""
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        d = s.recv(1 << 20)
        if not d:
            return "EOF in the body", body, b""
        body += d
    return head.split(b"\r\n", 1)[0].decode(errors="replace"), body[:length], body[length:]

def churn(small_port, small_path, big_port, big_path, count, stop):
    out = {"modes": {m: 0 for m in MODES}, "resets": 0, "timeouts": 0, "read_close_ok": 0,
           "read_close_bad": 0, "bad": []}

    def one(mode):
        port = big_port if mode.startswith("big") else small_port
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            if mode in ("fin_unread", "rst_unread"):
                s.sendall(get(small_path))
            elif mode == "read_close":
                s.sendall(get(small_path))
                status = read_response(s)[0]
                if status.startswith("HTTP/1.1 200 "):
                    out["read_close_ok"] += 1
                else:
                    out["read_close_bad"] += 1
                    out["bad"] = (out["bad"] + [status])[:5]
            elif mode == "halfclose":
                s.sendall(get(small_path))
                s.shutdown(socket.SHUT_WR)
                s.recv(65536)
            elif mode in ("big_fin", "big_rst"):
                s.sendall(get(big_path))
                s.recv(4096)
            elif mode == "post_rst":
                s.sendall(("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 262144\r\n\r\n"
                           % small_path).encode() + b"x" * 65536)
            if mode.endswith("rst"):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        finally:
            s.close()

    end = time.monotonic() + 300
    i = 0
    while (i < count or not os.path.exists(stop)) and time.monotonic() < end:
        mode = MODES[i % len(MODES)]
        i += 1
        out["modes"][mode] += 1
        try:
            one(mode)
        except (ConnectionResetError, BrokenPipeError):
            out["resets"] += 1
        except socket.timeout:
            out["timeouts"] += 1
            if mode == "read_close":
                out["read_close_bad"] += 1
                out["bad"] = (out["bad"] + ["timeout"])[:5]
    out["connections"] = i
    return out

def fetch(port, path, stop, sha, progress):
    out = {"responses": 0, "intact": 0, "errors": 0, "bad": []}
    s, rest = None, b""
    while not os.path.exists(stop):
        try:
            if s is None:
                s, rest = socket.create_connection(("127.0.0.1", port), timeout=30), b""
            s.sendall(get(path))
            status, body, rest = read_response(s, rest)
        except OSError as e:
            status, body = "%s: %s" % (type(e).__name__, e), b""
        if not status.startswith("HTTP/1.1 "):
            out["errors"] += 1
            out["bad"] = (out["bad"] + [status])[:5]
            if s is not None:
                s.close()
            s = None
            continue
        out["responses"] += 1
        if status.startswith("HTTP/1.1 200 ") and hashlib.sha256(body).hexdigest() == sha:
            out["intact"] += 1
        else:
            out["bad"] = (out["bad"] + ["%s, %d bytes" % (status, len(body))])[:5]
        with open(progress, "w") as f:
            f.write("%d\n" % out["responses"])
    return out

if sys.argv[1] == "churn":
    print(json.dumps(churn(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5],
                           int(sys.argv[6]), sys.argv[7])))
else:
    print(json.dumps(fetch(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5],
                           sys.argv[6])))
PY

# kernel_complaints: dmesg lines that sockmap trouble leaves (those of kernel_warnings, and
# any naming sk_msg, psock or sockmap).
kernel_complaints() {
	dmesg | grep -cE 'WARNING|BUG|Oops|refcount|sk_msg|psock|sockmap'
}

# steady_ok DESC LOG: the keep-alive client whose JSON is in LOG answered every request with a
# 200 and had no error, though it ran from before the churn to after it (a request stuck for
# its 30 s timeout would be an error), and it did run (a response on each connection).
steady_ok() {
	cp "$2" "$TMP/client.json"
	eq "$1: no error, every request answered with a 200" \
		"$(cj '[.errors, .requests == .responses, (.status["200"] // 0) == .responses] | @tsv' 2>/dev/null)" \
		"$(printf '0\ttrue\ttrue')"
	ge "$1: it ran ($(cj '.responses // 0') responses)" "$(cj '.responses // 0')" 4
}

# churn_sum VIA: the counts of the churners that went VIA (direct, swd), added up.
churn_sum() {
	jq -s '{connections: (map(.connections) | add), resets: (map(.resets) | add),
		timeouts: (map(.timeouts) | add), read_close_ok: (map(.read_close_ok) | add),
		read_close_bad: (map(.read_close_bad) | add), bad: (map(.bad) | add)}' \
		"$TMP"/churn-"$1"-*.log
}

warn0=$(kernel_complaints)
SPAWN_CGROUP=$CG start_backend race "$P_RACE"
SPAWN_CGROUP=$CG start_backend race-big "$P_RACE_BIG" --body-size 1048576
# The head, then 1 MiB in 64 KiB pieces 2 ms apart: sockwayd has the head before the body
# comes, so the kernel splices the body (the first line of its log is the body's sha256).
SPAWN_CGROUP=$CG spawn drip python3 tests/integration/drip_backend.py "$P_DRIP" 1048576 65536 2
wait_until "$WAIT_S" grep -q '^ready' "$TMP/drip.log" || fail "9: drip_backend.py did not start" "$(head -c 400 "$TMP/drip.log")"
drip_sha=$(grep -m 1 -E '^[0-9a-f]{64}$' "$TMP/drip.log")
check "9: backend race" "$SOCKWAY" backend create race "127.0.0.1:$P_RACE"
check "9: backend drip" "$SOCKWAY" backend create drip "127.0.0.1:$P_DRIP"
check "9: endpoint /race -> race" "$SOCKWAY" endpoint create race --route /race --backend race
check "9: endpoint /drip -> drip" "$SOCKWAY" endpoint create drip --route /drip --backend drip
n0=$(sock_entries)
# sockwayd as it runs by default: in its own accelerated cgroup, filing its connections in
# the conns map and splicing response bodies. Its cgroup goes away when it exits but stays
# listed, which "accel on" would trip over (section 4): nothing after this turns it on.
start_sockwayd "$P_RACE_SWD" "$P_RACE_ADMIN" --workers 2
race_swd=$SWD_PID
check "9: sockwayd joined its own accelerated cgroup" sockwayd_accelerated "$race_swd"
r0=$(stat_of redirected)
sp0=$(stat_of spliced_bytes)
s0=$(stat_of sockets)
# The swclients run until SIGTERM (the duration is only a cap), the fetch until its file.
SPAWN_CGROUP=$CG spawn steady-direct "$SWCLIENT" --url "http://127.0.0.1:$P_RACE/steady" \
	--connections 4 --duration-ms 600000 --timeout-ms 30000
steady_direct=$SPAWNED
SPAWN_CGROUP=$CG spawn steady-swd "$SWCLIENT" --url "http://127.0.0.1:$P_RACE_SWD/race/steady" \
	--connections 4 --duration-ms 600000 --timeout-ms 30000
steady_swd=$SPAWNED
SPAWN_CGROUP=$CG spawn steady-fetch python3 "$TMP/race.py" fetch "$P_RACE_SWD" /drip/steady \
	"$TMP/fetch.stop" "$drip_sha" "$TMP/fetch.n"
steady_fetch=$SPAWNED
wait_until "$WAIT_S" stat_above redirected $((r0 + 99))
ge "9: the steady clients were on the sk_msg path before the churn began" $(($(stat_of redirected) - r0)) 100
# fetched: the steady 1 MiB downloads done so far.
fetched() {
	cat "$TMP/fetch.n" 2>/dev/null || echo 0
}
# churn_seen: since the churn began, 3 more steady downloads ended and the kernel spliced
# 1 MiB of bodies.
churn_seen() {
	[ "$(fetched)" -ge $((f1 + 3)) ] && [ "$(stat_of spliced_bytes)" -ge $((sp1 + 1048576)) ]
}
f1=$(fetched)
sp1=$(stat_of spliced_bytes)
churners=()
for i in 1 2; do
	SPAWN_CGROUP=$CG spawn "churn-direct-$i" python3 "$TMP/race.py" churn \
		"$P_RACE" /x "$P_RACE_BIG" /x "$RACE_COUNT" "$TMP/churn.stop"
	churners+=("$SPAWNED")
	SPAWN_CGROUP=$CG spawn "churn-swd-$i" python3 "$TMP/race.py" churn \
		"$P_RACE_SWD" /race/x "$P_RACE_SWD" /drip/x "$RACE_COUNT" "$TMP/churn.stop"
	churners+=("$SPAWNED")
done
if wait_until "$WAIT_S" churn_seen; then
	pass "9: during the churn, the kernel spliced bodies (>= 1 MiB) and 3 steady downloads ended"
else
	fail "9: during the churn, the kernel spliced bodies (>= 1 MiB) and 3 steady downloads ended" \
		"in $WAIT_S s: $(($(stat_of spliced_bytes) - sp1)) bytes spliced, $(($(fetched) - f1)) downloads"
fi
touch "$TMP/churn.stop"
for pid in "${churners[@]}"; do
	wait "$pid"
done
touch "$TMP/fetch.stop"
stop_pid "$steady_direct"
stop_pid "$steady_swd"
wait "$steady_fetch"
connections=0
for via in direct swd; do
	churn_sum $via >"$TMP/churn-$via.json"
	echo "# 9: churn $via: $(jq -c . "$TMP/churn-$via.json")"
	ge "9: the $via churners opened and closed their 2 x $RACE_COUNT connections" \
		"$(jq '.connections // 0' "$TMP/churn-$via.json")" $((2 * RACE_COUNT))
	eq "9: churn $via: every request read to the end before closing got its whole 200" \
		"$(jq -c '[.read_close_bad, .bad]' "$TMP/churn-$via.json")" '[0,[]]'
	connections=$((connections + $(jq '.connections // 0' "$TMP/churn-$via.json")))
done
ge "9: both ends of every churned connection entered sock_hash" $(($(stat_of sockets) - s0)) $((2 * connections))
steady_ok "9: steady keep-alive client beside the churn, straight to the backend" "$TMP/steady-direct.log"
steady_ok "9: steady keep-alive client beside the churn, through sockwayd" "$TMP/steady-swd.log"
echo "# 9: steady 1 MiB downloads: $(jq -c . "$TMP/steady-fetch.log" 2>/dev/null)"
eq "9: steady 1 MiB downloads through sockwayd: no error, every body intact" \
	"$(jq -c '[.errors, .responses == .intact, .bad]' "$TMP/steady-fetch.log" 2>/dev/null)" '[0,true,[]]'
echo "# 9: the kernel spliced $(($(stat_of spliced_bytes) - sp0)) body bytes backend -> client in all"
check "9: sockwayd is still running" kill -0 "$race_swd"
eq "9: sockwayd still answers /healthz" \
	"$(curl -s --max-time 30 "http://127.0.0.1:$P_RACE_ADMIN/healthz")" ok
swc "$CG" --url "http://127.0.0.1:$P_RACE_SWD/race/after" --requests 200 --connections 4
all_ok "9: sockwayd still routes after the churn" 200
stop_pid "$race_swd"
eq "9: sockwayd exits 0 on SIGTERM after the churn" "$STOP_RC" 0
fin_clean "9: after the churn" "$n0" "$P_RACE" "$P_RACE_BIG" "$P_DRIP" "$P_RACE_SWD"
eq "9: no new kernel WARNING/BUG/Oops/refcount/sk_msg/psock/sockmap line in dmesg" \
	"$(kernel_complaints)" "$warn0"

# --- 10. sockwayd accelerated, its client and backend not: nothing pays for sk_msg -------------
# Only sockwayd is in an accelerated cgroup. sockops leaves its accepted sockets out (their
# peer is not tracked); its upstream sockets join (their route is local) until sockwayd sees
# the backend's end is not tracked, at the first response, and takes them out.
P_LONE=$(port 29)
P_LONE_SWD=$(port 30)
SWD_ADMIN=$(port 31)
start_backend lone "$P_LONE"
check "10: backend lone, outside the accelerated cgroups" "$SOCKWAY" backend create lone "127.0.0.1:$P_LONE"
check "10: endpoint /lone -> lone" "$SOCKWAY" endpoint create lone --route /lone --backend lone
start_sockwayd "$P_LONE_SWD" "$SWD_ADMIN" --workers 2
check "10: sockwayd joined its own accelerated cgroup" sockwayd_accelerated "$SWD_PID"
p0=$(stat_of passed)
u0=$(stat_of untracked)
swc "" --url "http://127.0.0.1:$P_LONE_SWD/lone/x" --requests 2000 --connections 4
all_ok "10: a client outside, through sockwayd, to a backend outside" 2000
up=$(metric sockway_upstream_untracked_total)
ge "10: sockwayd took its upstream sockets out of sock_hash (sockway_upstream_untracked_total)" "$up" 1
ge "10: sockops left sockwayd's 4 accepted sockets out (stats.untracked)" $(($(stat_of untracked) - u0)) 4
# Each upstream connection's first request went through sk_msg before its response showed
# the backend untracked; nothing after it did (2000 requests).
le "10: sk_msg ran only for first requests: stats.passed grew by <= 2 x untracked upstreams" \
	$(($(stat_of passed) - p0)) $((2 * up))
stop_pid "$SWD_PID"
eq "10: sockwayd exits 0 on SIGTERM" "$STOP_RC" 0

# --- 12. an accelerated backend that closes after each 1 MiB response --------------------------
# Its address leaves sock_addr once its close completes, which can be before sockwayd reads
# the first bytes it redirected: sockwayd must not take such an upstream for an untracked one
# (leaving sock_hash would drop what sits in its queue). upstream_check_peer has two
# guards besides the address (bytes the kernel moved on the connection, the peer's FIN);
# this run does not force the late read, it checks that none of them lets a tracked
# backend's upstream out and that every body arrives whole.
P_CLOSER=$(port 33)
P_CLOSER_SWD=$(port 34)
SWD_ADMIN=$(port 35)
SPAWN_CGROUP=$CG start_backend closer "$P_CLOSER" --close --body-size 1048576
check "12: backend closer" "$SOCKWAY" backend create closer "127.0.0.1:$P_CLOSER"
check "12: endpoint /closer -> closer" "$SOCKWAY" endpoint create closer --route /closer --backend closer
start_sockwayd "$P_CLOSER_SWD" "$SWD_ADMIN" --workers 2
swc "" --url "http://127.0.0.1:$P_CLOSER_SWD/closer/x" --requests 200 --connections 4
# swclient reads each body to its Content-Length: a hole or a short body is an error.
all_ok "12: 1 MiB responses of a backend that closes each connection" 200
eq "12: no upstream of the tracked backend was taken out" "$(metric sockway_upstream_untracked_total)" 0
stop_pid "$SWD_PID"

# --- 11. an accelerated client of another host: its socket stays out of sock_hash ------------
# The other host is a network namespace behind a veth pair; the client's route to it does not
# go through a loopback device, so no socket of its can be a local peer.
NS=swacc$$
NET=$(free_net 10.205)
trap 'ip netns del "$NS" 2>/dev/null; lib_cleanup' EXIT
P_FAR=$(port 32)
if [ -z "$NET" ]; then
	fail "11: a free /24 in 10.205.0.0/16"
elif check "11: namespace $NS behind veth sw$$h, 10.205.$NET.0/24" bash -c "
	ip netns add $NS && ip link add sw$$h type veth peer name sw$$n netns $NS &&
	ip addr add 10.205.$NET.1/24 dev sw$$h && ip link set sw$$h up &&
	ip -n $NS addr add 10.205.$NET.2/24 dev sw$$n && ip -n $NS link set sw$$n up &&
	ip -n $NS link set lo up"; then
	spawn far nsenter --net="/run/netns/$NS" "$SWBACKEND" --name far --listen "10.205.$NET.2:$P_FAR"
	wait_until "$WAIT_S" curl -sf --max-time 5 "http://10.205.$NET.2:$P_FAR/__swbackend/stats" ||
		fail "11: the backend in $NS answers"
	s0=$(stat_of sockets)
	u0=$(stat_of untracked)
	p0=$(stat_of passed)
	swc "$CG" --url "http://10.205.$NET.2:$P_FAR/x" --requests 500 --connections 2
	all_ok "11: an accelerated client to a backend on another host" 500
	eq "11: none of its sockets entered sock_hash" $(($(stat_of sockets) - s0)) 0
	ge "11: its 2 connections were left out (stats.untracked)" $(($(stat_of untracked) - u0)) 2
	eq "11: its sends never ran sk_msg (stats.passed did not grow)" $(($(stat_of passed) - p0)) 0
fi

# --- 6. processes killed with sockets in the map, then off and unload -----------------------------
# Last, as it unloads everything.
warn0=$(kernel_warnings)
SPAWN_CGROUP=$CG start_backend b6 "$P_B6"
b6=$BACKEND_PID
# The client runs until it is killed (the duration is only a cap).
SPAWN_CGROUP=$CG spawn kill-client "$SWCLIENT" --url "http://127.0.0.1:$P_B6/x" --connections 8 \
	--duration-ms 600000
kill_client=$SPAWNED
# sock_entries_within LO HI: sock_hash holds between LO and HI sockets.
sock_entries_within() {
	local n
	n=$(sock_entries)
	[ "$n" -ge "$1" ] && [ "$n" -le "$2" ]
}
wait_until "$WAIT_S" sock_entries_within 16 1000000
ge "6: sockets of the keep-alive client are in sock_hash" "$(sock_entries)" 16
stop_pid "$b6" KILL
# The backend's 8 sockets died with it; the client's go with the resets, and it goes on
# connecting to a port nobody listens on.
wait_until "$WAIT_S" sock_entries_within 0 8
stop_pid "$kill_client" KILL
if wait_until "$WAIT_S" sock_hash_empty; then
	pass "6: the killed processes' sockets left sock_hash"
else
	fail "6: the killed processes' sockets left sock_hash" "$(sock_entries) entries left"
fi
eq "6: no new kernel WARNING/BUG/Oops/refcount line in dmesg" "$(kernel_warnings)" "$warn0"
check "6: accel list still answers" bash -c "'$SOCKWAY' -j accel list | jq -e .on"
prog_id=$(bpftool -j cgroup show "$CG" | jq -r '.[] | select(.name == "sock_track") | .id')
map_id=$(bpftool -j map show pinned "$SOCKWAY_PIN_ROOT/sock_hash" | jq -r .id)
check "6: bpftool gives the ids of sock_track ($prog_id) and sock_hash ($map_id)" \
	grep -qE '^[0-9]+ [0-9]+$' <<<"$prog_id $map_id"
check "6: accel off" "$SOCKWAY" accel off
check "6: unload" "$SOCKWAY" unload
check "6: the pin directory is gone" test ! -e "$SOCKWAY_PIN_ROOT"
eq "6: nothing attached to $CG after unload" "$(sockops_on "$CG")" 0
check "6: the sockops program ($prog_id) is freed" wait_until "$WAIT_S" bash -c "! bpftool prog show id '$prog_id'"
check "6: sock_hash ($map_id) is freed" wait_until "$WAIT_S" bash -c "! bpftool map show id '$map_id'"
eq "6: still no new kernel warning" "$(kernel_warnings)" "$warn0"

finish
