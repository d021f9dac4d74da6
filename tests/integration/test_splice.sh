#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# sockwayd's kernel splice of responses, and the per-cell accel_bytes counter: a
# Content-Length body that arrives after sockwayd forwarded its head goes from the backend's
# socket straight into the client's (sk_msg), all but its last byte (abi.h, struct sw_conn);
# so does a whole response, head included, when its head is one sockwayd would pass on
# unchanged (section 10: heads it must rewrite, 103 Early Hints, a client that stops
# reading, a backend dying mid-body, clients killed, 8 clients at once; section 11: the same
# load with the kill switch flipping).
# Each check is byte-exact against the backend's own sha256, and the accel_stats counters
# (spliced_bytes) prove which path the bytes took. The hazards: a client that stops reading
# (the splice stops at its queue's limit and sockwayd forwards the rest), the kill switch
# mid-body, a client that goes away mid-body, a backend that dies mid-body, keep-alive reuse
# after a splice, --no-splice, what sockwayd leaves behind when it exits, is killed or
# cannot start, and a sockwayd killed mid-body whose client connects again from the same
# port (section 13: the kernel checks the cookie of sockwayd's socket). Each waits for the
# state it needs (a client that stops reading until told, a backend that pauses until told,
# counts of work): none assumes a rate.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

P_DRIP=$(port 10)
P_CUT=$(port 11)
P_SWD=$(port 12)
P_SWD_ADMIN=$(port 13)
P_SWD2=$(port 14)
P_SWD2_ADMIN=$(port 15)
P_SMALL=$(port 16)
P_SLOWB=$(port 17)
P_SWD3=$(port 18)
P_SWD3_ADMIN=$(port 19)
P_WHOLE=$(port 20)
P_WCUT=$(port 21)
P_WKA=$(port 22)
P_WTRAIL=$(port 23)
P_WBIG=$(port 24)
P_W=$(port 25)
P_W_ADMIN=$(port 26)
P_WINT=$(port 27)
P_WINTJ=$(port 28)
P_WT=$(port 29)
P_WT_ADMIN=$(port 30)
P_SM=$(port 31)
P_S12=$(port 32)
P_S12_ADMIN=$(port 33)
P_SMS=$(port 34)
P_KS=$(port 35)
P_RH=$(port 36)
P_RA=$(port 37)
P_RA_ADMIN=$(port 38)
P_RB_ADMIN=$(port 39)
P_RSRC=$(port 40)
MIB1=1048576
MIB8=8388608

# get NAME URL [CURL ARGS...]: curl in the accelerated cgroup, body in $TMP/NAME; prints
# "CODE SIZE".
get() {
	local name=$1 url=$2
	shift 2
	(SPAWN_CGROUP=$CG lib_exec curl -s --max-time 30 -o "$TMP/$name" -w '%{http_code} %{size_download}' "$@" "$url")
}

sha_of() {
	sha256sum <"$1" | awk '{ print $1 }'
}

check "load" "$SOCKWAY" load
cgroup_new clients
CG=$CGROUP
check "accel add the test's cgroup" "$SOCKWAY" accel add "$CG"
warn0=$(kernel_warnings)

# A backend that sends the head, then 8 MiB in 256 KiB pieces 2 ms apart; another that
# dies after 3 MiB of an 8 MiB body; and a plain one.
SPAWN_CGROUP=$CG spawn drip python3 tests/integration/drip_backend.py "$P_DRIP" $MIB8
SPAWN_CGROUP=$CG spawn cut python3 tests/integration/drip_backend.py "$P_CUT" $MIB8 262144 2 3145728
SPAWN_CGROUP=$CG start_backend small "$P_SMALL"
# The same 8 MiB, in pieces 50 ms apart that stop after 1 MiB until the test says (section 4).
DRIP_HOLD_AT=$MIB1 DRIP_HOLD_FILE=$TMP/ks.go SPAWN_CGROUP=$CG \
	spawn ks python3 tests/integration/drip_backend.py "$P_KS" $MIB8 262144 50
for b in drip cut ks; do
	wait_until "$WAIT_S" grep -q ready "$TMP/$b.log" || fail "$b backend did not start" "$(cat "$TMP/$b.log")"
done
SHA=$(head -1 "$TMP/drip.log")
check "backend drip" "$SOCKWAY" backend create drip "127.0.0.1:$P_DRIP"
check "backend cut" "$SOCKWAY" backend create cut "127.0.0.1:$P_CUT"
check "backend small" "$SOCKWAY" backend create small "127.0.0.1:$P_SMALL"
check "backend ks" "$SOCKWAY" backend create ks "127.0.0.1:$P_KS"
check "endpoint /drip" "$SOCKWAY" endpoint create drip --route /drip --backend drip
check "endpoint /cut" "$SOCKWAY" endpoint create cut --route /cut --backend cut
check "endpoint /small" "$SOCKWAY" endpoint create small --route /small --backend small
check "endpoint /ks" "$SOCKWAY" endpoint create ks --route /ks --backend ks
# sockwayd accelerates itself (it joins <cgroup2>/<pin dir name>).
start_sockwayd "$P_SWD" "$P_SWD_ADMIN" --workers 2
SWD=$SWD_PID

# --- 1. bodies spliced, byte-exact ------------------------------------------------------------
sb0=$(stat_of spliced_bytes)
for i in 1 2 3; do
	eq "1: 8 MiB through sockwayd, download $i: status and size" \
		"$(get "d$i" "http://127.0.0.1:$P_SWD/drip/x")" "200 $MIB8"
	eq "1: download $i is byte-exact" "$(sha_of "$TMP/d$i")" "$SHA"
done
sb=$(($(stat_of spliced_bytes) - sb0))
echo "# 1: $sb of $((3 * MIB8)) body bytes spliced backend -> client"
# How much depends on curl: once armed, the splice runs until the client's queue holds its
# limit (accel_queue, 4 MiB), or to the end when curl keeps up (all of it on an idle
# machine). Only what reached sockwayd before it armed (its lag behind pieces 2 ms apart)
# is never spliced: 1 MiB of lag per download, far more than a busy machine makes, is the
# margin.
ge "1: at least the client's queue limit per download went backend -> client in the kernel" \
	"$sb" $((3 * ($(accel_queue) - MIB1)))
# Three bodies and three heads of ~100 bytes (the backend's: sockwayd arms before the
# response comes, and the kernel passes a head it would forward unchanged).
btc=$("$SOCKWAY" -j stats drip | jq -r '.[0].counters.bytes_to_client')
ge "1: sockwayd counted every body byte, spliced or not (bytes_to_client)" "$btc" $((3 * MIB8 + 3 * 50))
le "1: and the heads, and nothing more" "$btc" $((3 * MIB8 + 3 * 300))
le "1: but never the last byte of a response sent in pieces (sockwayd ends each exchange)" \
	"$sb" $((btc - 3))
