#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# sockwayd end to end, as a client sees it: HTTP/1.1 behaviour (pipelining, HTTP/1.0
# keep-alive, Expect: 100-continue, chunked bodies, X-Forwarded-*, hop-by-hop headers, a
# 1 MiB response, 404, a custom shard header), malformed and oversized requests, backends
# killed mid-run, the admin listener, SIGTERM draining and a restart that keeps the policy.
# Backends are swbackend (which echoes what it received in X-Seen-* headers) and, to see
# the exact bytes forwarded, a small capture server in python3. It runs with the kernel fast
# path on (every socket here accelerated) and off: SOCKWAY_TEST_ACCEL, see lib.sh.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

SWD_PORT=$(port 0)
SWD_ADMIN=$(port 1)
SWD_URL=http://127.0.0.1:$SWD_PORT
ADMIN_URL=http://127.0.0.1:$SWD_ADMIN
P_B1=$(port 10)
P_B2=$(port 11)
P_BIG=$(port 12)
P_CAP=$(port 13)
P_REP1=$(port 14)
P_REP2=$(port 15)
P_SOLO=$(port 16)
P_SLOW=$(port 17)
P_CB=$(port 18)
SWD_ARGS=(--workers 2 --max-request-line 1024 --max-header-bytes 4096 --max-body 200000 --drain 3000)

# status_line FILE: the first line of a raw response, without its CR.
status_line() {
	head -n 1 "$1" | tr -d '\r'
}

# header FILE NAME: the value of header NAME in the first response head of FILE.
header() {
	tr -d '\r' <"$1" | awk -v n="$2" 'BEGIN { n = tolower(n) } /^$/ { exit }
		{ i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit } }'
}

# raw NAME: sends $TMP/NAME.raw with swclient --raw; the response is in $TMP/NAME.resp.
# swclient reads until sockwayd closes, which each of these requests makes it do; its 30 s
# timeout is only reached by a connection left open.
raw() {
	"$SWCLIENT" --url "$SWD_URL/" --raw "$TMP/$1.raw" --timeout-ms 30000 >"$TMP/$1.resp" 2>"$TMP/$1.err"
}

# alive DESC: sockwayd answers /healthz with "ok" and routes a normal request.
alive() {
	local health code
	health=$(curl -s --max-time 30 "$ADMIN_URL/healthz")
	code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$SWD_URL/alive")
	if kill -0 "$SWD_PID" 2>/dev/null && [ "$health" = ok ] && [ "$code" = 200 ]; then
		pass "$1: sockwayd is alive (healthz ok, a normal request 200)"
	else
		fail "$1: sockwayd is alive" "healthz '$health', normal request $code"
	fi
}

# --- without `sockway load` ---------------------------------------------------------------------
timeout 10 "$SOCKWAYD" --listen "127.0.0.1:$SWD_PORT" --admin "127.0.0.1:$SWD_ADMIN" >"$TMP/noload.out" 2>"$TMP/noload.err"
eq "sockwayd before sockway load exits 1" "$?" 1
check "and says to run sockway load" grep -qE 'run "?sockway load' "$TMP/noload.err"

