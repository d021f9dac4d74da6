#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Kernel routing: sk_msg decides a plain request of a client in an accelerated cgroup and
# sends it into an upstream connection that sockwayd lent to the kernel, and the response
# comes back through the whole-response splice, with sockwayd never woken.
#   1. requests the kernel must route are routed by it, counted in shard 0 of their cells
#      (read with bpftool), and summed by "sockway stats";
#   2. each kind of request it must not take goes to sockwayd, counted under its reason;
#   3. a backend receives byte-identical heads from the kernel and from sockwayd --no-accel;
#   4. parity on 10,000 requests: keyed ones reach the same backend on both paths, random
#      splits stay within their bounds;
#   5. a commit storm: no request is routed by a mix of two policies;
#   6. pipelining, half-close, clients killed mid-request, backends that close after each
#      response, and the kill switch flipped every 250 ms, all under load: no failed
#      request, every response in order and byte-exact;
#   7. a drain leaves no connection lent and no lender id held;
#   8. sockwayds side by side (a rolling restart), one killed: each routes over its own
#      lender ids, and the next one started takes the dead one's.
# The client (kr_client.py) reads the kernel's counters around each request, and warms a
# connection until one of its requests was routed by the kernel, so each check is about one
# request on a connection known to be the kernel's: none assumes a rate.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

KR=tests/integration/kr_client.py
B1=$(port 1)
B2=$(port 2)
B3=$(port 3)
REC=$(port 4)
BCLOSE=$(port 5)
P=$(port 10)
P_ADMIN=$(port 11)
PN=$(port 12)
PN_ADMIN=$(port 13)
BK=$(port 6)
PT=$(port 14)
PT_ADMIN=$(port 15)

check "sockway load" "$SOCKWAY" load
cgroup_new kr || { fail "cannot create a cgroup under $CGROUP2"; finish; exit 1; }
CG=$CGROUP
check "sockway accel add $CG" "$SOCKWAY" accel add "$CG"
export SPAWN_CGROUP=$CG

start_backend b1 "$B1"
start_backend b2 "$B2"
start_backend b3 "$B3"
start_backend bclose "$BCLOSE" --close
spawn bk python3 "$KR" "$BK" backend bk
wait_until "$WAIT_S" grep -q ready "$TMP/bk.log" || fail "the scripted backend did not start"
mkdir -p "$TMP/rec"
spawn rec python3 tests/integration/record_backend.py rec "$REC" "$TMP/rec"
wait_until "$WAIT_S" grep -q ready "$TMP/rec.log" || fail "record_backend did not start"

cat >"$TMP/policy.json" <<EOF
{
  "version": 1,
  "backends": {
    "b1": { "replicas": ["127.0.0.1:$B1"] },
    "b2": { "replicas": ["127.0.0.1:$B2"] },
    "b3": { "replicas": ["127.0.0.1:$B3"] },
    "bclose": { "replicas": ["127.0.0.1:$BCLOSE"] },
    "rec": { "replicas": ["127.0.0.1:$REC"] },
    "bk": { "replicas": ["127.0.0.1:$BK"] }
  },
  "endpoints": {
    "one": { "route": "/one", "traffic": { "b1": 1 } },
    "split": { "route": "/split", "traffic": { "b1": 0.5, "b2": 0.3, "b3": 0.2 } },
    "shadowed": { "route": "/shadowed", "traffic": { "b1": 1 }, "shadows": { "b2": 1 } },
    "closing": { "route": "/closing", "traffic": { "bclose": 1 } },
    "rec": { "route": "/rec", "traffic": { "rec": 1 } },
    "kb": { "route": "/kb", "traffic": { "bk": 1 } }
  }
}
EOF
check "apply the test's policy" "$SOCKWAY" apply -f "$TMP/policy.json"
start_sockwayd "$P" "$P_ADMIN" --workers 1
SWD_K=$SWD_PID
SWD_K_LOG=$SWD_LOG
SPAWN_CGROUP='' start_sockwayd "$PN" "$PN_ADMIN" --workers 1 --no-accel

# kr ARGS...: kr_client.py against the kernel-routing sockwayd, in the accelerated cgroup.
kr() {
	(lib_exec python3 "$KR" "$P" "$@")
}