ab=$("$SOCKWAY" -j stats drip | jq -r '.[0].counters.accel_bytes')
ge "1: the cell's accel_bytes count the spliced bytes" "$ab" "$sb"
m=$(curl -s "http://127.0.0.1:$P_SWD_ADMIN/metrics" | awk '/^sockway_accel_bytes_total\{endpoint="drip"/ { print $2 }')
eq "1: /metrics sockway_accel_bytes_total agrees with sockway stats" "$m" "$ab"

# --- 2. two bodies on one keep-alive connection ----------------------------------------------
eq "2: two 8 MiB bodies on one connection (curl reuses it)" \
	"$(get ka "http://127.0.0.1:$P_SWD/drip/a" -o "$TMP/ka2" "http://127.0.0.1:$P_SWD/drip/b")" \
	"200 ${MIB8}200 ${MIB8}"
eq "2: the first is byte-exact" "$(sha_of "$TMP/ka")" "$SHA"
eq "2: the second is byte-exact" "$(sha_of "$TMP/ka2")" "$SHA"
eq "2: then a small request, a 200" "$(get s "http://127.0.0.1:$P_SWD/small/x" | cut -d' ' -f1)" 200

# --- 3. a client that stops reading ------------------------------------------------------------
# The splice stops when the client's socket holds its limit (accel_queue, 4 MiB): sockwayd
# forwards the rest, over TCP once the client's queue is full (held_bytes), which blocks it
# in turn. hold_client.py reads nothing after the head until that happened, then all of it.
sb0=$(stat_of spliced_bytes)
hb0=$(stat_of held_bytes)
SPAWN_CGROUP=$CG spawn slow python3 tests/integration/hold_client.py "$P_SWD" /drip/x \
	"$TMP/slow" "$TMP/slow.go"
slow=$SPAWNED
if wait_until "$WAIT_S" stat_above held_bytes "$hb0"; then
	pass "3: once the client's queue was full, the rest took TCP (held_bytes grew)"
else
	fail "3: once the client's queue was full, the rest took TCP (held_bytes grew)" \
		"spliced $(($(stat_of spliced_bytes) - sb0)), nothing held in $WAIT_S s"
fi
echo "# 3: spliced $(($(stat_of spliced_bytes) - sb0)) before the client read on"
touch "$TMP/slow.go"
wait "$slow"
eq "3: 8 MiB to a client that stopped reading, then read on" "$(cat "$TMP/slow.log")" "200 $MIB8"
eq "3: byte-exact" "$(sha_of "$TMP/slow")" "$SHA"

# --- 4. the kill switch mid-body ----------------------------------------------------------------
# The ks backend stops after 1 MiB of the body until the test says: the switch goes off
# while the kernel splices that body (nothing in flight), then the rest comes, and must
# reach the client through sockwayd.
KS_SHA=$(head -1 "$TMP/ks.log")
sb0=$(stat_of spliced_bytes)
SPAWN_CGROUP=$CG spawn ksget curl -s --max-time 120 -o "$TMP/ks" -w '%{http_code} %{size_download}' "http://127.0.0.1:$P_SWD/ks/x"
ks=$SPAWNED
wait_until "$WAIT_S" test -e "$TMP/ks.go.held" || fail "4: the ks backend paused after 1 MiB"
sb=$(($(stat_of spliced_bytes) - sb0))
echo "# 4: $sb bytes spliced when the backend paused"
ge "4: the kernel was splicing the body (one piece or more)" "$sb" 262144
check "4: accel off while the body flows" "$SOCKWAY" accel off
sb0=$(stat_of spliced_bytes)
touch "$TMP/ks.go"
wait "$ks"
eq "4: the download finished" "$(cat "$TMP/ksget.log")" "200 $MIB8"
eq "4: byte-exact" "$(sha_of "$TMP/ks")" "$KS_SHA"
eq "4: after the switch, nothing more was spliced" "$(stat_of spliced_bytes)" "$sb0"
sb0=$(stat_of spliced_bytes)
eq "4: with accel off, a download" "$(get off "http://127.0.0.1:$P_SWD/drip/x")" "200 $MIB8"
eq "4: byte-exact" "$(sha_of "$TMP/off")" "$SHA"
eq "4: and nothing spliced" "$(stat_of spliced_bytes)" "$sb0"
check "4: accel on" "$SOCKWAY" accel on

# --- 5. the client goes away mid-body --------------------------------------------------------
# Each client reads the head and (i - 1) MiB, then stops; it is killed once it has.
for i in 1 2 3 4 5; do
	rm -f "$TMP/gone.go.held"
	SPAWN_CGROUP=$CG spawn gone python3 tests/integration/hold_client.py "$P_SWD" /drip/x \
		/dev/null "$TMP/gone.go" $(((i - 1) * MIB1))
	wait_until "$WAIT_S" test -e "$TMP/gone.go.held" || fail "5: client $i read $((i - 1)) MiB"
	stop_pid "$SPAWNED" KILL
done
eq "5: sockwayd is alive after five clients killed mid-body" "$(kill -0 "$SWD" 2>/dev/null && echo yes)" yes
eq "5: and splices the next download" "$(get after "http://127.0.0.1:$P_SWD/drip/x")" "200 $MIB8"
eq "5: byte-exact" "$(sha_of "$TMP/after")" "$SHA"

# --- 6. the backend dies mid-body ----------------------------------------------------------------
out=$(get cut "http://127.0.0.1:$P_SWD/cut/x")
eq "6: the client gets the 3 MiB sent, then the connection closes (no more, no other bytes)" \
	"$out" "200 3145728"
eq "6: those bytes are the body's first 3 MiB" "$(sha_of "$TMP/cut")" \
	"$(head -c 3145728 "$TMP/d1" | sha256sum | awk '{ print $1 }')"
ge "6: sockwayd counted an upstream error" \
	"$("$SOCKWAY" -j stats cut | jq -r '[.[0].counters.errors[]] | add')" 1
eq "6: and serves the next request" "$(get after2 "http://127.0.0.1:$P_SWD/drip/x")" "200 $MIB8"
eq "6: byte-exact" "$(sha_of "$TMP/after2")" "$SHA"

# --- 10. whole responses: the head passed on unchanged -----------------------------------------
# Most servers send the head and the body in one send: by the time sockwayd reads the head,
# the body is in its socket. So sockwayd arms before the response comes, and sk_msg scans
# the head of the backend's first send: one that sockwayd would pass on unchanged
# (include/sockway/resphead.h) goes to the client as it came, with the body.
# (Its /silent and /stall answers wait 20 s: far past the 800 ms timeout they are for.)
DRIP_SLOW_MS=20000 SPAWN_CGROUP=$CG \
	spawn whole python3 tests/integration/drip_backend.py "$P_WHOLE" $MIB1 0
