#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The attacks of the trust review, replayed against sockwayd with backends that record what
# they read (record_backend.py parses like a lenient server, so a smuggled request shows up
# as a request of its own):
#   1. request smuggling through a Connection token naming Content-Length, and a backend
#      stripping its own framing the same way;
#   2. non-idempotent requests replayed on another replica after a response timeout or a
#      reset;
#   3. paths and Hosts that match one route while the backend resolves another (dot
#      segments, escapes, repeated slashes, case, a trailing dot);
#   4. credentials copied to shadow backends, and a shadowed HEAD read as if it had a body;
#   5. fields named with '_', chunk framing and trailers passed on as they came.
# (A socket taken for another on an equal hash: test_collide.sh. The admin port:
# test_admin.sh.) Runs with the kernel fast path on and off.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

P_PUB=$(port 0)
P_ADM=$(port 1)
P_SLOW1=$(port 2)
P_SLOW2=$(port 3)
P_RST1=$(port 4)
P_RST2=$(port 5)
P_SH=$(port 6)
P_FR=$(port 7)
P_CH=$(port 8)
P_SWD=$(port 10)
P_SWD_ADMIN=$(port 11)
P_SWD2=$(port 12)
P_SWD2_ADMIN=$(port 13)
P_SWD3=$(port 14)
P_SWD3_ADMIN=$(port 15)
REC=$TMP/rec
mkdir -p "$REC"

check "load" "$SOCKWAY" load
accel_mode_enter

# record NAME PORT [MODE]: a recording backend.
record() {
	spawn "rec-$1" python3 tests/integration/record_backend.py "$1" "$2" "$REC" "${3:-}"
	wait_until 5 grep -q ready "$TMP/rec-$1.log" || fail "backend $1 did not start" "$(cat "$TMP/rec-$1.log")"
}
# seen NAME: how many requests backend NAME recorded.
seen() {
	find "$REC" -name "$1-*.req" | wc -l
}
# raw PORT FILE: sends FILE's bytes to 127.0.0.1:PORT and prints what comes back until the
# peer closes (or 10 s of silence).
raw() {
	python3 - "$1" "$2" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(open(sys.argv[2], "rb").read())
s.settimeout(10)
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
except socket.timeout:
    pass
sys.stdout.buffer.write(out)
EOF
}
# status_of FILE: the status code of the first response in FILE.
status_of() {
	head -c 12 "$1" | cut -d' ' -f2
}

# The slow backends never answer within the test (600 s), so a 1 s response timeout fires
# however loaded the machine is.
# A backend that frames its response with Content-Length and then names it in Connection,
# with a second response run on behind it; one that answers chunked with extensions, leading
# zeros and trailers named like framing fields.
printf 'HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED' >"$TMP/fr.resp"
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0005;ext=1\r\nhello\r\n0;x\r\nContent-Length: 99\r\nHost: evil\r\n\r\n' >"$TMP/ch.resp"
record pub "$P_PUB"
record adm "$P_ADM"
record slow1 "$P_SLOW1" slow=600000
record slow2 "$P_SLOW2" slow=600000
record rst1 "$P_RST1" reset
record rst2 "$P_RST2" reset
record sh "$P_SH"
record fr "$P_FR" "raw=$TMP/fr.resp"
record ch "$P_CH" "raw=$TMP/ch.resp"
check "backend pub" "$SOCKWAY" backend create pub "127.0.0.1:$P_PUB"
check "backend adm" "$SOCKWAY" backend create adm "127.0.0.1:$P_ADM"
check "backend slow (two replicas)" "$SOCKWAY" backend create slow "127.0.0.1:$P_SLOW1" "127.0.0.1:$P_SLOW2"
check "backend rst (two replicas)" "$SOCKWAY" backend create rst "127.0.0.1:$P_RST1" "127.0.0.1:$P_RST2"
check "backend sh" "$SOCKWAY" backend create sh "127.0.0.1:$P_SH"
check "backend fr" "$SOCKWAY" backend create fr "127.0.0.1:$P_FR"
check "backend ch" "$SOCKWAY" backend create ch "127.0.0.1:$P_CH"
check "endpoint /public" "$SOCKWAY" endpoint create pub --route /public --backend pub
check "endpoint /admin on admin.internal" "$SOCKWAY" endpoint create adm --route /admin --host admin.internal --backend adm
check "endpoint /pay" "$SOCKWAY" endpoint create pay --route /pay --backend slow
check "endpoint /rst" "$SOCKWAY" endpoint create rst --route /rst --backend rst
check "endpoint /shad" "$SOCKWAY" endpoint create shad --route /shad --backend pub
check "shadow /shad to sh at 1.0" "$SOCKWAY" shadow set shad sh 1
check "endpoint /fr" "$SOCKWAY" endpoint create fr --route /fr --backend fr
check "endpoint /ch" "$SOCKWAY" endpoint create ch --route /ch --backend ch
start_sockwayd "$P_SWD" "$P_SWD_ADMIN" --workers 1 --response-timeout 1000 --replica-down 0
SWD=$SWD_PID
SWD_ADMIN=$P_SWD_ADMIN