# --- policy, backends, sockwayd -----------------------------------------------------------------
check "load" "$SOCKWAY" load
accel_mode_enter
start_backend b1 "$P_B1"
start_backend b2 "$P_B2"
start_backend big "$P_BIG" --body-size 1048576
start_backend rep "$P_REP1"
start_backend rep "$P_REP2"
REP2_PID=$BACKEND_PID
start_backend solo "$P_SOLO"
SOLO_PID=$BACKEND_PID
start_backend slow "$P_SLOW" --latency-ms 1000
# 256 KiB close-delimited bodies (no Content-Length, the backend closes after each); "/reset"
# resets the connection instead, once sockwayd holds the body.
DRIP_CLOSE=1 spawn cb python3 tests/integration/drip_backend.py "$P_CB" 262144 0
# The capture server answers every request with 200 and appends its head, as received, to a
# file: it shows the exact bytes sockwayd forwards.
cat >"$TMP/capture.py" <<'EOF'
import socket, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(16)
lock = threading.Lock()
def serve(c):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        with lock, open(out, "ab") as f:
            f.write(head + b"\r\n\r\n")
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Backend: capture\r\nContent-Length: 3\r\n\r\nok\n")
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
if command -v python3 >/dev/null; then
	spawn capture python3 "$TMP/capture.py" "$P_CAP" "$TMP/captured"
	wait_until "$WAIT_S" curl -s --max-time 1 "http://127.0.0.1:$P_CAP/" || fail "the capture server did not start" "$(cat "$TMP/capture.log")"
	: >"$TMP/captured"
else
	fail "python3 is missing: the forwarded bytes cannot be captured"
fi

check "backend create b1" "$SOCKWAY" backend create b1 "127.0.0.1:$P_B1"
check "backend create b2" "$SOCKWAY" backend create b2 "127.0.0.1:$P_B2"
check "backend create big" "$SOCKWAY" backend create big "127.0.0.1:$P_BIG"
check "backend create capture" "$SOCKWAY" backend create capture "127.0.0.1:$P_CAP"
check "backend create rep (two replicas)" "$SOCKWAY" backend create rep "127.0.0.1:$P_REP1" "127.0.0.1:$P_REP2"
check "backend create solo" "$SOCKWAY" backend create solo "127.0.0.1:$P_SOLO"
check "backend create slow" "$SOCKWAY" backend create slow "127.0.0.1:$P_SLOW"
check "endpoint e" "$SOCKWAY" endpoint create e --route /e --backend b1
check "endpoint alive" "$SOCKWAY" endpoint create alive --route /alive --backend b2
check "endpoint big" "$SOCKWAY" endpoint create big --route /big --backend big
check "endpoint cap" "$SOCKWAY" endpoint create cap --route /cap --backend capture
check "endpoint custom (--shard-header X-User)" "$SOCKWAY" endpoint create custom --route /custom --backend b1 --shard-header X-User
check "custom 0.5/0.5" "$SOCKWAY" traffic set custom b1=0.5 b2=0.5
check "endpoint reps" "$SOCKWAY" endpoint create reps --route /reps --backend rep
check "endpoint halfdead" "$SOCKWAY" endpoint create halfdead --route /halfdead --backend b1
check "halfdead b1=0.5 solo=0.5" "$SOCKWAY" traffic set halfdead b1=0.5 solo=0.5
check "endpoint slow" "$SOCKWAY" endpoint create slow --route /slow --backend slow
check "endpoint counted" "$SOCKWAY" endpoint create counted --route /counted --backend b2
wait_until "$WAIT_S" grep -q ready "$TMP/cb.log" || fail "the close-delimited backend did not start"
check "backend create cb" "$SOCKWAY" backend create cb "127.0.0.1:$P_CB"
check "endpoint cb" "$SOCKWAY" endpoint create cb --route /cb --backend cb
start_sockwayd "$SWD_PORT" "$SWD_ADMIN" "${SWD_ARGS[@]}" || { finish; exit 1; }

# --- admin: healthz -----------------------------------------------------------------------------
eq "GET /healthz answers 200" "$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$ADMIN_URL/healthz")" 200
eq "GET /healthz says ok" "$(curl -s --max-time 30 "$ADMIN_URL/healthz")" ok

# --- HTTP behaviour -----------------------------------------------------------------------------
# Pipelining: two requests in one write get two responses, in order.
printf 'GET /e/first HTTP/1.1\r\nHost: t\r\n\r\nGET /e/second HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' >"$TMP/pipe.raw"
raw pipe
eq "pipelining: two responses, both 200" "$(grep -ac '^HTTP/1.1 200 ' "$TMP/pipe.resp")" 2
eq "pipelining: in the order of the requests" "$(tr -d '\r' <"$TMP/pipe.resp" | sed -n 's/^X-Seen-Path: //p' | tr '\n' ' ')" "/e/first /e/second "