SPAWN_CGROUP=$CG spawn wcut python3 tests/integration/drip_backend.py "$P_WCUT" $MIB8 0 0 3145728
SPAWN_CGROUP=$CG spawn wbig python3 tests/integration/drip_backend.py "$P_WBIG" $MIB8 0
# Heads sockwayd rewrites: a Keep-Alive field (hop-by-hop: dropped), a value with trailing
# whitespace (trimmed).
DRIP_HEAD_EXTRA='Keep-Alive: timeout=5\r\n' SPAWN_CGROUP=$CG \
	spawn wka python3 tests/integration/drip_backend.py "$P_WKA" $MIB1 0
DRIP_HEAD_EXTRA='X-Trail: a \r\n' SPAWN_CGROUP=$CG \
	spawn wtrail python3 tests/integration/drip_backend.py "$P_WTRAIL" $MIB1 0
# A 103 Early Hints before the head: in a send of its own, and in the head's send.
EARLY='HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n'
DRIP_INTERIM=$EARLY DRIP_INTERIM_ALONE=1 SPAWN_CGROUP=$CG \
	spawn wint python3 tests/integration/drip_backend.py "$P_WINT" $MIB1 0
DRIP_INTERIM=$EARLY SPAWN_CGROUP=$CG \
	spawn wintj python3 tests/integration/drip_backend.py "$P_WINTJ" $MIB1 0
for b in whole wcut wbig wka wtrail wint wintj; do
	wait_until "$WAIT_S" grep -q ready "$TMP/$b.log" || fail "$b backend did not start" "$(cat "$TMP/$b.log")"
done
SHA1=$(head -1 "$TMP/whole.log")
check "backend whole" "$SOCKWAY" backend create whole "127.0.0.1:$P_WHOLE"
check "backend wcut" "$SOCKWAY" backend create wcut "127.0.0.1:$P_WCUT"
check "backend wbig" "$SOCKWAY" backend create wbig "127.0.0.1:$P_WBIG"
check "backend wka" "$SOCKWAY" backend create wka "127.0.0.1:$P_WKA"
check "backend wtrail" "$SOCKWAY" backend create wtrail "127.0.0.1:$P_WTRAIL"
check "endpoint /whole" "$SOCKWAY" endpoint create whole --route /whole --backend whole
check "endpoint /wcut" "$SOCKWAY" endpoint create wcut --route /wcut --backend wcut
check "endpoint /wbig" "$SOCKWAY" endpoint create wbig --route /wbig --backend wbig
check "endpoint /wka" "$SOCKWAY" endpoint create wka --route /wka --backend wka
check "endpoint /wtrail" "$SOCKWAY" endpoint create wtrail --route /wtrail --backend wtrail
for b in wint wintj; do
	check "backend $b" "$SOCKWAY" backend create $b "127.0.0.1:$(eval echo \$P_${b^^})"
	check "endpoint /$b" "$SOCKWAY" endpoint create $b --route /$b --backend $b
done
# Kernel routing off (--lend 0) in sections 10 and 11: for a client the kernel could route,
# sockwayd writes responses itself (README, Kernel routing); these sections are about the
# responses it arms for the others.
start_sockwayd "$P_W" "$P_W_ADMIN" --workers 1 --lend 0
WSWD=$SWD_PID
for e in whole wbig wka wtrail wint wintj; do
	eq "10: a first download from /$e" \
		"$(get "warm-$e" "http://127.0.0.1:$P_W/$e/x" -o /dev/null | cut -d' ' -f1)" 200
done
# The backend's head, as it sends it.
printf 'HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nContent-Type: application/octet-stream\r\n\r\n' >"$TMP/whead"
WHEAD_LEN=$(stat -c %s "$TMP/whead")

# Three in a row on one pooled upstream connection: the split that leaves each response's
# last byte to sockwayd must leave nothing behind for the next (on 6.18 a stale byte count
# of the split carried the next response's first 480 KiB to sockwayd unseen).
sb0=$(stat_of spliced_bytes)
for i in 1 2 3; do
	eq "10: 1 MiB sent with its head in one send, download $i: status and size" \
		"$(get "w$i" "http://127.0.0.1:$P_W/whole/x" -D "$TMP/w$i.head")" "200 $MIB1"
	eq "10: download $i is byte-exact" "$(sha_of "$TMP/w$i")" "$SHA1"
	check "10: download $i: the head as the backend sent it" cmp "$TMP/w$i.head" "$TMP/whead"
done
sb=$(($(stat_of spliced_bytes) - sb0))
echo "# 10: $sb of $((3 * (MIB1 + WHEAD_LEN))) response bytes spliced backend -> client"
eq "10: all of each response but its last byte went backend -> client in the kernel" \
	"$sb" $((3 * (MIB1 + WHEAD_LEN - 1)))
c=$("$SOCKWAY" -j stats whole | jq -c '.[0].counters | [.requests, .status."2xx", .bytes_to_client]')
eq "10: sockwayd counted four requests, four 2xx, every byte (head included)" \
	"$c" "[4,4,$((4 * (MIB1 + WHEAD_LEN)))]"
ab=$("$SOCKWAY" -j stats whole | jq -r '.[0].counters.accel_bytes')
ge "10: the cell's accel_bytes count the spliced bytes" "$ab" "$sb"

# curl pairs its -o options with the URLs in order: get's own -o goes with the small one.
eq "10: a small response and two whole ones on one connection" \
	"$(get wka1 "http://127.0.0.1:$P_W/whole/b" -o "$TMP/wka2" "http://127.0.0.1:$P_W/small/s" \
		-o "$TMP/wka3" "http://127.0.0.1:$P_W/whole/a")" "200 $(stat -c %s "$TMP/s")200 ${MIB1}200 ${MIB1}"
eq "10: the first whole one is byte-exact" "$(sha_of "$TMP/wka2")" "$SHA1"
eq "10: the second is byte-exact" "$(sha_of "$TMP/wka3")" "$SHA1"

# What sockwayd must write itself: the kernel leaves those heads alone.
get wc "http://127.0.0.1:$P_W/whole/x" -H 'Connection: close' -D "$TMP/wc.head" >/dev/null
eq "10: a client that closes gets Connection: close (sockwayd's head)" \
	"$(grep -ci '^Connection: close' "$TMP/wc.head")" 1
eq "10: byte-exact" "$(sha_of "$TMP/wc")" "$SHA1"
get w10 "http://127.0.0.1:$P_W/whole/x" -0 -D "$TMP/w10.head" >/dev/null
eq "10: an HTTP/1.0 client gets a Connection field (sockwayd's head)" \
	"$(grep -ci '^Connection: ' "$TMP/w10.head")" 1
eq "10: byte-exact" "$(sha_of "$TMP/w10")" "$SHA1"
eq "10: HEAD: a 200 with no body" "$(get wh "http://127.0.0.1:$P_W/whole/x" -I)" "200 0"
get wk "http://127.0.0.1:$P_W/wka/x" -D "$TMP/wk.head" >/dev/null
eq "10: a Keep-Alive field from the backend is dropped (sockwayd's head)" \
	"$(grep -ci '^Keep-Alive' "$TMP/wk.head")" 0