# --- 1. smuggling -------------------------------------------------------------------------------
printf 'POST /public HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\nContent-Length: 72\r\n\r\nGET /admin HTTP/1.1\r\nHost: admin.internal\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n' >"$TMP/smuggle"
raw "$P_SWD" "$TMP/smuggle" >"$TMP/smuggle.resp"
eq "1: Connection naming Content-Length: 400" "$(status_of "$TMP/smuggle.resp")" 400
eq "1: no request reached /public's backend" "$(seen pub)" 0
eq "1: nor the admin backend" "$(seen adm)" 0
printf 'POST /public HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n0\r\n\r\n' >"$TMP/smuggle2"
raw "$P_SWD" "$TMP/smuggle2" >"$TMP/smuggle2.resp"
eq "1: Connection naming Transfer-Encoding: 400" "$(status_of "$TMP/smuggle2.resp")" 400
eq "1: the next client gets its own answer" \
	"$(curl -s --max-time 10 "http://127.0.0.1:$P_SWD/public/next")" "pub GET /public/next"
code=$(curl -s --max-time 10 -o "$TMP/fr.body" -w '%{http_code}' "http://127.0.0.1:$P_SWD/fr")
eq "1: a backend naming its Content-Length in Connection: 502" "$code" 502
eq "1: and nothing of the response behind it reached the client" "$(grep -c INJECTED "$TMP/fr.body")" 0

# --- 2. replays -----------------------------------------------------------------------------
# A request the kernel routed never passed through sockwayd, which therefore cannot send it
# again (README, Kernel routing): retries are sockwayd's, tested on one that lends nothing.
start_sockwayd "$P_SWD3" "$P_SWD3_ADMIN" --workers 1 --response-timeout 1000 --replica-down 0 --lend 0
SWD_ADMIN=$P_SWD3_ADMIN
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' -X POST -d 'amount=100' "http://127.0.0.1:$P_SWD3/pay")
eq "2: POST with a slow backend: 504" "$code" 504
eq "2: it ran on one replica only (a retry would be before the answer)" \
	$(($(seen slow1) + $(seen slow2))) 1
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_SWD3/pay/get")
eq "2: GET with a slow backend: 504" "$code" 504
eq "2: not retried after a timeout either (no --retry-on-timeout)" $(($(seen slow1) + $(seen slow2))) 2
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' -X POST -d 'x=1' "http://127.0.0.1:$P_SWD3/rst")
eq "2: POST to a backend that resets: 502" "$code" 502
eq "2: sent once" $(($(seen rst1) + $(seen rst2))) 1
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_SWD3/rst/get")
eq "2: GET to backends that reset: 502" "$code" 502
eq "2: retried once, on the other replica" "$(seen rst1) $(seen rst2)" "2 1"
eq "2: the retry is counted" "$(metric 'sockway_upstream_retries_total{reason="reset"}')" 1
eq "2: and no timeout retry" "$(metric 'sockway_upstream_retries_total{reason="timeout"}')" 0
SWD_ADMIN=$P_SWD_ADMIN

# --- 3. paths and Hosts -------------------------------------------------------------------------
# req_line NAME N: the request line of backend NAME's Nth request.
req_line() {
	head -1 "$REC/$1-$2.req" | tr -d '\r'
}
# get_status PATH [HOST]: the status of GET PATH (sent as it is) with Host HOST.
get_status() {
	curl -s --path-as-is --max-time 10 -o /dev/null -w '%{http_code}' \
		-H "Host: ${2:-x}" "http://127.0.0.1:$P_SWD$1"
}
n=$(seen adm)
eq "3: /public/../admin on admin.internal goes to the admin route" \
	"$(curl -s --path-as-is --max-time 10 -H 'Host: admin.internal' \
		"http://127.0.0.1:$P_SWD/public/../admin")" "adm GET /admin"
