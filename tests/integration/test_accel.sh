#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The kernel fast path (sockops + sk_msg over sock_hash), as a user sees it: the accel CLI
# and its pins; sends between two local sockets of accelerated cgroups going through
# sk_msg (the accel_stats counters) and not when one end is outside; 16 MiB bodies
# byte-exact both ways; FIN and half-close propagation without leaked sockets; the kill
# switch flipped under load and with bytes queued; sockwayd on the fast path; a slow reader
# beside a normal client (its memory bounded); connections opened and closed at a high rate
# while traffic flows (section 9: close races, dmesg clean); and processes killed with
# sockets in the map. DESIGN.md ("Known hazards of sockmap") says why each is here.
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

# tcp_mem: pages the kernel's TCP sockets hold now ("mem" of the TCP: line of sockstat).
tcp_mem() {
	awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat
}

tcp_mem_at_most() {
	[ "$(tcp_mem)" -le "$1" ]
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
#     (2 s at most); then A sends 5 more bytes and B reads them.
cat >"$TMP/pair.py" <<'EOF'
import hashlib, json, socket, subprocess, sys
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
a = socket.create_connection(ls.getsockname())
b, _ = ls.accept()
a.settimeout(2)
b.settimeout(2)
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
swc "" --url "http://127.0.0.1:$P_B2/x" --requests 1000 --connections 4
all_ok "2: client outside the cgroup" 1000
r2=$(stat_of redirected)
p2=$(stat_of passed)
eq "2: client outside: stats.redirected did not grow" $((r2 - r1)) 0
ge "2: client outside: stats.passed grew by >= 1000 (the backend's responses)" $((p2 - p1)) 1000
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
code=$(in_cg "$CG" curl -s --max-time 20 -o "$TMP/big.tcp" -w '%{http_code}' "http://127.0.0.1:$P_BIG/big")
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

# fin_clean DESC ENTRIES PORT...: within 2 s no CLOSE-WAIT or FIN-WAIT-2 on the ports, then
# nothing but LISTEN and TIME-WAIT, and sock_hash holds ENTRIES sockets again.
fin_clean() {
	local desc=$1 entries=$2 p
	shift 2
	for p in "$@"; do
		if wait_until 2 no_fin_states "$p"; then
			pass "$desc: within 2 s no CLOSE-WAIT or FIN-WAIT-2 socket on port $p"
		else
			fail "$desc: within 2 s no CLOSE-WAIT or FIN-WAIT-2 socket on port $p" "$(port_states "$p")"
		fi
	done
	if wait_until 2 only_closed "$@"; then
		pass "$desc: nothing but LISTEN and TIME-WAIT on ports $*"
	else
		fail "$desc: nothing but LISTEN and TIME-WAIT on ports $*" \
			"$(for p in "$@"; do echo -n "$p: $(port_states "$p") "; done)"
	fi
	if wait_until 2 sock_entries_are "$entries"; then
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
in_cg "$CG" timeout 10 python3 "$TMP/pair.py" halfclose >"$TMP/halfclose.json" 2>"$TMP/halfclose.err"
eq "4: half-close: 1 MiB then SHUT_WR arrives whole, then EOF" \
	"$(jq -c '[.b_bytes, .b_intact, .b_eof]' "$TMP/halfclose.json" 2>/dev/null)" '[1048576,true,true]'
eq "4: half-close: the reply sent after EOF arrives, then EOF" \
	"$(jq -c '[.a_reply == .want_reply, .a_eof]' "$TMP/halfclose.json" 2>/dev/null)" '[true,true]'
ge "4: half-close: the bytes went through sk_msg" $(($(stat_of redirected) - r0)) 2

# --- 5. the kill switch ------------------------------------------------------------------------
SPAWN_CGROUP=$CG start_backend ks "$P_KS"
r0=$(stat_of redirected)
SPAWN_CGROUP=$CG spawn ks-client "$SWCLIENT" --url "http://127.0.0.1:$P_KS/x" --connections 16 \
	--duration-ms 4000 --timeout-ms 2000
ks_client=$SPAWNED
sleep 0.3
ge "5: the 16 connections were on the fast path before the first flip" $(($(stat_of redirected) - r0)) 100
offs=0
ons=0
end=$((${EPOCHREALTIME/./} + 3600000))
while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
	"$SOCKWAY" accel off >/dev/null 2>&1 && offs=$((offs + 1))
	sleep 0.25
	"$SOCKWAY" accel on >/dev/null 2>&1 && ons=$((ons + 1))
	sleep 0.25
done
wait "$ks_client" 2>/dev/null
cp "$TMP/ks-client.log" "$TMP/client.json"
ge "5: accel off succeeded at least once" "$offs" 1
ge "5: accel on succeeded at least once" "$ons" 1
eq "5: flipping under load: no error" "$(cj .errors)" 0
eq "5: flipping under load: every request answered, all 200" \
	"$(cj '.status["200"] // 0')" "$(cj .requests)"
eq "5: the fast path is on after the last flip" "$("$SOCKWAY" -j accel list | jq .on)" true
# Deterministic: bytes already moved into the peer's queue when "accel off" empties
# sock_hash must still be read by the peer.
in_cg "$CG" timeout 10 python3 "$TMP/pair.py" queued "$SOCKWAY" >"$TMP/queued.json" 2>"$TMP/queued.err"
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

# --- 8. a slow reader beside a normal client -----------------------------------------------------
SPAWN_CGROUP=$CG start_backend slow "$P_SLOW" --body-size $((64 * 1048576))
SPAWN_CGROUP=$CG start_backend fast "$P_FAST"
mem0=$(tcp_mem)
rb0=$(stat_of redirected_bytes)
held0=$(stat_of held)
SPAWN_CGROUP=$CG spawn slow-reader curl -s --limit-rate 2M -o /dev/null "http://127.0.0.1:$P_SLOW/big"
slow_reader=$SPAWNED
sleep 0.3
SPAWN_CGROUP=$CG spawn fast-client "$SWCLIENT" --url "http://127.0.0.1:$P_FAST/x" --requests 1000 --connections 4
fast_client=$SPAWNED
mem_max=0
end=$((${EPOCHREALTIME/./} + 2700000))
while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
	m=$(tcp_mem)
	[ "$m" -gt "$mem_max" ] && mem_max=$m
	sleep 0.1
done
slow_alive=$(kill -0 "$slow_reader" 2>/dev/null && echo yes || echo no)
rb_slow=$(($(stat_of redirected_bytes) - rb0))
stop_pid "$slow_reader" KILL
wait "$fast_client" 2>/dev/null
cp "$TMP/fast-client.log" "$TMP/client.json"
eq "8: the slow reader was still reading after 3 s" "$slow_alive" yes
all_ok "8: the normal client beside the slow reader" 1000
le "8: its p50 latency is under 20 ms (us)" "$(cj '.latency_us.p50 // 1e9')" 20000
# The backend has 64 MiB to send and never blocks on sk_msg alone: without the limit in
# sk_msg.bpf.c all of it sat in the reader's queue (16384 pages). With it the reader holds
# at most 4 MiB redirected plus one message, and TCP's buffers: 4096 pages leave room.
le "8: TCP memory grew by at most 4096 pages (16 MiB) while the backend had 64 MiB to send" \
	$((mem_max - mem0)) 4096
ge "8: the backend's sends to the slow reader were held back on TCP" "$(($(stat_of held) - held0))" 1
echo "# 8: TCP mem $mem0 pages before, $mem_max at most during; the backend pushed $rb_slow bytes through sk_msg to a reader at 2 MB/s"
if wait_until 2 tcp_mem_at_most $((mem0 + 4096)); then
	pass "8: the slow reader's queued bytes are freed after it is killed"
else
	fail "8: the slow reader's queued bytes are freed after it is killed" "$(grep TCP: /proc/net/sockstat), $mem0 before"
fi

# --- 9. close races: connections opened and closed at a high rate while traffic flows -----------
# Four churners open connections as fast as they can for 6 s, two straight to backends and two
# through sockwayd, and leave in every way a client can: FIN or RST right after the request
# (the response racing the close), FIN after the response, half-close, RST or FIN in the middle
# of a 1 MiB response (bytes still queued for the dying socket; through sockwayd, a body the
# kernel splices backend to client), RST in the middle of a request body, and
# connect-then-close. Meanwhile steady keep-alive clients run, straight and through sockwayd,
# one of them downloading 1 MiB bodies that the kernel splices, all on accelerated sockets.
# The steady clients must see no error and every byte right, sockwayd must still serve and
# exit cleanly, sock_hash must drain to where it was, no socket may be left half-closed, and
# the kernel must not complain (DESIGN.md: sockmap has panicked and leaked on these paths).
P_RACE=$(port 24)
P_RACE_BIG=$(port 25)
P_RACE_SWD=$(port 26)
P_RACE_ADMIN=$(port 27)
P_DRIP=$(port 28)
RACE_MS=6000

# race.py churn SMALL_PORT SMALL_PATH BIG_PORT BIG_PATH SECONDS: opens and closes connections
#   as fast as it can, cycling through MODES; only "read_close" expects an answer (a whole
#   200), the others count resets and timeouts.
# race.py fetch PORT PATH SECONDS SHA256: one keep-alive connection downloading PATH again and
#   again; every body must have that sha256.
# Both print their counts as JSON.
cat >"$TMP/race.py" <<'PY'
import hashlib, json, socket, struct, sys, time
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

def churn(small_port, small_path, big_port, big_path, seconds):
    out = {"modes": {m: 0 for m in MODES}, "resets": 0, "timeouts": 0, "read_close_ok": 0,
           "read_close_bad": 0, "bad": []}

    def one(mode):
        port = big_port if mode.startswith("big") else small_port
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
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

    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
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

def fetch(port, path, seconds, sha):
    out = {"responses": 0, "intact": 0, "errors": 0, "bad": []}
    end = time.monotonic() + seconds
    s, rest = None, b""
    while time.monotonic() < end:
        try:
            if s is None:
                s, rest = socket.create_connection(("127.0.0.1", port), timeout=5), b""
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
    return out

if sys.argv[1] == "churn":
    print(json.dumps(churn(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5],
                           float(sys.argv[6]))))
else:
    print(json.dumps(fetch(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5])))