# HTTP/1.0: closes after each response unless the client asks for keep-alive.
curl -sv --max-time 30 --http1.0 "$SWD_URL/e/a" "$SWD_URL/e/b" >/dev/null 2>"$TMP/h10.err"
eq "HTTP/1.0: two requests, two 200s" "$(grep -c '^< HTTP/1.[01] 200' "$TMP/h10.err")" 2
eq "HTTP/1.0 without keep-alive: the connection is not reused" "$(grep -c 'Re-using existing connection' "$TMP/h10.err")" 0
check "HTTP/1.0 without keep-alive: the server closes it" grep -q 'Closing connection 0' "$TMP/h10.err"
check "HTTP/1.0 without keep-alive: no Connection: keep-alive answered" \
	bash -c "! grep -qi '^< Connection: keep-alive' '$TMP/h10.err'"
curl -sv --max-time 30 --http1.0 -H 'Connection: keep-alive' "$SWD_URL/e/a" "$SWD_URL/e/b" >/dev/null 2>"$TMP/h10ka.err"
eq "HTTP/1.0 keep-alive: two requests, two 200s" "$(grep -c '^< HTTP/1.[01] 200' "$TMP/h10ka.err")" 2
check "HTTP/1.0 keep-alive: answered Connection: keep-alive" grep -qi '^< Connection: keep-alive' "$TMP/h10ka.err"
check "HTTP/1.0 keep-alive: the second request reuses the connection" grep -q 'Re-using existing connection' "$TMP/h10ka.err"
printf 'GET /e/ten HTTP/1.0\r\nHost: t\r\n\r\n' >"$TMP/h10raw.raw"
t0=${EPOCHREALTIME/./}
raw h10raw
t1=${EPOCHREALTIME/./}
eq "HTTP/1.0 raw: 200" "$(status_line "$TMP/h10raw.resp")" "HTTP/1.1 200 OK"
# Half of swclient's 30 s wait: a connection left open takes all of it, a busy machine
# nowhere near half.
le "HTTP/1.0 raw: sockwayd closes the connection (swclient did not wait out its 30 s)" \
	$(((t1 - t0) / 1000)) 15000

# Expect: 100-continue: the interim 100, then the final 200 with the whole body forwarded.
head -c 5000 /dev/zero | tr '\0' x >"$TMP/body5k"
curl -sv --max-time 30 -H 'Expect: 100-continue' --data-binary @"$TMP/body5k" "$SWD_URL/e/expect" >/dev/null 2>"$TMP/expect.err"
eq "Expect: 100-continue gets 100 Continue, then 200" \
	"$(grep -E '^< HTTP/1.1 [0-9]+' "$TMP/expect.err" | awk '{print $3}' | tr '\n' ' ')" "100 200 "
eq "Expect: 100-continue: the backend got the 5000 bytes" \
	"$(tr -d '\r' <"$TMP/expect.err" | sed -n 's/^< X-Seen-Body-Bytes: //p')" 5000

# Chunked request bodies, from swclient and from curl.
b1_body0=$(backend_count "$P_B1" body_bytes)
client /e/chunked --chunked --body-size 100000 --requests 1 --method POST
eq "chunked request body (swclient): 200" "$(cj '.status["200"]')" 1
eq "chunked request body (swclient): the backend got 100000 bytes" "$(($(backend_count "$P_B1" body_bytes) - b1_body0))" 100000
head -c 100000 /dev/urandom >"$TMP/body100k"
curl -s --max-time 30 -D "$TMP/chunked.head" -o /dev/null -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/body100k" "$SWD_URL/e/chunked"
eq "chunked request body (curl): X-Seen-Body-Bytes" "$(header "$TMP/chunked.head" X-Seen-Body-Bytes)" 100000

