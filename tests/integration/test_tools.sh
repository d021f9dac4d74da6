#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The demo tools end to end, on real sockets and without root: swbackend answers, echoes
# and counts; swclient sends, parses and reports. Every backend listens on 127.0.0.1 port 0
# and the port is read from its "listening on" line, so runs never collide. Everything
# started here is killed by PID at exit.
#
#   OUTPUT=/path/to/build tests/integration/test_tools.sh    (OUTPUT defaults to .output)
cd "$(dirname "$0")/../.." || exit 1
set -u
OUTPUT=${OUTPUT:-.output}
SWBACKEND=$OUTPUT/tools/swbackend
SWCLIENT=$OUTPUT/tools/swclient
PASS=0
FAIL=0
PIDS=()
TMP=$(mktemp -d)

cleanup() {
	local pid

	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

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

# eq DESC GOT WANT
eq() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1" "got '$2', want '$3'"
	fi
}

# ok DESC CMD...: CMD succeeds.
ok() {
	local desc=$1

	shift
	if "$@" >/dev/null; then
		pass "$desc"
	else
		fail "$desc" "failed: $*"
	fi
}

for bin in "$SWBACKEND" "$SWCLIENT"; do
	if [ ! -x "$bin" ]; then
		echo "not ok - $bin is missing: build it first"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
command -v jq >/dev/null || { echo "not ok - jq is missing"; echo "0 passed, 1 failed"; exit 1; }

# backend_start NAME ARGS...: starts swbackend on $LISTEN (127.0.0.1 port 0 by default)
# and waits until it listens; sets PID and PORT (of the first listener), and logs to
# $TMP/NAME.out and $TMP/NAME.err.
backend_start() {
	local name=$1 i

	shift
	"$SWBACKEND" --name "$name" --listen "${LISTEN:-127.0.0.1:0}" "$@" >"$TMP/$name.out" \
		2>"$TMP/$name.err" &
	PID=$!
	PIDS+=("$PID")
	PORT=
	# 60 s at most (1200 x 50 ms), for a busy machine; it listens in milliseconds.
	for i in $(seq 1200); do
		# The backgrounded shell may not have created the log yet.
		PORT=$(sed -n "s/^swbackend $name listening on .*:\([0-9]*\)$/\1/p" \
			"$TMP/$name.err" 2>/dev/null | head -n 1)
		[ -n "$PORT" ] && return 0
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.05
	done
	fail "swbackend $name did not start" "$(head -c 400 "$TMP/$name.err")"
	return 1
}

# client OUT ARGS...: runs swclient ARGS, JSON report in $TMP/OUT, exit code in $RC.
client() {
	local out=$1

	shift
	timeout 60 "$SWCLIENT" "$@" >"$TMP/$out" 2>"$TMP/$out.err"
	RC=$?
}

# j OUT FILTER: a jq filter over the report in $TMP/OUT.
j() {
	jq -r "$2" "$TMP/$1" 2>/dev/null
}

# raw PORT OUT BYTES: sends BYTES (escapes such as \r \n \001 expanded) on one connection;
# the response bytes go to $TMP/OUT and the milliseconds it took to $RAW_MS. swclient reads
# until the server closes, or for 30 s: half of that (RAW_OPEN_MS) tells a connection left
# open from a close on a busy machine.
raw() {
	local start

	printf %b "$3" >"$TMP/$2.req"
	start=$(date +%s%N)
	"$SWCLIENT" --url "http://127.0.0.1:$1/" --raw "$TMP/$2.req" --timeout-ms 30000 >"$TMP/$2" \
		2>"$TMP/$2.err"
	RAW_MS=$((($(date +%s%N) - start) / 1000000))
}

RAW_OPEN_MS=15000

# stats PORT OUT: the backend's /__swbackend/stats JSON into $TMP/OUT.
stats() {
	raw "$1" "$2.raw" 'GET /__swbackend/stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
	tail -n 1 "$TMP/$2.raw" >"$TMP/$2"
}

# header OUT NAME: the value of the first NAME header in raw response $TMP/OUT.
header() {
	tr -d '\r' <"$TMP/$1" | sed -n "s/^$2: //p" | head -n 1
}

# --- one backend, keep-alive, counting --------------------------------------------------
backend_start b1 || exit 1
B1_PID=$PID
B1_PORT=$PORT
URL=http://127.0.0.1:$B1_PORT