eq "10: byte-exact" "$(sha_of "$TMP/wk")" "$SHA1"
get wt "http://127.0.0.1:$P_W/wtrail/x" -D "$TMP/wt.head" >/dev/null
eq "10: a value's trailing space is trimmed (sockwayd's head)" \
	"$(grep -c $'^X-Trail: a\r$' "$TMP/wt.head")" 1
eq "10: byte-exact" "$(sha_of "$TMP/wt")" "$SHA1"
# (Their bodies may still be spliced in part, after sockwayd forwarded its head: the kernel
# cuts a 1 MiB send into parts, and a later part can find the body splice armed.)
# An interim response goes to the client first, as sockwayd forwards it; the final head,
# which the kernel sees after it, is sockwayd's to forward too.
for b in wint wintj; do
	eq "10: /$b: 103 then 200" "$(get "$b" "http://127.0.0.1:$P_W/$b/x" -D "$TMP/$b.head")" "200 $MIB1"
	eq "10: /$b: the client saw the 103 first, then the 200" \
		"$(grep -aoE '^HTTP/1.1 [0-9]+' "$TMP/$b.head" | tr '\n' ' ')" "HTTP/1.1 103 HTTP/1.1 200 "
	eq "10: /$b: byte-exact" "$(sha_of "$TMP/$b")" "$SHA1"
done

# A client that stops reading after the head: the kernel stops at the client's limit,
# sockwayd forwards the rest, and its sends to the full client take TCP (held_bytes); then
# the client reads on.
sb0=$(stat_of spliced_bytes)
hb0=$(stat_of held_bytes)
SPAWN_CGROUP=$CG spawn wslow python3 tests/integration/hold_client.py "$P_W" /wbig/x \
	"$TMP/wslow" "$TMP/wslow.go"
wslow=$SPAWNED
wait_until "$WAIT_S" stat_above held_bytes "$hb0" ||
	fail "10: the rest of a whole response to a full client took TCP (held_bytes grew)"
sb=$(($(stat_of spliced_bytes) - sb0))
echo "# 10: client stopped: spliced $sb, then held back on TCP"
# The splice checks the client's queue before each message (up to MAX_SKB_FRAGS pages of
# 32 KiB, 544 KiB by default): it went on until the queue held its limit, and stopped
# there; the client had read at most the head and 4 KiB.
ge "10: the kernel passed the response on up to the client's limit" "$sb" "$(accel_queue)"
le "10: and not much past it" "$sb" $(($(accel_queue) + 2097152))
touch "$TMP/wslow.go"
wait "$wslow"
eq "10: 8 MiB sent in one send, to a client that stopped reading, then read on" \
	"$(cat "$TMP/wslow.log")" "200 $MIB8"
eq "10: byte-exact" "$(sha_of "$TMP/wslow")" "$SHA"

# A backend that dies after 3 MiB of the 8 MiB it announced.
sb0=$(stat_of spliced_bytes)
eq "10: a backend that dies after 3 MiB: the client gets them, then a close" \
	"$(get wcut "http://127.0.0.1:$P_W/wcut/x")" "200 3145728"
eq "10: those bytes are the body's first 3 MiB" "$(sha_of "$TMP/wcut")" \
	"$(head -c 3145728 "$TMP/d1" | sha256sum | awk '{ print $1 }')"
ge "10: the kernel had passed the head and part of it on" $(($(stat_of spliced_bytes) - sb0)) 1
ge "10: sockwayd counted an upstream error" \
	"$("$SOCKWAY" -j stats wcut | jq -r '[.[0].counters.errors[]] | add')" 1
eq "10: and serves the next request" "$(get w4 "http://127.0.0.1:$P_W/whole/x")" "200 $MIB1"
eq "10: byte-exact" "$(sha_of "$TMP/w4")" "$SHA1"

# Timeouts with a whole response armed (a sockwayd of its own, 800 ms response timeout):
# a backend that stays silent (the arming is taken back, the client gets sockwayd's 504),
# and one that stalls mid-body after the kernel passed the head and half the body on (the
# client has part of a response: it gets a close, not a 504).
start_sockwayd "$P_WT" "$P_WT_ADMIN" --workers 1 --response-timeout 800 --replica-down 0 --lend 0
WTSWD=$SWD_PID
eq "10: (a first download from /whole on it)" "$(get wt0 "http://127.0.0.1:$P_WT/whole/x")" "200 $MIB1"
e0=$("$SOCKWAY" -j stats whole | jq -r '[.[0].counters.errors[]] | add')
eq "10: a silent backend: sockwayd answers 504 itself" \
	"$(get wt1 "http://127.0.0.1:$P_WT/whole/silent" | cut -d' ' -f1)" 504
ge "10: and counts the timeouts" "$("$SOCKWAY" -j stats whole | jq -r '[.[0].counters.errors[]] | add')" \
	$((e0 + 1))
sb0=$(stat_of spliced_bytes)
eq "10: a backend stalling mid-body: the client gets the head and half the body, then a close" \
	"$(get wt2 "http://127.0.0.1:$P_WT/whole/stall")" "200 $((MIB1 / 2))"
ge "10: (the kernel had passed them on)" $(($(stat_of spliced_bytes) - sb0)) $((MIB1 / 2))
eq "10: those bytes are the body's first half" "$(sha_of "$TMP/wt2")" \
	"$(head -c $((MIB1 / 2)) "$TMP/w1" | sha256sum | awk '{ print $1 }')"
eq "10: then a whole response again" "$(get wt3 "http://127.0.0.1:$P_WT/whole/x")" "200 $MIB1"
eq "10: byte-exact" "$(sha_of "$TMP/wt3")" "$SHA1"
stop_pid "$WTSWD"
eq "10: that sockwayd exited cleanly" "$STOP_RC" 0