# X-Forwarded-For / X-Forwarded-Proto.
curl -s --max-time 30 -D "$TMP/xff.head" -o /dev/null "$SWD_URL/e/xff"
eq "X-Forwarded-For reaches the backend" "$(header "$TMP/xff.head" X-Seen-Forwarded-For)" 127.0.0.1
curl -s --max-time 30 -D "$TMP/xff2.head" -o /dev/null -H 'X-Forwarded-For: 10.1.2.3' "$SWD_URL/e/xff"
eq "X-Forwarded-For ends with the client's address when the client sent one" \
	"$(header "$TMP/xff2.head" X-Seen-Forwarded-For | awk -F', *' '{print $NF}')" 127.0.0.1

# Hop-by-hop headers stop at sockwayd.
curl -s --max-time 30 -D "$TMP/hop.head" -o /dev/null -H 'Connection: foo' -H 'Foo: bar' \
	-H 'Keep-Alive: timeout=5' -H 'TE: trailers' -H 'Upgrade: websocket' -H 'Proxy-Connection: keep-alive' "$SWD_URL/e/hop"
eq "hop-by-hop: the request was answered" "$(status_line "$TMP/hop.head")" "HTTP/1.1 200 OK"
eq "hop-by-hop: Connection, Keep-Alive, TE, Upgrade, Proxy-Connection do not reach the backend" \
	"$(header "$TMP/hop.head" X-Seen-Hop)" ""

# The same through the capture server: the exact head forwarded.
curl -s --max-time 30 -o /dev/null -H 'Connection: foo' -H 'Foo: bar' -H 'Keep-Alive: timeout=5' \
	-H 'TE: trailers' -H 'Upgrade: websocket' "$SWD_URL/cap/hop"
tr -d '\r' <"$TMP/captured" >"$TMP/captured.txt"
check "capture: the request reached the capture backend" grep -q '^GET /cap/hop HTTP/1.1$' "$TMP/captured.txt"
eq "capture: X-Forwarded-Proto: http" "$(grep -i '^X-Forwarded-Proto:' "$TMP/captured.txt")" "X-Forwarded-Proto: http"
eq "capture: X-Forwarded-For: 127.0.0.1" "$(grep -i '^X-Forwarded-For:' "$TMP/captured.txt")" "X-Forwarded-For: 127.0.0.1"
eq "capture: no hop-by-hop header (Connection, Foo, Keep-Alive, TE, Upgrade) forwarded" \
	"$(grep -icE '^(connection|foo|keep-alive|te|upgrade):' "$TMP/captured.txt")" 0

# A 1 MiB response, streamed intact.
curl -s --max-time 30 -o "$TMP/big.out" "$SWD_URL/big/file"
curl -s --max-time 30 -o "$TMP/big.direct" "http://127.0.0.1:$P_BIG/big/file"
eq "1 MiB response: 1048576 bytes" "$(stat -c %s "$TMP/big.out" 2>/dev/null)" 1048576
check "1 MiB response: the same bytes as the backend sends directly" cmp "$TMP/big.out" "$TMP/big.direct"

# 404 for a path no route matches, with a one-line body.
code=$(curl -s --max-time 30 -o "$TMP/404.body" -w '%{http_code}' "$SWD_URL/nothing/here")
eq "unknown path: 404" "$code" 404
eq "unknown path: a one-line body" "$(wc -l <"$TMP/404.body") $(head -c 1 "$TMP/404.body" | wc -c)" "1 1"

# custom_keys_mismatch: the keys user-1..20 (header X-User) whose answering backend is not
# the one "sockway explain" predicted in $TMP/custom.json; empty when all match.
custom_keys_mismatch() {
	local i got want bad=""

	for i in $(seq 1 20); do
		got=$(curl -s --max-time 30 -D - -o /dev/null -H "X-User: user-$i" "$SWD_URL/custom/x" | tr -d '\r' | sed -n 's/^X-Backend: //p')
		want=$(jq -r --arg k "user-$i" '.[] | select(.key == $k) | .backend' "$TMP/custom.json")
		[ "$got" = "$want" ] || bad="$bad user-$i:$got!=$want"
	done
	echo "$bad"
}