client plain --url "$URL/" --requests 1000 --connections 4
eq "1000 requests over 4 connections: exit 0" "$RC" 0
eq "all 1000 sent" "$(j plain .requests)" 1000
eq "all 1000 answered" "$(j plain .responses)" 1000
eq "no errors" "$(j plain .errors)" 0
eq "all 200" "$(j plain '.status["200"]')" 1000
eq "all from b1" "$(j plain '.backends | tojson')" '{"b1":1000}'
eq "no shadow seen" "$(j plain .shadow_seen)" 0
eq "no keys without --keys" "$(j plain 'has("keys")')" false
ok "latency p50 <= p99 <= max" jq -e '.latency_us.p50 <= .latency_us.p99 and
	.latency_us.p99 <= .latency_us.max and .latency_us.p50 > 0' "$TMP/plain"

stats "$B1_PORT" st1
eq "stats counts exactly the 1000, not itself" "$(jq -c . "$TMP/st1")" \
	'{"name":"b1","requests":1000,"shadow_requests":0,"body_bytes":0}'

client keyed --url "$URL/k" --requests 100 --connections 2 --keys 10
eq "keyed: 10 keys reported" "$(j keyed '.keys | keys | length')" 10
eq "keyed: each key reached exactly b1" \
	"$(j keyed '[.keys[] | tojson] | unique | join(" ")')" '["b1"]'
ok "keyed: names key-0 to key-9" jq -e '.keys | has("key-0") and has("key-9") and
	(has("key-10") | not)' "$TMP/keyed"
client prefixed --url "$URL/k" --requests 6 --keys 3 --key-prefix user-
eq "keyed: --key-prefix names the keys" "$(j prefixed '.keys | keys | join(",")')" \
	"user-0,user-1,user-2"

client shadow --url "$URL/s" --requests 20 --connections 2 --header 'X-Sockway-Shadow: 1'
eq "shadow: 20 responses carry X-Seen-Shadow" "$(j shadow .shadow_seen)" 20
stats "$B1_PORT" st2
eq "stats: shadow requests counted apart (1000 + 100 + 6 + 20 requests)" \
	"$(jq -r '[.requests, .shadow_requests] | join(" ")' "$TMP/st2")" "1126 20"

# --- what the backend echoes --------------------------------------------------------------
req='GET /echo/path?q=1 HTTP/1.1\r\nHost: t\r\nX-SERVE-SHARD-KEY: user-42\r\n'
req+='X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Sockway-Shadow: 1\r\n'
req+='TE: trailers\r\nConnection: close, TE\r\nUpgrade: h2c\r\n\r\n'
raw "$B1_PORT" echo "$req"
eq "echo: X-Backend" "$(header echo X-Backend)" b1
eq "echo: X-Seen-Path is the request target" "$(header echo X-Seen-Path)" "/echo/path?q=1"
eq "echo: X-Seen-Shard-Key" "$(header echo X-Seen-Shard-Key)" user-42
eq "echo: X-Seen-Forwarded-For joins every line" "$(header echo X-Seen-Forwarded-For)" \
	"10.0.0.1, 10.0.0.2"
eq "echo: X-Seen-Shadow" "$(header echo X-Seen-Shadow)" 1
eq "echo: X-Seen-Hop lists the hop-by-hop headers" "$(header echo X-Seen-Hop)" \
	"Connection,TE,Upgrade"
eq "echo: Connection: close honoured" "$(header echo Connection)" close
eq "echo: body is the name" "$(tail -n 1 "$TMP/echo")" b1
raw "$B1_PORT" noecho 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
ok "echo: no X-Seen-Shard-Key, -Forwarded-For or -Shadow when not sent" \
	bash -c "! grep -qE '^X-Seen-(Shard-Key|Forwarded-For|Shadow):' '$TMP/noecho'"
eq "echo: X-Seen-Body-Bytes 0 without a body" "$(header noecho X-Seen-Body-Bytes)" 0

# --- request bodies ----------------------------------------------------------------------
stats "$B1_PORT" st3
client post --url "$URL/post" --method POST --body-size 100000 --chunked --requests 10 \
	--connections 2
eq "chunked POST: 10 answered, no errors" "$(j post '[.responses, .errors] | join(" ")')" "10 0"
client postcl --url "$URL/post" --method POST --body-size 4321 --requests 10
eq "Content-Length POST: 10 answered, no errors" \
	"$(j postcl '[.responses, .errors] | join(" ")')" "10 0"