eq "3: and the backend receives the path that was routed" "$(req_line adm $((n + 1)))" "GET /admin HTTP/1.1"
eq "3: //admin///x routes as /admin/x" "$(get_status '//admin///x' admin.internal)" 200
eq "3: sent as /admin/x" "$(req_line adm $((n + 2)))" "GET /admin/x HTTP/1.1"
eq "3: /%61dmin routes as /admin" "$(get_status '/%61dmin?q=%2e' admin.internal)" 200
eq "3: sent as /admin, the query as it came" "$(req_line adm $((n + 3)))" "GET /admin?q=%2e HTTP/1.1"
eq "3: Host ADMIN.internal.:80 is admin.internal" "$(get_status /admin ADMIN.internal.:80)" 200
eq "3: the backend gets it as admin.internal:80" \
	"$(grep -i '^host:' "$REC/adm-$((n + 4)).req" | tr -d '\r')" "Host: admin.internal:80"
eq "3: /admin;jsessionid=1/x routes as /admin/x (as Java servers read it)" \
	"$(curl -s --path-as-is --max-time 10 -H 'Host: admin.internal' \
		"http://127.0.0.1:$P_SWD/admin;jsessionid=1/x")" "adm GET /admin;jsessionid=1/x"
n=$((n + 1))
for p in '/public/%2e%2e/admin' '/public/..%2fadmin' '/public/.%2E/admin' '/public/%2E./admin' \
	'/public%2fx' '/public/%5c..%5cadmin' '/public/%00' '/public/..;/admin' '/public/x\..\admin' \
	'/public/%c0%ae%c0%ae/admin' '/public/%e0%80%ae%e0%80%ae/admin'; do
	eq "3: $p: 400" "$(get_status "$p" admin.internal)" 400
done
eq "3: Host admin..internal: 400" "$(get_status /admin 'admin..internal')" 400
eq "3: Host with a '%': 400" "$(get_status /admin 'admin%2einternal')" 400
eq "3: none of these reached a backend" "$(seen adm) $(seen pub)" "$((n + 4)) 1"

# --- 4. shadows ---------------------------------------------------------------------------------
curl -s --max-time 10 -o /dev/null -H 'Authorization: Bearer secret' -H 'Cookie: session=s' \
	-H 'Proxy-Authorization: Basic p' "http://127.0.0.1:$P_SWD/shad/a"
wait_until 10 test "$(seen sh)" -ge 1
check "4: the shadow copy has no Authorization" sh -c "! grep -qi '^authorization:' '$REC/sh-1.req'"
check "4: no Cookie" sh -c "! grep -qi '^cookie:' '$REC/sh-1.req'"
check "4: no Proxy-Authorization" sh -c "! grep -qi '^proxy-authorization:' '$REC/sh-1.req'"
check "4: and is marked" grep -qi '^X-Sockway-Shadow: 1' "$REC/sh-1.req"
check "4: the primary has its credentials" grep -qi '^Authorization: Bearer secret' "$REC/pub-2.req"
# A shadowed HEAD: the shadow backend answers with a Content-Length and no body, as HEAD
# asks; the copy ends at its head instead of waiting for a body (the response timeout here
# is 1 s, so the old way ended in a timeout).
curl -s --max-time 10 -o /dev/null -I "http://127.0.0.1:$P_SWD/shad/h"
wait_until 10 cell_is shad sh shadow '.requests' 2
eq "4: the shadowed HEAD counted a 2xx" "$(cell shad sh shadow '.status."2xx"')" 2
eq "4: and no timeout" "$(cell shad sh shadow '.errors.timeout')" 0

# --- 5. underscores, chunk framing ----------------------------------------------------------
n=$(seen pub)
curl -s --max-time 10 -o /dev/null -H 'X_Forwarded_For: 10.9.9.9' -H 'X-Keep: 1' \
	"http://127.0.0.1:$P_SWD/public/u"
check "5: a field named with '_' does not reach the backend" \
	sh -c "! grep -qi '^x_forwarded_for' '$REC/pub-$((n + 1)).req'"