# A custom shard header (--shard-header X-User): keys land where explain says.
keys=()
for i in $(seq 1 20); do
	keys+=(--key "user-$i")
done
"$SOCKWAY" -j explain /custom "${keys[@]}" >"$TMP/custom.json"
bad=$(custom_keys_mismatch)
eq "custom shard header: 20 keys each reach the backend explain predicts" "$bad" ""
client /custom --requests 40 --connections 4 --header 'X-User: alice'
eq "custom shard header: 40 requests with one X-User reach one backend" "$(cj '.backends | length')" 1
client /custom --requests 40 --connections 4 --header 'X-SERVE-SHARD-KEY: alice'
eq "custom shard header: X-SERVE-SHARD-KEY is not the key there (40 requests reach both)" "$(cj '.backends | length')" 2

# --- malformed requests: 400, and sockwayd survives ------------------------------------------------
printf 'POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' >"$TMP/cl_te.raw"
printf 'POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' >"$TMP/two_cl.raw"
printf 'POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello' >"$TMP/bad_cl.raw"
printf 'GET /e HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n' >"$TMP/bare_cr.raw"
printf 'GET /e HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n' >"$TMP/obs_fold.raw"
printf 'GET /e HTTP/1.1\r\nHost: t\r\nX-A : a\r\n\r\n' >"$TMP/space_colon.raw"
printf 'GET /e HTTP/1.1\r\nHost: t\r\nX(A): a\r\n\r\n' >"$TMP/bad_name.raw"
printf 'POST /e HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n' >"$TMP/te_gzip.raw"
printf 'GET /e HTTP/1.1\r\n\r\n' >"$TMP/no_host.raw"
printf 'POST /e HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n' >"$TMP/bad_chunk.raw"
# Over the limits: request line > 1024, head > 4096, Content-Length > 200000.
printf 'GET /e/%s HTTP/1.1\r\nHost: t\r\n\r\n' "$(head -c 1100 /dev/zero | tr '\0' a)" >"$TMP/long_line.raw"
{
	printf 'GET /e HTTP/1.1\r\nHost: t\r\n'
	for i in $(seq 1 50); do
		printf 'X-Filler-%02d: %s\r\n' "$i" "$(head -c 100 /dev/zero | tr '\0' b)"
	done
	printf '\r\n'
} >"$TMP/big_head.raw"
printf 'POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n' >"$TMP/big_body.raw"
# And just under them: a 1000-byte request line and a 3 KiB head pass.
printf 'GET /e/%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' "$(head -c 980 /dev/zero | tr '\0' a)" >"$TMP/ok_line.raw"
{
	printf 'GET /e HTTP/1.1\r\nHost: t\r\nConnection: close\r\n'
	for i in $(seq 1 25); do
		printf 'X-Filler-%02d: %s\r\n' "$i" "$(head -c 100 /dev/zero | tr '\0' b)"
	done
	printf '\r\n'
} >"$TMP/ok_head.raw"

b1_before=$(backend_count "$P_B1" requests)
for t in "cl_te|Content-Length with Transfer-Encoding|400" "two_cl|two Content-Lengths|400" \
	"bad_cl|an invalid Content-Length|400" "bare_cr|a bare CR in a header|400" \
	"obs_fold|obs-fold|400" "space_colon|a space before the colon|400" \
	"bad_name|an invalid character in a header name|400" \
	"te_gzip|Transfer-Encoding: gzip, chunked|400" "no_host|HTTP/1.1 without Host|400" \
	"long_line|a request line over --max-request-line|414" \
	"big_head|a header block over --max-header-bytes|431" \
	"big_body|a Content-Length over --max-body|413"; do
	IFS='|' read -r name desc want <<<"$t"
	raw "$name"
	eq "$desc: $want" "$(status_line "$TMP/$name.resp" | awk '{print $2}')" "$want"
	alive "after $desc"