stats "$B1_PORT" st4
eq "stats: body bytes of both POSTs counted" \
	"$(($(jq .body_bytes "$TMP/st4") - $(jq .body_bytes "$TMP/st3")))" $((10 * 100000 + 10 * 4321))

# A chunked body with an extension and a trailer, pipelined with the next request.
req='POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
req+='5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n'
req+='GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
raw "$B1_PORT" chunked "$req"
eq "chunked with trailer: two responses" "$(grep -c '^HTTP/1.1 200 OK' "$TMP/chunked")" 2
eq "chunked with trailer: body bytes counted" "$(header chunked X-Seen-Body-Bytes)" 11
eq "chunked with trailer: next request stays in sync" \
	"$(tr -d '\r' <"$TMP/chunked" | sed -n 's/^X-Seen-Path: //p' | tail -n 1)" /after

req='GET /1 HTTP/1.1\r\nHost: t\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: t\r\n\r\n'
req+='POST /3 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody'
req+='GET /4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
raw "$B1_PORT" pipelined "$req"
eq "pipelined requests answered in order" \
	"$(tr -d '\r' <"$TMP/pipelined" | sed -n 's/^X-Seen-Path: //p' | tr '\n' ' ')" "/1 /2 /3 /4 "

raw "$B1_PORT" http10 'GET /old HTTP/1.0\r\n\r\n'
eq "HTTP/1.0 without keep-alive: Connection: close" "$(header http10 Connection)" close
ok "HTTP/1.0 without keep-alive: closed by the backend ($RAW_MS ms)" test "$RAW_MS" -lt "$RAW_OPEN_MS"

# --- malformed requests ------------------------------------------------------------------
for bad in 'GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc' \
	'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' \
	'GET / HTTP/1.1\r\nBad Name: x\r\n\r\n' \
	'GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' \
	'\001\002garbage\r\n\r\n'; do
	raw "$B1_PORT" bad "$bad"
	eq "malformed $(printf '%q' "$bad" | head -c 40): 400" \
		"$(head -n 1 "$TMP/bad" | tr -d '\r')" "HTTP/1.1 400 Bad Request"
	ok "malformed: connection closed ($RAW_MS ms)" test "$RAW_MS" -lt "$RAW_OPEN_MS"
done
client after --url "$URL/" --requests 10
eq "backend still serves after malformed input" "$(j after .responses)" 10

# --- swclient on its own -----------------------------------------------------------------
"$SWCLIENT" --url "$URL/" --requests 0 >/dev/null 2>&1
eq "swclient: bad usage exits 2" "$?" 2
"$SWCLIENT" --url "ftp://127.0.0.1/" >/dev/null 2>&1
eq "swclient: bad URL exits 2" "$?" 2
backend_start gone
GONE_PORT=$PORT
kill "$PID"
wait "$PID" 2>/dev/null
client refused --url "http://127.0.0.1:$GONE_PORT/" --requests 5 --connections 2
eq "swclient: refused connections are errors, exit 0" \
	"$RC $(j refused '[.requests, .responses, .errors] | join(" ")')" "0 5 0 5"
# (Refused by connect() itself, or by the non-blocking connect's SO_ERROR: a reset.)
eq "swclient: ... and the report says why (connect or reset, nothing else)" \
	"$(j refused '.error_kinds | [.connect + .reset, .closed, .timeout, .bad_response] | join(" ")')" \
	"5 0 0 0"

# --- the 1 MiB backend -------------------------------------------------------------------
backend_start big --body-size 1048576 --threads 2
BIG_PORT=$PORT
client big --url "http://127.0.0.1:$BIG_PORT/" --requests 50 --connections 4
eq "1 MiB bodies: 50 answered, no errors" "$(j big '[.responses, .errors] | join(" ")')" "50 0"
eq "1 MiB bodies: all from big" "$(j big '.backends | tojson')" '{"big":50}'
raw "$BIG_PORT" bigraw 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
eq "1 MiB bodies: Content-Length" "$(header bigraw Content-Length)" 1048576
head_len=$(grep -b -m 1 -a $'^\r$' "$TMP/bigraw" | cut -d: -f1)
eq "1 MiB bodies: exactly 1048576 bytes follow the head" \
	"$(($(stat -c %s "$TMP/bigraw") - head_len - 2))" 1048576