check "5: the others do" grep -qi '^X-Keep: 1' "$REC/pub-$((n + 1)).req"
n=$(seen pub)
curl -s --max-time 10 -o /dev/null -H 'X-Forwarded-Host: evil.example' -H 'X-Real-IP: 6.6.6.6' \
	-H 'Forwarded: for=6.6.6.6;host=evil.example' -H 'X-Forwarded-For: 6.6.6.6' \
	"http://127.0.0.1:$P_SWD/public/f"
check "5: a client's X-Forwarded-Host and X-Real-IP do not reach the backend" \
	sh -c "! grep -qiE '^(x-forwarded-host|x-real-ip):' '$REC/pub-$((n + 1)).req'"
eq "5: its Forwarded is replaced by sockwayd's element" \
	"$(grep -i '^forwarded:' "$REC/pub-$((n + 1)).req" | tr -d '\r')" "Forwarded: for=127.0.0.1;proto=http"
eq "5: its X-Forwarded-For gets the client's address last" \
	"$(grep -i '^x-forwarded-for:' "$REC/pub-$((n + 1)).req" | tr -d '\r')" "X-Forwarded-For: 6.6.6.6, 127.0.0.1"
eq "5: it is counted" "$(metric sockway_underscore_headers_dropped_total)" 1
printf 'POST /public/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0005;a=b\r\nhello\r\n0\r\nContent-Length: 99\r\nHost: evil\r\n\r\n' >"$TMP/chunked"
raw "$P_SWD" "$TMP/chunked" >"$TMP/chunked.resp"
eq "5: a chunked request: 200" "$(status_of "$TMP/chunked.resp")" 200
eq "5: its body reached the backend re-framed: no leading zeros, extensions or trailers" \
	"$(sed '1,/^\r$/d' "$REC/pub-$((n + 2)).req" | od -An -c | tr -s ' ')" \
	"$(printf '5\r\nhello\r\n0\r\n\r\n' | od -An -c | tr -s ' ')"
curl -s --raw --max-time 10 -o "$TMP/ch.body" "http://127.0.0.1:$P_SWD/ch"
eq "5: a chunked response reaches the client re-framed too" \
	"$(od -An -c <"$TMP/ch.body" | tr -s ' ')" "$(printf '5\r\nhello\r\n0\r\n\r\n' | od -An -c | tr -s ' ')"

# --- 6. the operator's choices: --retry-on-timeout, --shadow-keep-header ----------------------
start_sockwayd "$P_SWD2" "$P_SWD2_ADMIN" --workers 1 --response-timeout 1000 --replica-down 0 \
	--lend 0 --retry-on-timeout --shadow-keep-header Cookie
SWD_ADMIN=$P_SWD2_ADMIN
n=$(($(seen slow1) + $(seen slow2)))
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_SWD2/pay/again")
eq "6: --retry-on-timeout: GET to slow backends: 504" "$code" 504
eq "6: after trying both replicas" $(($(seen slow1) + $(seen slow2) - n)) 2
eq "6: the timeout retry is counted" "$(metric 'sockway_upstream_retries_total{reason="timeout"}')" 1
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' -X POST -d 'amount=1' "http://127.0.0.1:$P_SWD2/pay")
eq "6: but a POST still runs once" "$code $(($(seen slow1) + $(seen slow2) - n))" "504 3"
n=$(seen sh)
curl -s --max-time 10 -o /dev/null -H 'Authorization: Bearer secret' -H 'Cookie: session=s' \
	"http://127.0.0.1:$P_SWD2/shad/k"
wait_until 10 test "$(seen sh)" -gt "$n"
check "6: --shadow-keep-header Cookie keeps the Cookie" grep -qi '^Cookie: session=s' "$REC/sh-$((n + 1)).req"
check "6: and still drops Authorization" sh -c "! grep -qi '^authorization:' '$REC/sh-$((n + 1)).req'"
(lib_exec "$SOCKWAYD" --shadow-keep-header X-Token --listen 127.0.0.1:1 >"$TMP/keep.out" 2>&1)
eq "6: --shadow-keep-header of a field that is not a credential: usage error" "$?" 2

stop_pid "$SWD"
eq "sockwayd exited cleanly" "$STOP_RC" 0
accel_mode_verify 10
finish