PY

# kernel_complaints: dmesg lines that sockmap trouble leaves (those of kernel_warnings, and
# any naming sk_msg, psock or sockmap).
kernel_complaints() {
	dmesg | grep -cE 'WARNING|BUG|Oops|refcount|sk_msg|psock|sockmap'
}

# steady_ok DESC LOG: the keep-alive client whose JSON is in LOG answered every request with a
# 200, had no error, and really ran (>= 1000 responses).
steady_ok() {
	cp "$2" "$TMP/client.json"
	eq "$1: no error, every request answered with a 200" \
		"$(cj '[.errors, .requests == .responses, (.status["200"] // 0) == .responses] | @tsv' 2>/dev/null)" \
		"$(printf '0\ttrue\ttrue')"
	ge "$1: >= 1000 responses ($(cj '.responses // 0'))" "$(cj '.responses // 0')" 1000
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
wait_until 5 grep -q '^ready' "$TMP/drip.log" || fail "9: drip_backend.py did not start" "$(head -c 400 "$TMP/drip.log")"
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
SPAWN_CGROUP=$CG spawn steady-direct "$SWCLIENT" --url "http://127.0.0.1:$P_RACE/steady" \
	--connections 4 --duration-ms $((RACE_MS + 1000))
steady_direct=$SPAWNED
SPAWN_CGROUP=$CG spawn steady-swd "$SWCLIENT" --url "http://127.0.0.1:$P_RACE_SWD/race/steady" \
	--connections 4 --duration-ms $((RACE_MS + 1000))
steady_swd=$SPAWNED
SPAWN_CGROUP=$CG spawn steady-fetch python3 "$TMP/race.py" fetch "$P_RACE_SWD" /drip/steady \
	$((RACE_MS / 1000 + 1)) "$drip_sha"
steady_fetch=$SPAWNED
sleep 0.5
ge "9: the steady clients were on the sk_msg path before the churn began" $(($(stat_of redirected) - r0)) 100
churners=()
for i in 1 2; do
	SPAWN_CGROUP=$CG spawn "churn-direct-$i" python3 "$TMP/race.py" churn \
		"$P_RACE" /x "$P_RACE_BIG" /x $((RACE_MS / 1000))
	churners+=("$SPAWNED")
	SPAWN_CGROUP=$CG spawn "churn-swd-$i" python3 "$TMP/race.py" churn \
		"$P_RACE_SWD" /race/x "$P_RACE_SWD" /drip/x $((RACE_MS / 1000))
	churners+=("$SPAWNED")
done
for pid in "${churners[@]}" "$steady_direct" "$steady_swd" "$steady_fetch"; do
	wait "$pid"
done
connections=0
for via in direct swd; do
	churn_sum $via >"$TMP/churn-$via.json"
	echo "# 9: churn $via: $(jq -c . "$TMP/churn-$via.json")"
	ge "9: the $via churners opened and closed >= 3000 connections in $((RACE_MS / 1000)) s" \
		"$(jq '.connections // 0' "$TMP/churn-$via.json")" 3000
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
ge "9: steady 1 MiB downloads: >= 20 of them" "$(jq '.responses // 0' "$TMP/steady-fetch.log" 2>/dev/null)" 20
sp=$(($(stat_of spliced_bytes) - sp0))
echo "# 9: the kernel spliced $sp body bytes backend -> client during the churn"
ge "9: response bodies were spliced in the kernel during the churn (>= 1 MiB)" "$sp" 1048576
check "9: sockwayd is still running" kill -0 "$race_swd"
eq "9: sockwayd still answers /healthz" \
	"$(curl -s --max-time 2 "http://127.0.0.1:$P_RACE_ADMIN/healthz")" ok
swc "$CG" --url "http://127.0.0.1:$P_RACE_SWD/race/after" --requests 200 --connections 4
all_ok "9: sockwayd still routes after the churn" 200
stop_pid "$race_swd"
eq "9: sockwayd exits 0 on SIGTERM after the churn" "$STOP_RC" 0
fin_clean "9: after the churn" "$n0" "$P_RACE" "$P_RACE_BIG" "$P_DRIP" "$P_RACE_SWD"
eq "9: no new kernel WARNING/BUG/Oops/refcount/sk_msg/psock/sockmap line in dmesg" \
	"$(kernel_complaints)" "$warn0"

# --- 6. processes killed with sockets in the map, then off and unload -----------------------------
# Last, as it unloads everything.
warn0=$(kernel_warnings)
SPAWN_CGROUP=$CG start_backend b6 "$P_B6"
b6=$BACKEND_PID
SPAWN_CGROUP=$CG spawn kill-client "$SWCLIENT" --url "http://127.0.0.1:$P_B6/x" --connections 8 --duration-ms 3000
kill_client=$SPAWNED
sleep 1
ge "6: sockets of the keep-alive client are in sock_hash" "$(sock_entries)" 16
stop_pid "$b6" KILL
sleep 0.3
stop_pid "$kill_client" KILL
sleep 0.5
eq "6: no new kernel WARNING/BUG/Oops/refcount line in dmesg" "$(kernel_warnings)" "$warn0"
check "6: accel list still answers" bash -c "'$SOCKWAY' -j accel list | jq -e .on"
if wait_until 2 sock_hash_empty; then
	pass "6: the killed processes' sockets left sock_hash"
else
	fail "6: the killed processes' sockets left sock_hash" "$(sock_entries) entries left"
fi
prog_id=$(bpftool -j cgroup show "$CG" | jq -r '.[] | select(.name == "sock_track") | .id')
map_id=$(bpftool -j map show pinned "$SOCKWAY_PIN_ROOT/sock_hash" | jq -r .id)
check "6: bpftool gives the ids of sock_track ($prog_id) and sock_hash ($map_id)" \
	grep -qE '^[0-9]+ [0-9]+$' <<<"$prog_id $map_id"
check "6: accel off" "$SOCKWAY" accel off
check "6: unload" "$SOCKWAY" unload
check "6: the pin directory is gone" test ! -e "$SOCKWAY_PIN_ROOT"
eq "6: nothing attached to $CG after unload" "$(sockops_on "$CG")" 0
check "6: the sockops program ($prog_id) is freed" wait_until 2 bash -c "! bpftool prog show id '$prog_id'"
check "6: sock_hash ($map_id) is freed" wait_until 2 bash -c "! bpftool map show id '$map_id'"
eq "6: still no new kernel warning" "$(kernel_warnings)" "$warn0"

finish