done
eq "none of those requests reached the backend" "$(backend_count "$P_B1" requests)" "$b1_before"
raw bad_chunk
eq "an invalid chunk size: 400" "$(status_line "$TMP/bad_chunk.resp" | awk '{print $2}')" 400
alive "after an invalid chunk size"
raw ok_line
eq "a 1000-byte request line (under the limit): 200" "$(status_line "$TMP/ok_line.resp")" "HTTP/1.1 200 OK"
raw ok_head
eq "a 3 KiB head (under the limit): 200" "$(status_line "$TMP/ok_head.resp")" "HTTP/1.1 200 OK"
# Refused before routing: the nine malformed heads and one over each limit (the invalid chunk
# size comes after routing, so it counts in its endpoint's cell instead).
printf 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n' >"$TMP/connect.raw"
raw connect
eq "CONNECT (sockwayd does not tunnel): 501" "$(status_line "$TMP/connect.resp" | awk '{print $2}')" 501
eq "metrics: sockway_bad_requests_total by status" \
	"$(for s in 400 413 414 431 501; do metric "sockway_bad_requests_total{status=\"$s\"}"; done | tr '\n' ' ')" "9 1 1 1 1 "

# --- a close-delimited body: its end is the backend's close, never its reset -------------------------
# A clean close ends it whole; a reset cuts it, and the client must see a reset too (curl 56),
# since a close would tell it the body was whole.
out=$(curl -s --max-time 30 -o "$TMP/cb.body" -w '%{http_code} %{size_download}' "$SWD_URL/cb/a")
eq "close-delimited body: whole, ended by a clean close" "$out $?" "200 262144 0"
eq "close-delimited body: byte for byte" "$(sha256sum <"$TMP/cb.body" | cut -d' ' -f1)" \
	"$(head -1 "$TMP/cb.log")"
curl -s --max-time 30 -o /dev/null "$SWD_URL/cb/reset"
eq "close-delimited body cut by the backend's reset: the client sees a reset" "$?" 56
eq "and sockwayd answers on" "$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$SWD_URL/e/x")" 200

# --- backends killed mid-run -------------------------------------------------------------------------
# (a) One of two replicas dies while a client runs: the other carries the traffic. The client
# runs until SIGTERM (the duration is only a cap): from before both replicas answered to
# after the survivor answered 1000 more requests.
"$SWCLIENT" --url "$SWD_URL/reps" --connections 8 --duration-ms 600000 --timeout-ms 30000 \
	>"$TMP/reps.json" 2>"$TMP/reps.err" &
reps_client=$!
LIB_PIDS+=("$reps_client")
# answered_from PORT N: the backend on PORT has answered N requests or more.
answered_from() {
	[ "$(backend_count "$1" requests)" -ge "$2" ]
}
wait_until "$WAIT_S" answered_from "$P_REP1" 1
wait_until "$WAIT_S" answered_from "$P_REP2" 1
stop_pid "$REP2_PID" KILL
wait_until "$WAIT_S" answered_from "$P_REP1" $(($(backend_count "$P_REP1" requests) + 1000))
stop_pid "$reps_client"
eq "replica killed: swclient ran" "$STOP_RC" 0
cp "$TMP/reps.json" "$TMP/client.json"
eq "replica killed: no client errors (every request got an answer)" "$(cj .errors)" 0
eq "replica killed: every failure is a 502 or 503" "$(cj '[.status | keys[] | select(. != "200" and . != "502" and . != "503")] | join(",")')" ""
# Failures are the requests that met the death (at most one per connection, and their
# retries) and none after: a share of a run of 1000 answers at least after it, not of a time.
check "replica killed: >= 95% of the answers are 200 ($(cj -c .status))" \
	test "$(cj '(.status["200"] // 0) * 100 >= 95 * .responses and .responses > 1000')" = true