# --- 1. routed by the kernel, and counted there ---------------------------------------------
printf 'GET /one/a HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/get"
out=$(kr probe /one/warm "$TMP/get")
eq "1: a plain GET on a warm connection: routed by the kernel" "$(jq -c '[.krouted, .status]' <<<"$out")" "[1,[200]]"
eq "1: ... and answered by b1" "$(jq -r '.bodies[0]' <<<"$out")" "b1"
krouted0=$(stat_of krouted)
answered0=$(stat_of kanswered)
SWD_ADMIN=$P_ADMIN
adopted0=$(metric sockway_kroute_adopted_total)
out=$(kr stream 200 /one/s seq /one/warm)
eq "1: 200 GETs in turn on a warm connection: all good, all routed by the kernel" "$out" "OK 200 krouted 200"
eq "1: ... and answered as many whole" "$(($(stat_of kanswered) - answered0))" "$(($(stat_of krouted) - krouted0))"
eq "1: ... with none taken over by sockwayd" "$(($(metric sockway_kroute_adopted_total) - adopted0))" 0

# Shard 0 of the cell (one, b1) is the kernel's: read straight from the pinned map.
cell_id=$("$SOCKWAY" -j stats | jq -r '.[] | select(.endpoint == "one" and .backend == "b1") | .cell')
shard0() {
	bpftool -j map lookup pinned "$SOCKWAY_PIN_ROOT/counters" key $((cell_id & 255)) $(((cell_id >> 8) & 255)) 0 0 |
		jq -r ".formatted.value.shard[0].$1 // .value.shard[0].$1"
}
k_req=$(shard0 requests)
ge "1: bpftool map lookup counters: shard 0 of (one, b1) counts the kernel's requests" "$k_req" 200
eq "1: ... and their 2xx" "$(shard0 'status[1]')" "$k_req"
ge "1: ... and a latency histogram" "$(bpftool -j map lookup pinned "$SOCKWAY_PIN_ROOT/counters" key $((cell_id & 255)) $(((cell_id >> 8) & 255)) 0 0 | jq '[.formatted.value.shard[0].latency[]] | add')" "$k_req"
ge "1: sockway stats sums the kernel's shard with sockwayd's" "$(cell one b1 primary .requests)" "$((k_req + 1))"