# under_load LABEL FLIP: 8 keep-alive clients, each fetching a whole response, a small one
# and a whole one again on one connection, over and over (whole responses, small ones and
# splits interleaved on one worker of the sockwayd on $P_W), beside 2 clients killed
# mid-response in a loop, until the clients did 24 rounds in all; with FLIP=1 the kill switch
# flips 12 times meanwhile, each time once the clients did 4 more rounds in the state before
# and, in a state on, the kernel spliced. Counts of work, never a time: a busy machine only
# takes longer.
SMALL_LEN=$(stat -c %s "$TMP/s")
stress() {
	local id=$1 ok=0 bad=0 out
	rm -f "$TMP/st$id.bad"
	while [ ! -e "$TMP/load.stop" ]; do
		out=$(curl -s --max-time 60 -w '%{http_code} %{size_download} ' \
			-o "$TMP/st$id-a" "http://127.0.0.1:$P_W/whole/a" \
			-o "$TMP/st$id-b" "http://127.0.0.1:$P_W/small/b" \
			-o "$TMP/st$id-c" "http://127.0.0.1:$P_W/whole/c")
		if [ "$out" = "200 $MIB1 200 $SMALL_LEN 200 $MIB1 " ] &&
			[ "$(sha_of "$TMP/st$id-a")" = "$SHA1" ] && [ "$(sha_of "$TMP/st$id-c")" = "$SHA1" ]; then
			ok=$((ok + 1))
		else
			bad=$((bad + 1))
			echo "$out" >>"$TMP/st$id.bad"
		fi
		# Renamed into place, so that rounds_done never reads a file half written.
		echo $((ok + bad)) >"$TMP/st$id.n.new" && mv "$TMP/st$id.n.new" "$TMP/st$id.n"
	done
	echo "$ok $bad" >"$TMP/st$id.res"
}
# killer ID: a client that reads the head and up to 1 MiB of a whole response, stops, and is
# killed there, over and over.
killer() {
	local id=$1 p
	while [ ! -e "$TMP/load.stop" ]; do
		rm -f "$TMP/k$id.go.held"
		python3 tests/integration/hold_client.py "$P_W" /whole/k /dev/null "$TMP/k$id.go" \
			$((RANDOM * 32)) 2>/dev/null &
		p=$!
		wait_until "$WAIT_S" test -e "$TMP/k$id.go.held"
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
# rounds_done: the rounds the stress clients did so far, right or wrong.
rounds_done() {
	cat "$TMP"/st*.n 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'
}
# load_went_on ROUNDS SPLICED: the clients did ROUNDS rounds in all, and spliced_bytes is
# past SPLICED (-1: whatever it is).
load_went_on() {
	[ "$(rounds_done)" -ge "$1" ] && [ "$(stat_of spliced_bytes)" -gt "$2" ]
}
under_load() {
	local label=$1 flip=$2 i p o b sok=0 sbad=0 flips=0 spliced_on=0 spids=() sb0 n sb
	rm -f "$TMP/load.stop" "$TMP"/st*.n "$TMP"/st*.res
	sb0=$(stat_of spliced_bytes)
	for i in 1 2 3 4 5 6 7 8; do
		(echo "$BASHPID" >"$CG/cgroup.procs" && stress "$i") &
		spids+=($!)
		LIB_PIDS+=($!)
	done
	for i in 1 2; do
		(echo "$BASHPID" >"$CG/cgroup.procs" && killer "$i") &
		spids+=($!)
		LIB_PIDS+=($!)
	done
	while [ "$flip" = 1 ] && [ $flips -lt 12 ]; do
		n=$(rounds_done)
		sb=$(stat_of spliced_bytes)
		if [ $((flips % 2)) = 0 ]; then
			wait_until "$WAIT_S" load_went_on $((n + 4)) "$sb" && spliced_on=$((spliced_on + 1))
			"$SOCKWAY" accel off >/dev/null || fail "$label: accel off under load"
		else
			wait_until "$WAIT_S" load_went_on $((n + 4)) -1
			"$SOCKWAY" accel on >/dev/null || fail "$label: accel on under load"
		fi
		flips=$((flips + 1))
	done
	wait_until "$WAIT_S" load_went_on 24 -1
	touch "$TMP/load.stop"
	for p in "${spids[@]}"; do
		wait "$p"
	done
	for i in 1 2 3 4 5 6 7 8; do
		read -r o b <"$TMP/st$i.res" || { o=0; b=1; }
		sok=$((sok + o)) sbad=$((sbad + b))
	done
	echo "# $label: $sok rounds of 3 responses right, $sbad wrong, $(($(stat_of spliced_bytes) - sb0)) bytes spliced"
	[ "$sbad" = 0 ] || echo "# $label: wrong rounds (status size x3): $(cat "$TMP"/st*.bad | head -c 300)"
	eq "$label: every response right (status, size, bytes)" "$sbad" 0
	ge "$label: and there were 24 rounds at least" "$sok" 24
	if [ "$flip" = 1 ]; then
		eq "$label: and the kernel spliced in each of the 6 periods the switch was on" \
			"$spliced_on" 6
	else
		# A share of the rounds done, not of a time: two whole responses of 1 MiB each.
		ge "$label: and spliced half of the whole responses at least" \
			$(($(stat_of spliced_bytes) - sb0)) $((sok * MIB1))
	fi
}
under_load "10: under load" 0

# Clients that read the head and (i - 1) x 200 KiB of a response, stop, and are killed there.
for i in 1 2 3 4 5; do
	rm -f "$TMP/wgone.go.held"
	SPAWN_CGROUP=$CG spawn wgone python3 tests/integration/hold_client.py "$P_W" /whole/x \
		/dev/null "$TMP/wgone.go" $(((i - 1) * 204800))
	wait_until "$WAIT_S" test -e "$TMP/wgone.go.held" || fail "10: client $i read $((i - 1)) x 200 KiB"
	stop_pid "$SPAWNED" KILL
done
eq "10: sockwayd is alive after five clients killed mid-response" "$(kill -0 "$WSWD" 2>/dev/null && echo yes)" yes
check "10: accel off" "$SOCKWAY" accel off
sb0=$(stat_of spliced_bytes)
eq "10: with accel off, a download" "$(get woff "http://127.0.0.1:$P_W/whole/x")" "200 $MIB1"
eq "10: byte-exact" "$(sha_of "$TMP/woff")" "$SHA1"
eq "10: and nothing spliced" "$(stat_of spliced_bytes)" "$sb0"
check "10: accel on" "$SOCKWAY" accel on
stop_pid "$WSWD"
eq "10: sockwayd exited cleanly" "$STOP_RC" 0

# --- 12. small whole responses: passed on by the kernel, nobody woken ----------------------------
# A response that comes whole in one send (most small ones) goes to the client in that send,
# last byte included (DONE): nothing reaches sockwayd's socket, so sockwayd ends the exchange
# when the client speaks again or closes, or at its next tick (100 ms); the latency it counts
# is the kernel's time of passing it on.
SPAWN_CGROUP=$CG spawn sm python3 tests/integration/drip_backend.py "$P_SM" 1000 0
DRIP_SLOW_MS=20 SPAWN_CGROUP=$CG spawn sms python3 tests/integration/drip_backend.py "$P_SMS" 1000 0
for b in sm sms; do
	wait_until "$WAIT_S" grep -q ready "$TMP/$b.log" || fail "$b backend did not start" "$(cat "$TMP/$b.log")"
done
check "backend sm" "$SOCKWAY" backend create sm "127.0.0.1:$P_SM"
check "endpoint /sm" "$SOCKWAY" endpoint create sm --route /sm --backend sm
check "backend sms" "$SOCKWAY" backend create sms "127.0.0.1:$P_SMS"
check "endpoint /sms" "$SOCKWAY" endpoint create sms --route /sms --backend sms
# (A drain of 30 s: stopping it with a quiet client, at the end, must not wait it out.
# Kernel routing off: these are the responses that sockwayd arms itself, for requests it
# forwarded; test_kroute.sh covers those the kernel routes.)
start_sockwayd "$P_S12" "$P_S12_ADMIN" --workers 1 --drain 30000 --lend 0
S12=$SWD_PID
# ka ARGS...: tests/integration/ka_client.py on sockwayd $P_S12, in the accelerated cgroup.
ka() {
	(SPAWN_CGROUP=$CG lib_exec python3 tests/integration/ka_client.py "$P_S12" "$@")
}
sm_counters() {
	"$SOCKWAY" -j stats sm | jq -c '.[0].counters | [.requests, .status."2xx", .bytes_to_client]'
}
sm_counted() {
	[ "$(sm_counters)" = "$1" ]
}
# kmetric NAME: sockway_kernel_responses_NAME from its /metrics (total: passed on whole;
# tick_total: of them, ended at the tick).
kmetric() {
	curl -s "http://127.0.0.1:$P_S12_ADMIN/metrics" | awk -v m="sockway_kernel_responses_$1" '$1 == m { print $2 }'
}
eq "12: a small response (1000 bytes)" "$(get smb "http://127.0.0.1:$P_S12/sm/x")" "200 1000"
eq "12: byte-exact" "$(sha_of "$TMP/smb")" "$(head -1 "$TMP/sm.log")"
printf 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: application/octet-stream\r\n\r\n' >"$TMP/smhead"
cat "$TMP/smhead" "$TMP/smb" >"$TMP/smresp"
SM_LEN=$(stat -c %s "$TMP/smresp")
for i in $(seq 20); do cat "$TMP/smresp"; done >"$TMP/sm20.want"

sb0=$(stat_of spliced_bytes)
k0=$(kmetric total)
out=$(KA_OUT=$TMP/sm20 ka /sm/x 20 seq)
eq "12: 20 small GETs on one connection, one at a time: all whole" "$(cut -d' ' -f1,2 <<<"$out")" "20 $((20 * SM_LEN))"
check "12: each exactly as the backend sent it, head included" cmp "$TMP/sm20" "$TMP/sm20.want"
eq "12: the kernel passed every byte of them on (spliced_bytes)" \
	$(($(stat_of spliced_bytes) - sb0)) $((20 * SM_LEN))
wait_until "$WAIT_S" sm_counted "[21,21,$((21 * SM_LEN))]"
eq "12: sockwayd counted 21 requests, 21 2xx, every byte" "$(sm_counters)" "[21,21,$((21 * SM_LEN))]"
eq "12: and 20 responses passed on whole (sockway_kernel_responses_total)" $(($(kmetric total) - k0)) 20

# Clients that keep their connections and stay quiet: the tick ends their exchanges; and
# the latency counted is the kernel's, not the tick's (no more than the clients' own). They
# hold their connections until the test has seen that.
lat0=$("$SOCKWAY" -j stats sm | jq -r '.[0].counters.latency_sum_us')
t0=$(kmetric tick_total)
holds=()
for i in 1 2 3 4 5; do
	KA_HOLD_FILE=$TMP/quiet.go SPAWN_CGROUP=$CG \
		spawn "hold$i" python3 tests/integration/ka_client.py "$P_S12" /sm/h 1 seq 300000
	holds+=("$SPAWNED")
done
want="[26,26,$((26 * SM_LEN))]"
wait_until "$WAIT_S" sm_counted "$want"
eq "12: 5 quiet clients: counted while they hold their connections" "$(sm_counters)" "$want"
eq "12: (all 5 still there)" "$(for p in "${holds[@]}"; do kill -0 "$p" 2>/dev/null && echo y; done | wc -l)" 5
eq "12: ended at the tick (sockway_kernel_responses_tick_total)" $(($(kmetric tick_total) - t0)) 5
touch "$TMP/quiet.go"
wait "${holds[@]}"
cms=0
for i in 1 2 3 4 5; do
	eq "12: quiet client $i: its response whole, the connection open" "$(cut -d' ' -f1,2,4 "$TMP/hold$i.log")" "1 $SM_LEN open"
	cms=$((cms + $(cut -d' ' -f3 "$TMP/hold$i.log") + 1))
done
lat=$(($("$SOCKWAY" -j stats sm | jq -r '.[0].counters.latency_sum_us') - lat0))
echo "# 12: latency of the 5 quiet clients' requests: $lat us in all; the clients measured < $cms ms"
le "12: no more than the clients measured themselves (the kernel's time, not the tick's)" "$lat" $((cms * 1000))

# Pipelined requests: the response before a waiting request is not passed on silently (that
# request would wait for the tick). All 20 at once; and two at a time, 2 ms apart, from a
# backend that takes 20 ms to answer, so that the second comes while the first's response is
# armed: sockwayd takes the arming back, and arms no more whole responses for that client.
t0=$(kmetric tick_total)
out=$(ka /sm/p 20 pipe)
echo "# 12: pipelined: $out"
eq "12: 20 pipelined requests in one send: all whole" "$(cut -d' ' -f1,2 <<<"$out")" "20 $((20 * SM_LEN))"
eq "12: none waited for the tick" $(($(kmetric tick_total) - t0)) 0
t0=$(kmetric tick_total)
out=$(ka /sms/silent 16 pairs)
echo "# 12: in pairs, 20 ms backend: $out"
eq "12: 8 pairs of requests from a backend taking 20 ms: all whole" "$(cut -d' ' -f1,2 <<<"$out")" "16 $((16 * SM_LEN))"
eq "12: none waited for the tick" $(($(kmetric tick_total) - t0)) 0
# A client that half-closes after its request, while the response is armed: the arming is
# taken back, so its response and close do not wait for the tick either (sockwayd's head,
# which adds "Connection: close", 19 bytes).
t0=$(kmetric tick_total)
for i in 1 2 3 4 5; do
	eq "12: half-close $i: the response whole, then the close" \
		"$(ka /sms/silent 1 half 60000 | cut -d' ' -f1,2,4)" "1 $((SM_LEN + 19)) closed"
done
eq "12: none of them waited for the tick" $(($(kmetric tick_total) - t0)) 0

# A backend that closes after each response (keep-alive all the same), and one that sends
# bytes past it: the client gets whole responses and never those bytes. (The close races
# the client's next request: sockops marks the connection when the FIN arrives, but a
# request that comes first takes the connection, meets the close and is retried: an
# upstream error.)
e0=$("$SOCKWAY" -j stats sm | jq -r '[.[0].counters.errors[]] | add')
out=$(ka /sm/close 20 seq)
echo "# 12: backend closing after each response: $(($("$SOCKWAY" -j stats sm | jq -r '[.[0].counters.errors[]] | add') - e0)) upstream errors in 20"
eq "12: a backend closing after each response: 20 whole on one client connection" "$(cut -d' ' -f1,2 <<<"$out")" "20 $((20 * SM_LEN))"
# The client holds its connection until the backend sent those bytes and sockwayd closed
# that upstream connection over them: by then they are wherever they went.
extra_closed() {
	[ "$(grep -c '^extra: closed' "$TMP/sm.log")" -ge "$1" ]
}
x0=$(grep -c '^extra: closed' "$TMP/sm.log")
KA_HOLD_FILE=$TMP/extra.go ka /sm/extra 1 seq 300000 >"$TMP/extra.out" &
extra=$!
LIB_PIDS+=("$extra")
wait_until "$WAIT_S" extra_closed $((x0 + 1)) || fail "12: sockwayd closed the backend that sent bytes past the response"
touch "$TMP/extra.go"
wait "$extra"
out=$(cat "$TMP/extra.out")
eq "12: a backend sending bytes past the response: the response whole" "$(cut -d' ' -f1,2 <<<"$out")" "1 $SM_LEN"
check "12: and never those bytes (the connection is kept or closed)" grep -qE ' (open|closed)$' <<<"$out"
eq "12: and serves the next" "$(ka /sm/x 2 seq | cut -d' ' -f1,2)" "2 $((2 * SM_LEN))"

# A client outside the accelerated cgroups, and accel off: the response crosses sockwayd.
sb0=$(stat_of spliced_bytes)
out=$(python3 tests/integration/ka_client.py "$P_S12" /sm/x 5 seq)
eq "12: a client not accelerated: 5 whole" "$(cut -d' ' -f1,2 <<<"$out")" "5 $((5 * SM_LEN))"
check "12: accel off" "$SOCKWAY" accel off
out=$(ka /sm/x 5 seq)
eq "12: with accel off: 5 whole" "$(cut -d' ' -f1,2 <<<"$out")" "5 $((5 * SM_LEN))"
check "12: accel on" "$SOCKWAY" accel on
eq "12: and nothing spliced for either" "$(stat_of spliced_bytes)" "$sb0"

# Stopping while a quiet client holds a connection after such a response: it is closed, and
# sockwayd exits promptly.
n=$("$SOCKWAY" -j stats sm | jq -r '.[0].counters.requests')
SPAWN_CGROUP=$CG spawn hold python3 tests/integration/ka_client.py "$P_S12" /sm/h 1 seq 300000
hold=$SPAWNED
wait_until "$WAIT_S" sm_counted "[$((n + 1)),$((n + 1)),$(((n + 1) * SM_LEN))]"
t0=$(date +%s%N)
stop_pid "$S12"
eq "12: sockwayd stopped with a quiet client after such a response: exits cleanly" "$STOP_RC" 0
# Against waiting out the 30 s drain (or the client's 300 s), not a measure of the machine.
le "12: well within its 30 s drain (10 s)" $((($(date +%s%N) - t0) / 1000000)) 10000
wait "$hold"
eq "12: the client got its response, then the close" "$(cut -d' ' -f1,4 "$TMP/hold.log")" "1 closed"

# --- 7. --no-splice -----------------------------------------------------------------------------
start_sockwayd "$P_SWD2" "$P_SWD2_ADMIN" --workers 1 --no-splice
sb0=$(stat_of spliced_bytes)
rb0=$(stat_of redirected_bytes)
eq "7: --no-splice: a download" "$(get ns "http://127.0.0.1:$P_SWD2/drip/x")" "200 $MIB8"
eq "7: byte-exact" "$(sha_of "$TMP/ns")" "$SHA"
eq "7: nothing spliced" "$(stat_of spliced_bytes)" "$sb0"
ge "7: the body still crossed sockwayd's sockets through sk_msg (2 hops)" \
	$(($(stat_of redirected_bytes) - rb0)) $((2 * MIB8))
stop_pid "$SWD_PID"

# --- 8. a body that takes longer than the response timeout, flowing all along ----------------
# The timeout is on silence: sockwayd sees no byte of a spliced body, so its timer asks the
# conns entry whether the kernel moved some since. 2 MiB in 64 KiB pieces 100 ms apart
# (3.2 s; the backend waits 500 ms after the head) against a 2 s timeout: sleeps only grow
# on a busy machine, so the body takes longer than the timeout, and each silence stays far
# below it.
SPAWN_CGROUP=$CG spawn slowb python3 tests/integration/drip_backend.py "$P_SLOWB" 2097152 65536 100
wait_until "$WAIT_S" grep -q ready "$TMP/slowb.log" || fail "slow backend did not start" "$(cat "$TMP/slowb.log")"
check "backend slowb" "$SOCKWAY" backend create slowb "127.0.0.1:$P_SLOWB"
check "endpoint /slowb" "$SOCKWAY" endpoint create slowb --route /slowb --backend slowb
start_sockwayd "$P_SWD3" "$P_SWD3_ADMIN" --workers 1 --response-timeout 2000
sb0=$(stat_of spliced_bytes)
eq "8: 3.7 s of head and body through a 2 s response timeout" \
	"$(get slowb "http://127.0.0.1:$P_SWD3/slowb/x")" "200 2097152"
eq "8: byte-exact" "$(sha_of "$TMP/slowb")" "$(head -1 "$TMP/slowb.log")"
ge "8: spliced" $(($(stat_of spliced_bytes) - sb0)) 1048576
stop_pid "$SWD_PID"

stop_pid "$SWD"
eq "sockwayd exited cleanly" "$STOP_RC" 0

# --- 9. what sockwayd leaves behind -----------------------------------------------------------
# Its cgroup is <cgroup2>/<pin dir name>; its conns entries have its pid as owner.
SWD_CG=$CGROUP2/$(basename "$SOCKWAY_PIN_ROOT")
listed() {
	"$SOCKWAY" -j accel list | jq -r --arg p "$1" '[.cgroups[] | select(.path == $p)] | length'
}
tags() {
	bpftool -j map dump pinned "$SOCKWAY_PIN_ROOT/conn_tags" |
		jq '[.[].formatted.value.tag[] | select(. != 0)] | length'
}
eq "9: after sockwayd exited, its cgroup is gone" "$([ -d "$SWD_CG" ] && echo present || echo gone)" gone
eq "9: and off the accelerated list" "$(listed "$SWD_CG")" 0
eq "9: and every conns entry is free" "$(tags)" 0
start_sockwayd "$P_SWD" "$P_SWD_ADMIN" --workers 2
# The client runs until SIGTERM (the duration is only a cap).
SPAWN_CGROUP=$CG spawn held "$SWCLIENT" --url "http://127.0.0.1:$P_SWD/small/x" --connections 50 \
	--duration-ms 600000
held=$SPAWNED
tags_at_least() {
	[ "$(tags)" -ge "$1" ]
}
# One per client connection, and one per upstream connection (as many as requests were in
# flight at once).
wait_until "$WAIT_S" tags_at_least 51
ge "9: 50 keep-alive clients: sockwayd holds > 50 conns entries (clients and upstreams)" "$(tags)" 51
stop_pid "$SWD_PID" KILL
stop_pid "$held"
ge "9: killed, sockwayd leaves them" "$(tags)" 51
eq "9: and its cgroup stays listed (nobody took it off)" "$(listed "$SWD_CG")" 1
start_sockwayd "$P_SWD" "$P_SWD_ADMIN" --workers 2
le "9: the next sockwayd frees the dead one's entries at start" "$(tags)" 4
eq "9: and serves" "$(get n "http://127.0.0.1:$P_SWD/small/x" | cut -d' ' -f1)" 200
stop_pid "$SWD_PID"
eq "9: then exits, and its cgroup is off the list" "$(listed "$SWD_CG")" 0
# A sockwayd that cannot start (its port is taken) leaves no cgroup behind either. The
# squatter binds over the TIME-WAIT sockets that the killed sockwayd's connections left on
# the port (SO_REUSEADDR), as sockwayd itself does; only its listener is in the way.
SPAWN_CGROUP=$CG spawn squat python3 -c "import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $P_SWD)); s.listen(); time.sleep(600)"
squat=$SPAWNED
listening() {
	ss -Hltn "sport = :$1" | grep -q LISTEN
}
wait_until "$WAIT_S" listening "$P_SWD" || fail "9: a squatter listens on $P_SWD" "$(cat "$TMP/squat.log")"
(lib_exec timeout 60 "$SOCKWAYD" --listen "127.0.0.1:$P_SWD" --admin "127.0.0.1:$P_SWD_ADMIN" --workers 1 \
	>"$TMP/busy.log" 2>&1)
eq "9: sockwayd on a taken port exits 1" "$?" 1
eq "9: and leaves no cgroup" "$([ -d "$SWD_CG" ] && echo present || echo gone)" gone
eq "9: nor a list entry" "$(listed "$SWD_CG")" 0
stop_pid "$squat" KILL
# A listed cgroup removed by somebody else: "accel on" still attaches the others and drops
# it; "accel del" finds it by the path it was added under.
cgroup_new gone1
G1=$CGROUP
cgroup_new gone2
G2=$CGROUP
check "9: accel add two more cgroups" "$SOCKWAY" accel add "$G1"
check "9: (the second)" "$SOCKWAY" accel add "$G2"
rmdir "$G1" "$G2"
check "9: accel del of a removed cgroup" "$SOCKWAY" accel del "$G1"
check "9: accel off" "$SOCKWAY" accel off
check "9: accel on with a removed cgroup listed" "$SOCKWAY" accel on
eq "9: which left the list" "$(listed "$G2")" 0
eq "9: while the test's cgroup is attached again" \
	"$(bpftool -j cgroup show "$CG" | jq '[.[] | select(.name == "sock_track")] | length')" 1

# Every connection of this test has closed: sockops took each socket's address out of
# sock_addr at TCP_CLOSE (an LRU that filled up would evict live sockets instead).
entries() {
	bpftool -j map dump pinned "$SOCKWAY_PIN_ROOT/$1" | jq length
}
sock_addr_drained() {
	[ "$(entries sock_addr)" -le 4 ]
}
wait_until "$WAIT_S" sock_addr_drained
le "sock_addr is empty again once the connections closed (entries)" "$(entries sock_addr)" 4

# --- 13. a sockwayd killed mid-body: a new local connection from the same port ------------------
# Two sockwayds share the listener (a restart's bridge); the one serving a local client is
# killed while the kernel splices a body into the client and the backend has paused. The
# client resets and connects again from the same address and port, to the other one: the
# same tuple, so the same key in sock_hash, another socket. When the backend goes on, the
# dead sockwayd's arming must not move the rest of that body into the new connection (the
# kernel checks the cookie of sockwayd's end, which died with it): the backend's sends fail
# instead, and the new connection's first bytes are the answer to its own request.
DRIP_HOLD_AT=$MIB1 DRIP_HOLD_FILE=$TMP/rh.hold SPAWN_CGROUP=$CG \
	spawn rh python3 tests/integration/drip_backend.py "$P_RH" $MIB8 32768 2
wait_until "$WAIT_S" grep -q ready "$TMP/rh.log" || fail "13: backend rh did not start"
check "13: backend rh" "$SOCKWAY" backend create rh "127.0.0.1:$P_RH"
check "13: endpoint /rh" "$SOCKWAY" endpoint create rh --route /rh --backend rh
# No lending: the body's splice is the one sockwayd arms (kernel routing arms its own the
# same way, checked by the same cookie).
start_sockwayd "$P_RA" "$P_RA_ADMIN" --workers 1 --lend 0
RA_PID=$SWD_PID
s0=$(stat_of spliced_bytes)
SPAWN_CGROUP=$CG spawn reuse python3 tests/integration/reuse_client.py 127.0.0.1 "$P_RA" \
	127.0.0.1 "$P_RSRC" "$TMP/step" "$TMP/rh.hold" /rh /small/x
reuse=$SPAWNED
wait_until "$WAIT_S" test -e "$TMP/step.read" || fail "13: the backend paused mid-body"
# The kernel was moving that body when sockwayd died: else this checks nothing.
ge "13: the kernel spliced the body before the pause" $(($(stat_of spliced_bytes) - s0)) 262144
start_sockwayd "$P_RA" "$P_RB_ADMIN" --workers 1 --lend 0
RB_PID=$SWD_PID
stop_pid "$RA_PID" KILL
touch "$TMP/step.1"
wait_until "$WAIT_S" test -e "$TMP/step.2" || fail "13: the client connected again"
touch "$TMP/rh.hold"
wait_until "$WAIT_S" grep -q Error "$TMP/rh.log" ||
	fail "13: the backend's sends to the dead sockwayd failed" "$(tail -n 3 "$TMP/rh.log")"
touch "$TMP/step.3"
wait "$reuse"
eq "13: the new connection's first bytes answer its own request" \
	"$(tail -n 1 "$TMP/reuse.log")" 'HTTP/1.1 200'
stop_pid "$RB_PID"

# --- 11. the kill switch flipped under whole-response load ---------------------------------------
# Last, because sockets that close while the switch is off leave their address in sock_addr
# (sockops is detached, no TCP_CLOSE callback): harmless, as nothing is redirected to a
# socket that is not in sock_hash, and the LRU evicts them; but it would fail the check above.
start_sockwayd "$P_W" "$P_W_ADMIN" --workers 1 --lend 0
WSWD=$SWD_PID
get warm11 "http://127.0.0.1:$P_W/whole/x" >/dev/null
under_load "11: kill switch flipping 12 times" 1
eq "11: the kill switch ends on" "$("$SOCKWAY" -j accel list | jq -r .on)" true
eq "11: sockwayd is alive" "$(kill -0 "$WSWD" 2>/dev/null && echo yes)" yes
stop_pid "$WSWD"
eq "11: sockwayd exited cleanly" "$STOP_RC" 0

eq "no new kernel warnings in dmesg" "$(kernel_warnings)" "$warn0"
finish