eq "replica killed: only rep answered" "$(cj '.backends | keys | join(",")')" rep
check "replica killed: sockway stats shows connect_refused or reset errors" \
	test "$(cell reps rep primary '.errors.connect_refused + .errors.reset')" -gt 0
client /reps --requests 200 --connections 4
eq "after the replica died: 200 more requests, all 200" "$(cj '.status["200"] // 0')" 200

# (b) The only replica of one backend of a 50/50 split dies: its share fails, the rest is served.
client /halfdead --requests 200 --connections 4
eq "halfdead before: 200 answers, all 200" "$(cj '.status["200"] // 0')" 200
stop_pid "$SOLO_PID" KILL
client /halfdead --requests 1000 --connections 4
eq "halfdead: no client errors" "$(cj .errors)" 0
eq "halfdead: every answer is 200, 502 or 503" "$(cj '[.status | keys[] | select(. != "200" and . != "502" and . != "503")] | join(",")')" ""
within "halfdead: b1 still serves its share (200s)" "$(cj '.status["200"] // 0')" 1000 "$(share halfdead b1)"
eq "halfdead: the 200s all came from b1" "$(cj '.backends.b1 // 0')" "$(cj '.status["200"] // 0')"
eq "halfdead: solo answered nothing" "$(cj '.backends.solo // 0')" 0
check "halfdead: solo's failures show in sockway stats" \
	test "$(cell halfdead solo primary '[.errors[]] | add')" -gt 0
alive "after a backend died"

# --- admin: metrics and policy -----------------------------------------------------------------------
client /counted --requests 37 --connections 2
eq "counted: 37 answers" "$(cj '.status["200"] // 0')" 37
curl -s --max-time 30 "$ADMIN_URL/metrics" >"$TMP/metrics"
L='endpoint="counted",backend="b2",role="primary"'
eq "metrics: sockway_requests_total of counted" "$(awk -v k="sockway_requests_total{$L}" '$1 == k {print $2}' "$TMP/metrics")" 37
eq "metrics: sockway_responses_total 2xx of counted" "$(awk -v k="sockway_responses_total{$L,class=\"2xx\"}" '$1 == k {print $2}' "$TMP/metrics")" 37
eq "metrics: the +Inf bucket of counted" "$(awk -v k="sockway_request_duration_seconds_bucket{$L,le=\"+Inf\"}" '$1 == k {print $2}' "$TMP/metrics")" 37
eq "metrics: the histogram count of counted" "$(awk -v k="sockway_request_duration_seconds_count{$L}" '$1 == k {print $2}' "$TMP/metrics")" 37
grep -F "sockway_request_duration_seconds_bucket{$L," "$TMP/metrics" | awk '{print $2}' >"$TMP/buckets"
eq "metrics: 25 histogram buckets for counted" "$(wc -l <"$TMP/buckets")" 25
check "metrics: the buckets are cumulative (never decrease)" awk 'NR > 1 && $1 < prev { exit 1 } { prev = $1 }' "$TMP/buckets"
check "metrics: the histogram is declared" grep -q '^# TYPE sockway_request_duration_seconds histogram' "$TMP/metrics"
curl -s --max-time 30 "$ADMIN_URL/policy" | jq -S . >"$TMP/policy.admin" 2>/dev/null
"$SOCKWAY" export | jq -S . >"$TMP/policy.export"
check "GET /policy equals sockway export" cmp "$TMP/policy.admin" "$TMP/policy.export"
check "GET /policy is not empty" jq -e '.endpoints.counted.route == "/counted"' "$TMP/policy.admin"

