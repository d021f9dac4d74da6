#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The kernel fast path (sockops + sk_msg over sock_hash), as a user sees it: the accel CLI
# and its pins; sends between two local sockets of accelerated cgroups going through
# sk_msg (the accel_stats counters) and not when one end is outside; 16 MiB bodies
# byte-exact both ways; FIN and half-close propagation without leaked sockets; the kill
# switch flipped under load and with bytes queued; sockwayd on the fast path; a slow reader
# beside a normal client; and processes killed with sockets in the map. DESIGN.md ("Known
# hazards of sockmap") says why each is here.
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

# stat_of FIELD: a counter of "sockway -j accel list" .stats.
stat_of() {
	"$SOCKWAY" -j accel list | jq -r ".stats.$1"
}

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

kernel_warnings() {
	dmesg | grep -cE 'WARNING|BUG|Oops|refcount'
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
rb0=$(stat_of redirected_bytes)
hb0=$(stat_of held_bytes)
code=$(in_cg "$CG" curl -s --max-time 20 -o "$TMP/big.fast" -w '%{http_code}' "http://127.0.0.1:$P_BIG/big")
rb1=$(stat_of redirected_bytes)
eq "3: 16 MiB download in the cgroup: 200" "$code" 200
eq "3: 16 MiB download in the cgroup: size" "$(stat -c %s "$TMP/big.fast" 2>/dev/null)" $MIB16
# The backend writes 16 MiB at once, faster than curl reads: past 4 MiB queued in curl's
# socket, sends take TCP until curl has caught up (held_bytes), then sk_msg again. (The
# sum is not exactly 16 MiB: after a TCP send hits a full buffer the kernel reuses that
# verdict for the next send without running the program.)
ge "3: the download went through sk_msg (redirected_bytes grew by >= 1 MiB)" $((rb1 - rb0)) 1048576
ge "3: and part of it was held back on TCP (held_bytes grew)" $(($(stat_of held_bytes) - hb0)) 1
echo "# 3: 16 MiB download: $((rb1 - rb0)) bytes redirected, $(($(stat_of held_bytes) - hb0)) held back on TCP"
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

# --- 4. FIN propagation, half-close, no leaks -------------------------------------------------
SPAWN_CGROUP=$CG start_backend fin "$P_FIN"
r0=$(stat_of redirected)
swc "$CG" --url "http://127.0.0.1:$P_FIN/x" --no-keepalive --requests 2000 --connections 8
all_ok "4: 2000 requests without keep-alive" 2000
ge "4: they went through sk_msg" $(($(stat_of redirected) - r0)) 4000
if wait_until 2 no_fin_states "$P_FIN"; then
	pass "4: within 2 s no CLOSE-WAIT or FIN-WAIT-2 socket on port $P_FIN"
else
	fail "4: within 2 s no CLOSE-WAIT or FIN-WAIT-2 socket on port $P_FIN" \
		"$(fin_states "$P_FIN") left: $(ss -Htan "( sport = :$P_FIN or dport = :$P_FIN )" | awk '{print $1}' | sort | uniq -c | tr '\n' ' ')"
fi
if wait_until 2 sock_hash_empty; then
	pass "4: sock_hash is empty again (closed sockets left the map)"
else
	fail "4: sock_hash is empty again" "$(sock_entries) entries left"
fi
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