eq "1 MiB bodies: the body starts with the name" \
	"$(tail -c +$((head_len + 3)) "$TMP/bigraw" | head -n 1)" big

# --- response variants -------------------------------------------------------------------
backend_start chunky --chunked --status 503
client chunky --url "http://127.0.0.1:$PORT/" --requests 100 --connections 4
eq "--chunked --status 503: 100 parsed as 503" \
	"$(j chunky '[.responses, .errors, .status["503"]] | join(" ")')" "100 0 100"
backend_start closer --close
client closer --url "http://127.0.0.1:$PORT/" --requests 100 --connections 4
eq "--close: every connection reopened, 100 answered" \
	"$(j closer '[.responses, .errors] | join(" ")')" "100 0"
backend_start multi --threads 4 --listen 127.0.0.1:0
mapfile -t MULTI_PORTS < <(sed -n 's/^swbackend multi listening on .*:\([0-9]*\)$/\1/p' \
	"$TMP/multi.err")
eq "two --listen: two listening lines" "${#MULTI_PORTS[@]}" 2
client multi1 --url "http://127.0.0.1:${MULTI_PORTS[0]}/" --requests 400 --connections 16
client multi2 --url "http://127.0.0.1:${MULTI_PORTS[1]:-1}/" --requests 400 --connections 16
eq "4 threads, two listeners: 800 answered" \
	"$(($(j multi1 .responses) + $(j multi2 .responses)))" 800
stats "${MULTI_PORTS[0]}" stmulti
eq "4 threads: stats add up every thread" "$(jq .requests "$TMP/stmulti")" 800
if grep -q . /proc/net/if_inet6 2>/dev/null; then
	LISTEN='[::1]:0' backend_start v6
	client v6 --url "http://[::1]:$PORT/" --requests 10
	eq "IPv6 listener answers" "$(j v6 '.backends | tojson')" '{"v6":10}'
else
	echo "ok - IPv6 listener # SKIP no IPv6 on this host"
fi

# --- latency -----------------------------------------------------------------------------
backend_start slow --latency-ms 50
SLOW_PORT=$PORT
client slow --url "http://127.0.0.1:$SLOW_PORT/" --requests 40 --connections 4
eq "--latency-ms 50: 40 answered" "$(j slow '[.responses, .errors] | join(" ")')" "40 0"
# The lower bound is the backend's promise; the upper one only a sanity bound (20 times the
# latency: a loaded machine adds milliseconds to a 50 ms wait, not a second).
ok "--latency-ms 50: p50 >= 50000 us ($(j slow .latency_us.p50))" \
	jq -e '.latency_us.p50 >= 50000 and .latency_us.p50 < 1000000' "$TMP/slow"
# Twenty pipelined requests to a backend that answers each 500 ms late: one after the other
# they take 10 s, waited for together 500 ms and what the machine adds. Half of the 10 s
# tells the two apart, however busy the machine.
backend_start slower --latency-ms 500
pipe=
for i in $(seq 19); do
	pipe+="GET /$i HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n"
done
raw "$PORT" slowpipe "${pipe}GET /20 HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n"
eq "--latency-ms 500: pipelined responses stay in order" \
	"$(tr -d '\r' <"$TMP/slowpipe" | sed -n 's/^X-Seen-Path: //p' | tr '\n' ' ')" \
	"$(printf '/%d ' $(seq 20))"
ok "--latency-ms 500: pipelined requests wait together ($RAW_MS ms, 10 s one by one)" \
	test "$RAW_MS" -lt 5000
client timeout --url "http://127.0.0.1:$SLOW_PORT/" --requests 4 --timeout-ms 10
eq "swclient: a response later than --timeout-ms is an error" \
	"$(j timeout '[.requests, .responses, .errors] | join(" ")')" "4 0 4"

# --- SIGTERM -----------------------------------------------------------------------------
stats "$B1_PORT" stfinal
kill -TERM "$B1_PID"
wait "$B1_PID"
eq "SIGTERM: exit 0" "$?" 0
eq "SIGTERM: prints one line" "$(wc -l <"$TMP/b1.out")" 1
eq "SIGTERM: the line is the stats JSON" "$(jq -c . "$TMP/b1.out")" "$(jq -c . "$TMP/stfinal")"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