# --- SIGTERM drains, then a restart keeps the policy ----------------------------------------------------
slow0=$(backend_count "$P_SLOW" requests)
curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$SWD_URL/slow/x" >"$TMP/slow.code" 2>/dev/null &
slow_client=$!
LIB_PIDS+=("$slow_client")
# The request is in flight once the backend has it (it answers 1 s later).
wait_until "$WAIT_S" answered_from "$P_SLOW" $((slow0 + 1))
t0=${EPOCHREALTIME/./}
stop_pid "$SWD_PID" TERM
t1=${EPOCHREALTIME/./}
eq "SIGTERM: sockwayd exits 0" "$STOP_RC" 0
# A bound against waiting for ever (the keep-alive timeout is 60 s), not a measure: the
# drain ends with the request in flight, or at 3 s; a busy machine does not add 7 s.
le "SIGTERM: it exits within the drain time and then some (3 s; took $(((t1 - t0) / 1000)) ms)" \
	$(((t1 - t0) / 1000)) 10000
wait "$slow_client"
eq "SIGTERM: the request in flight (1 s backend) still got its 200" "$(cat "$TMP/slow.code")" 200
code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$SWD_URL/e/after")
eq "after exit: nothing listens" "$code" 000

start_sockwayd "$SWD_PORT" "$SWD_ADMIN" "${SWD_ARGS[@]}" || { finish; exit 1; }
pass "restart: sockwayd is ready again"
bad=$(custom_keys_mismatch)
eq "restart: the 20 keys reach the same backends as before" "$bad" ""
client /e --requests 200 --connections 4
eq "restart: /e still routes to b1" "$(cj '[.status["200"], .backends.b1] | @tsv')" "$(printf '200\t200')"
# A client that sends 40 requests in one go and then half-closes gets each answered, in
# order (the close waits until no whole request is left), as from nginx or HAProxy.
out=$(python3 tests/integration/kr_client.py "$SWD_PORT" stream 40 /e/half half)
eq "half-close after 40 pipelined requests: 40 answers, in order" "$out" "OK 40"
# Draining closes a connection idle between requests, but answers one accepted before SIGTERM
# whose request comes only after the listener closed: the client could not tell that request
# from one the server saw (a restart bridged by a second sockwayd would lose it).
python3 - "$SWD_PORT" "$SWD_PID" >"$TMP/late.out" 2>&1 <<'EOF'
import os, signal, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])

def response(s):
    s.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return data
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    while length and len(body) < length[0]:
        body += s.recv(65536)
    return head

fresh = socket.create_connection(("127.0.0.1", port))
idle = socket.create_connection(("127.0.0.1", port))
idle.sendall(b"GET /e/idle HTTP/1.1\r\nHost: t\r\n\r\n")
print("idle answered:", response(idle).split(b"\r\n")[0].decode())
os.kill(pid, signal.SIGTERM)
# The listener closes at the drain's first tick: then a connect is refused.
deadline = time.time() + 60
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port)).close()
        time.sleep(0.02)
    except ConnectionRefusedError:
        break
fresh.sendall(b"GET /e/late HTTP/1.1\r\nHost: t\r\n\r\n")
head = response(fresh).decode()
print("late:", head.split("\r\n")[0] if head else "closed unanswered",
      "+ close" if "connection: close" in head.lower() else "")
idle.settimeout(30)
print("idle after SIGTERM:", "closed" if idle.recv(1) == b"" else "open")
EOF
eq "drain: a connection idle between requests is closed; one whose request comes after the listener closed is answered" \
	"$(tr '\n' '|' <"$TMP/late.out")" "idle answered: HTTP/1.1 200 OK|late: HTTP/1.1 200 OK + close|idle after SIGTERM: closed|"
stop_pid "$SWD_PID" TERM
eq "and sockwayd exits 0" "$STOP_RC" 0

# Thousands of requests went client -> sockwayd -> backend and back, four sends each at least.
accel_mode_verify 10000
finish