# --- 2. what the kernel leaves to sockwayd ---------------------------------------------------
# case NAME REASON RESPONSES [HEAD]: the request in $TMP/NAME is not routed by the kernel,
# is counted as a miss for REASON, and is answered 200 (each of RESPONSES).
case_miss() {
	local name=$1 reason=$2 n=${3:-1} out want
	out=$(kr probe /one/warm "$TMP/$name" "$n" ${4:-})
	want=$(printf '200,%.0s' $(seq 1 "$n"))
	eq "2: $name: left to sockwayd ($reason), answered" \
		"$(jq -r "[.krouted, .kmiss.$reason, (.status | map(tostring) | join(\",\"))] | join(\" \")" <<<"$out")" \
		"0 1 ${want%,}"
}
printf 'POST /one/c HTTP/1.1\r\nHost: kr.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' >"$TMP/chunked"
case_miss chunked head
printf 'POST /one/e HTTP/1.1\r\nHost: kr.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello' >"$TMP/expect"
case_miss expect head
printf 'HEAD /one/h HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/head"
case_miss head head 1 HEAD
printf 'GET /one/p1 HTTP/1.1\r\nHost: kr.test\r\n\r\nGET /one/p2 HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/pipelined"
case_miss pipelined head 2
{
	printf 'POST /one/big HTTP/1.1\r\nHost: kr.test\r\nContent-Length: 70000\r\n\r\n'
	head -c 70000 /dev/zero
} >"$TMP/bigbody"
case_miss bigbody head
{
	printf 'GET /one/long HTTP/1.1\r\nHost: kr.test\r\n'
	printf 'X-Pad: %04100d\r\n' 0
	printf '\r\n'
} >"$TMP/longhead"
case_miss longhead head
printf 'GET /one/u HTTP/1.1\r\nHost: kr.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n' >"$TMP/upgrade"
case_miss upgrade head
printf 'GET /one/old HTTP/1.0\r\nHost: kr.test\r\nConnection: keep-alive\r\n\r\n' >"$TMP/http10"
case_miss http10 head
printf 'GET /one/x HTTP/1.1\r\nHost: kr.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n' >"$TMP/xff"
case_miss xff head
printf 'GET /one/../one/dots HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/dots"
case_miss dots route
printf 'GET /nowhere HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/noroute"
out=$(kr probe /one/warm "$TMP/noroute")
eq "2: noroute: left to sockwayd (route), answered 404" "$(jq -c '[.krouted, .kmiss.route, .status]' <<<"$out")" "[0,1,[404]]"
printf 'GET /shadowed/s HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/shadow"
b2_shadow0=$(backend_count "$B2" shadow_requests)
out=$(kr probe /one/warm "$TMP/shadow")
eq "2: a shadow sample: left to sockwayd (shadow), answered by b1" \
	"$(jq -c '[.krouted, .kmiss.shadow, .status, .bodies]' <<<"$out")" '[0,1,[200],["b1\n"]]'
wait_until "$WAIT_S" test "$(backend_count "$B2" shadow_requests)" -gt "$b2_shadow0" &&
	pass "2: ... and mirrored to b2 by sockwayd" || fail "2: the shadow copy never reached b2"
# A body sent after its head is the request's body, never a request of the kernel's, even
# right after a response the kernel passed on for sockwayd (which gives the client back to
# the kernel when it is idle, and must take it again before it reads the head).
out=$(kr bodysplit /one)
eq "2: a body that reads as a request, sent after its head: the backend gets it as the body" \
	"$(jq -c '[.status, .seen, .body == ["0", (.len | tostring)], .krouted, .extra]' <<<"$out")" \
	'[[200,200],["/one/r1","/one/r2"],true,0,0]'
printf 'POST /one/body HTTP/1.1\r\nHost: kr.test\r\nContent-Length: 5\r\n\r\nhello' >"$TMP/post"
out=$(kr probe /one/warm "$TMP/post")
eq "2: control: a POST with a 5-byte body is the kernel's" "$(jq -c '[.krouted, .status]' <<<"$out")" "[1,[200]]"
# Responses and failures of requests the kernel routed, on a sockwayd with a 1 s response
# timeout: sockwayd takes the exchange over and answers as it would have.
start_sockwayd "$PT" "$PT_ADMIN" --workers 1 --response-timeout 1000
PT_PID=$SWD_PID
# kt ARGS...: kr_client.py against that sockwayd.
kt() {
	(lib_exec python3 "$KR" "$PT" "$@")
}
printf 'GET /kb/chunked HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/kb-chunked"
out=$(kt probe /kb/warm "$TMP/kb-chunked")
eq "2: a chunked response to a routed request: sockwayd re-frames it" \
	"$(jq -c '[.krouted, .status, .bodies]' <<<"$out")" '[1,[200],["bk\n"]]'
t0=$(cell kb bk primary .errors.timeout)
printf 'GET /kb/slow HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/kb-slow"
out=$(kt probe /kb/warm "$TMP/kb-slow")
eq "2: a routed request whose backend does not answer in time: 504 from sockwayd" \
	"$(jq -c '[.krouted, .status]' <<<"$out")" '[1,[504]]'
eq "2: ... counted as a timeout" "$(cell kb bk primary .errors.timeout)" $((t0 + 1))
r0=$(cell kb bk primary .errors.reset)
printf 'GET /kb/reset HTTP/1.1\r\nHost: kr.test\r\n\r\n' >"$TMP/kb-reset"
out=$(kt probe /kb/warm "$TMP/kb-reset")
eq "2: a routed request whose backend closes without an answer: 502 from sockwayd (not retried)" \
	"$(jq -c '[.krouted, .status]' <<<"$out")" '[1,[502]]'
eq "2: ... counted as a reset" "$(cell kb bk primary .errors.reset)" $((r0 + 1))
# (A new connection right after such a failure can take a few seconds before the kernel
# routes its requests: they are answered by sockwayd meanwhile. Hence a wait, not a try.)
kb_routes() {
	[ "$(kt stream 20 /kb/after seq /kb/warm)" = "OK 20 krouted 20" ]
}
wait_until "$WAIT_S" kb_routes && pass "2: the backend's other lent connections go on serving routed requests" ||
	fail "2: after the failures, a warm connection to the same backend never got 20 requests routed by the kernel"

check "2: sockway accel off" "$SOCKWAY" accel off
out=$(kr probe - "$TMP/get")
eq "2: kill switch off: nothing routed by the kernel" "$(jq -c '[.krouted, .status]' <<<"$out")" "[0,[200]]"
check "2: sockway accel on" "$SOCKWAY" accel on

# --- 3. the same heads from both paths ----------------------------------------------------
i=0
mkreq() {
	i=$((i + 1))
	printf '%b' "$1" >"$TMP/heads-$(printf %03d $i)"
}
mkreq 'GET /rec/a HTTP/1.1\r\nHost: kr.test\r\n\r\n'
mkreq 'GET /rec/b?x=1&y=%41 HTTP/1.1\r\nHost: kr.test:8080\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n'
mkreq 'GET /rec/c HTTP/1.1\r\nHost: kr.test\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n'
mkreq 'POST /rec/d HTTP/1.1\r\nHost: kr.test\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world'
mkreq 'PUT /rec/e HTTP/1.1\r\nHost: kr.test\r\nContent-Length: 3\r\nX-SERVE-SHARD-KEY: u-1\r\n\r\nabc'
mkreq 'DELETE /rec/f HTTP/1.1\r\nHost: kr.test\r\nx-lower: v\r\nX-Empty: \r\n\r\n'
mkreq 'PATCH /rec/g HTTP/1.1\r\nHost: kr.test\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nz'
mkreq 'OPTIONS /rec/h HTTP/1.1\r\nHost: kr.test\r\nCookie: a=b; c=d\r\nX-Tabs: a\tb\r\n\r\n'
# The Host elsewhere than first (wrk's Lua, Java's HttpURLConnection): moved up, as sockwayd
# writes it, around a Connection line that goes.
mkreq 'GET /rec/i HTTP/1.1\r\nX-SERVE-SHARD-KEY: key-7\r\nHost: kr.test:8080\r\n\r\n'
mkreq 'POST /rec/j HTTP/1.1\r\nConnection: keep-alive\r\nContent-Length: 2\r\nUser-Agent: Java/17\r\nHost: kr.test\r\nAccept: */*\r\n\r\nhi'
mkreq 'GET /rec/k HTTP/1.1\r\nUser-Agent: t/1\r\nHost: kr.test\r\nConnection: keep-alive\r\nX-Last: 1\r\n\r\n'
mkreq 'GET /rec/l HTTP/1.1\r\nConnection: keep-alive\r\nHost: kr.test\r\n\r\n'
out=$(kr replay /rec/warm "$TMP"/heads-*)
eq "3: $i requests through the kernel: all routed by it and answered 200" \
	"$(jq -c '[.krouted, (.status | unique)]' <<<"$out")" "[$i,[200]]"
mkdir "$TMP/rec-k"
for f in "$TMP"/rec/rec-*.req; do
	if head -1 "$f" | grep -q '^GET /rec/warm '; then
		rm "$f"
	else
		mv "$f" "$TMP/rec-k/"
	fi
done
out=$( (lib_exec python3 "$KR" "$PN" replay - "$TMP"/heads-*))
eq "3: the same through sockwayd --no-accel: answered 200" "$(jq -c '[.krouted, (.status | unique)]' <<<"$out")" "[0,[200]]"
same=0
n=0
for f in $(ls "$TMP"/rec-k/ | sort -t- -k2 -n); do
	n=$((n + 1))
	g=$(ls "$TMP"/rec/ | sort -t- -k2 -n | sed -n "${n}p")
	if cmp -s "$TMP/rec-k/$f" "$TMP/rec/$g"; then
		same=$((same + 1))
	else
		diff <(cat -A "$TMP/rec-k/$f") <(cat -A "$TMP/rec/$g") | sed 's/^/# /'
	fi
done
eq "3: the backend received byte-identical requests from both paths" "$same/$n" "$i/$i"

# --- 4. parity on 10,000 requests -------------------------------------------------------------
out_k=$(kr keys 5000 user- X-SERVE-SHARD-KEY /split/k)
out_n=$( (lib_exec python3 "$KR" "$PN" keys 5000 user- X-SERVE-SHARD-KEY /split/k))
ge "4: 5,000 keyed requests: the kernel routed most of them" "$(jq .krouted <<<"$out_k")" 1
eq "4: every key reached the same backend through the kernel and through sockwayd" \
	"$(jq -n --argjson a "$out_k" --argjson b "$out_n" '[$a.backends | to_entries[] | select(.value != $b.backends[.key])] | length')" 0
out_k=$(kr keys 5000 '' X-Other /split/r)
ge "4: 5,000 random requests through the kernel: it routed some" "$(jq .krouted <<<"$out_k")" 1
for b in b1:0.5 b2:0.3 b3:0.2; do
	within "4: random split through the kernel, ${b%:*}" \
		"$(jq "[.backends[] | select(. == \"${b%:*}\")] | length" <<<"$out_k")" 5000 "${b#*:}"
done

# --- 5. a commit storm --------------------------------------------------------------------------
# Two policies that send /storm/x to b1 by different routes: in A the endpoint sa routes it
# and sa sends all to b1; in B the endpoint sb does, and sa sends all to b2. A request routed
# by A and picked by B (or the other way round) lands on b2: any b2 answer is a mix.
jq '.endpoints.sa = {route: "/storm/x", traffic: {b1: 1}} |
	.endpoints.sb = {route: "/storm/y", traffic: {b2: 1}}' "$TMP/policy.json" >"$TMP/storm-a.json"
jq '.endpoints.sa = {route: "/storm/y", traffic: {b2: 1}} |
	.endpoints.sb = {route: "/storm/x", traffic: {b1: 1}}' "$TMP/policy.json" >"$TMP/storm-b.json"
check "5: policy A" "$SOCKWAY" apply -f "$TMP/storm-a.json"
(
	n=0
	while [ ! -e "$TMP/storm.stop" ]; do
		"$SOCKWAY" apply -f "$TMP/storm-b.json" >/dev/null 2>>"$TMP/storm.err" && n=$((n + 1))
		"$SOCKWAY" apply -f "$TMP/storm-a.json" >/dev/null 2>>"$TMP/storm.err" && n=$((n + 1))
		echo "$n" >"$TMP/storm.n"
	done
) &
storm=$!
LIB_PIDS+=("$storm")
k0=$(stat_of krouted)
SPAWN_CGROUP=$CG spawn storm-client "$SWCLIENT" --url "http://127.0.0.1:$P/storm/x" \
	--connections 4 --duration-ms 600000 --timeout-ms 10000
storm_client=$SPAWNED
storm_done() {
	[ "$(cat "$TMP/storm.n" 2>/dev/null || echo 0)" -ge 40 ] && stat_above krouted $((k0 + 500))
}
wait_until 300 storm_done || fail "5: the storm did not reach 40 commits and 500 kernel-routed requests"
stop_pid "$storm_client"
cp "$TMP/storm-client.log" "$TMP/client.json"
touch "$TMP/storm.stop"
wait "$storm"
ge "5: policy commits during the load" "$(cat "$TMP/storm.n")" 40
eq "5: every commit was accepted" "$(wc -c <"$TMP/storm.err")" 0
eq "5: no error, every request answered 200" "$(cj '[.errors, .requests == .status["200"]]' -c)" "[0,true]"
[ "$(cj .errors)" = 0 ] || echo "# 5: the client's errors by kind: $(cj .error_kinds -c)"
eq "5: no request routed by a mix of the two policies (all b1)" "$(cj '.backends | keys' -c)" '["b1"]'
check "5: the test's policy again" "$SOCKWAY" apply -f "$TMP/policy.json"

# --- 6. hazards under load, with the kill switch flipping ------------------------------------
# Stream clients (in turn, pipelined, half-closed) over /one and over /closing, whose backend
# closes its connection after each response; clients killed mid-request and mid-load; the
# kill switch flipped every 250 ms. Each stream checks every response in order, byte for byte.
warn0=$(kernel_warnings)
k0=$(stat_of krouted)
: >"$TMP/streams.out"
streams() {
	local path=$1 mode=$2 want=$3 n=0
	while [ ! -e "$TMP/hazard.stop" ]; do
		n=$((n + 1))
		KR_BACKEND=$want kr stream 40 "$path/$n" "$mode" >>"$TMP/streams.out" 2>&1 ||
			echo "BAD exit $? ($path $mode)" >>"$TMP/streams.out"
	done
}
pids=()
for spec in "/one/6s seq b1" "/one/6p pipe b1" "/one/6h half b1" "/closing/6s seq bclose" "/closing/6p pipe bclose"; do
	read -r path mode want <<<"$spec"
	streams "$path" "$mode" "$want" &
	pids+=($!)
	LIB_PIDS+=($!)
done
(
	flips=0
	while [ ! -e "$TMP/hazard.stop" ]; do
		"$SOCKWAY" accel off >/dev/null 2>&1
		sleep 0.25
		"$SOCKWAY" accel on >/dev/null 2>&1
		flips=$((flips + 1))
		echo "$flips" >"$TMP/flips.n"
		sleep 0.25
	done
	"$SOCKWAY" accel on >/dev/null 2>&1
) &
flipper=$!
LIB_PIDS+=("$flipper")
kills=0
for round in 1 2 3 4 5 6; do
	# A client killed with half a request sent, and one killed in the middle of its load.
	SPAWN_CGROUP=$CG spawn half-$round python3 -c "
import socket, sys, time
s = socket.create_connection(('127.0.0.1', $P))
s.sendall(b'POST /one/k HTTP/1.1\r\nHost: kr.test\r\nContent-Length: 100\r\n\r\nabc')
print('sent', flush=True)
time.sleep(600)"
	half=$SPAWNED
	SPAWN_CGROUP=$CG spawn load-$round "$SWCLIENT" --url "http://127.0.0.1:$P/one/kill" \
		--connections 8 --duration-ms 600000 --timeout-ms 10000
	load=$SPAWNED
	n=$(backend_count "$B1" requests)
	wait_until "$WAIT_S" grep -q sent "$TMP/half-$round.log" &&
		wait_until "$WAIT_S" test "$(backend_count "$B1" requests)" -ge $((n + 200)) &&
		kills=$((kills + 1))
	stop_pid "$half" KILL
	stop_pid "$load" KILL
done
eq "6: clients killed mid-request and mid-load, 6 rounds of each" "$kills" 6
hazard_done() {
	[ "$(cat "$TMP/flips.n" 2>/dev/null || echo 0)" -ge 8 ] &&
		[ "$(grep -c '^OK' "$TMP/streams.out")" -ge 50 ] && stat_above krouted $((k0 + 500))
}
wait_until 300 hazard_done || fail "6: the load did not reach 8 flips, 50 streams and 500 kernel-routed requests"
touch "$TMP/hazard.stop"
for pid in "${pids[@]}" "$flipper"; do
	wait "$pid"
done
eq "6: every stream answered in order, byte for byte (no BAD line)" \
	"$(grep -v '^OK' "$TMP/streams.out" | head -3)" ""
ge "6: streams run" "$(grep -c '^OK' "$TMP/streams.out")" 50
ge "6: kill switch flips" "$(cat "$TMP/flips.n")" 8
eq "6: the fast path is on after the last flip" "$("$SOCKWAY" -j accel list | jq .on)" true
out=$(kr stream 50 /one/after seq /one/warm)
eq "6: afterwards, a warm connection is the kernel's again" "$out" "OK 50 krouted 50"
out=$(kr stream 20 /closing/after seq)
eq "6: and a backend that closes after each response still serves" "$out" "OK 20"
# That backend closed every connection sockwayd lent to the kernel. sockwayd keeps the
# socket of a lent connection open until no program run can still hold it (a grace period
# after it left its lend set), then closes it: none stays half-closed. (A liveness check:
# it fails if grace periods never pass, not if they pass too early.)
close_waits() {
	[ "$(ss -Htn state close-wait "dport = :$BCLOSE" | wc -l)" = 0 ]
}
wait_until "$WAIT_S" close_waits
eq "6: sockwayd closed every connection the backend closed (none in CLOSE-WAIT)" \
	"$(ss -Htn state close-wait "dport = :$BCLOSE" | wc -l)" 0
eq "6: no new kernel warnings in dmesg" "$(kernel_warnings)" "$warn0"

# --- 7. drain ----------------------------------------------------------------------------------
stop_pid "$SWD_K"
eq "7: sockwayd exits 0 on SIGTERM" "$STOP_RC" 0
stop_pid "$PT_PID"
eq "7: so does the one with a short response timeout" "$STOP_RC" 0
# The lend map's last entry (key max_entries - 1) holds the lender ids, not a set (abi.h,
# SW_LEND_OWNERS). The sets are counted with grep: jq takes seconds over the 40 MB of the
# map's JSON, and this test reads it often.
LEND_OWNERS=$(($(bpftool -j map show pinned "$SOCKWAY_PIN_ROOT/lend" | jq .max_entries) - 1))
bpftool -j map dump pinned "$SOCKWAY_PIN_ROOT/lend" | grep -oE '"slot":\[[0-9,]*\]' >"$TMP/lend"
eq "7: the lend map's dump reads as its $((LEND_OWNERS + 1)) entries" "$(wc -l <"$TMP/lend")" \
	$((LEND_OWNERS + 1))
lent=$(head -n -1 "$TMP/lend" | grep -cvE '^"slot":\[(0,)*0\]$')
eq "7: they left no connection lent to the kernel" "$lent" 0
if [ "$lent" != 0 ]; then
	for v in $(bpftool -j map dump pinned "$SOCKWAY_PIN_ROOT/lend" |
		jq '.[0:-1][] | (.formatted.value // .value) | .slot[] | select(. != 0)' | head -3); do
		echo "# slot $v: $(bpftool -j map lookup pinned "$SOCKWAY_PIN_ROOT/conns" key $(((v - 1) & 255)) $(((v - 1) >> 8 & 255)) 0 0 |
			jq -c '.formatted.value | {owner, lent, lend_set, splice, kx_client, kroute, self}')"
	done
	grep -v '^sockwayd: [0-9]' "$SWD_K_LOG" | tail -5 | sed 's/^/# /'
fi
# lend_owners: the lender ids' entry alone.
lend_owners() {
	bpftool -j map lookup pinned "$SOCKWAY_PIN_ROOT/lend" key $((LEND_OWNERS & 255)) \
		$((LEND_OWNERS >> 8 & 255)) $((LEND_OWNERS >> 16 & 255)) $((LEND_OWNERS >> 24)) |
		jq -c '(.formatted.value // .value) | .slot'
}
owners=$(lend_owners | jq -c '[.[] | select(. != 0)]')
eq "7: and their lender ids are free again" "$owners" "[]"

# --- 8. sockwayds side by side (a rolling restart), one killed -------------------------------
# Each worker of each holds its own lender id, so each one's clients are routed over its own
# connections; the ids of one killed go to the next that starts.
P_A=$(port 16)
P_B=$(port 18)
P_C=$(port 20)
owners_of() {
	lend_owners | jq -r --argjson p "$1" '[.[] | select(. == $p)] | length'
}
start_sockwayd "$P_A" $(port 17) --workers 2
SWD_A=$SWD_PID
start_sockwayd "$P_B" $(port 19) --workers 2
SWD_B=$SWD_PID
eq "8: two sockwayds of 2 workers: 2 lender ids each" "$(owners_of "$SWD_A") $(owners_of "$SWD_B")" "2 2"
routes_on() {
	[ "$( (lib_exec python3 "$KR" "$1" stream 20 /one/8 seq /one/warm))" = "OK 20 krouted 20" ]
}
wait_until "$WAIT_S" routes_on "$P_A" && pass "8: the first routes its clients' requests" ||
	fail "8: the first sockwayd never routed 20 requests of a warm connection"
wait_until "$WAIT_S" routes_on "$P_B" && pass "8: so does the second, beside it" ||
	fail "8: the second sockwayd never routed 20 requests of a warm connection"
stop_pid "$SWD_A" KILL
start_sockwayd "$P_C" $(port 21) --workers 2
SWD_C=$SWD_PID
eq "8: the first killed, a third takes its lender ids" "$(owners_of "$SWD_C")" 2
wait_until "$WAIT_S" routes_on "$P_C" && pass "8: and routes" ||
	fail "8: the third sockwayd never routed 20 requests of a warm connection"
wait_until "$WAIT_S" routes_on "$P_B" && pass "8: the second still routes" ||
	fail "8: the second sockwayd stopped routing"
stop_pid "$SWD_B"
rc_b=$STOP_RC
stop_pid "$SWD_C"
eq "8: both exit 0 on SIGTERM" "$rc_b $STOP_RC" "0 0"
eq "8: and leave no lender id held" "$(owners_of "$SWD_B") $(owners_of "$SWD_C")" "0 0"

if [ "$FAIL" -gt 0 ]; then
	for log in "$TMP"/sockwayd-*.log; do
		echo "# $log:"
		grep -v '^sockwayd: [0-9]* workers' "$log" | tail -8 | sed 's/^/#   /'
	done
fi
finish
