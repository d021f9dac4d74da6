#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# sockway top: its frames against what a client sent through sockwayd (an endpoint split
# over a backend that answers 200 and one that answers 503, with a shadow), in plain text,
# in JSON, and live on a real terminal (tmux): fitted to the window, refitted when it
# shrinks, gone with q leaving the terminal as it found it. No check assumes a rate: the
# counters so far are compared exactly with what was sent, and each interval with the
# difference of the counters around it; a rate is only checked against its own interval.
# It runs with the kernel fast path on and off (SOCKWAY_TEST_ACCEL, see lib.sh).
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

SWD_PORT=$(port 0)
SWD_ADMIN=$(port 1)
SWD_URL=http://127.0.0.1:$SWD_PORT
P_OK=$(port 10)
P_BAD=$(port 11)
P_SH=$(port 12)
SOCKWAY_ABS=$(realpath "$SOCKWAY")
# A tmux server of this test's own, on its own socket, killed at exit; the server leaves its
# socket file behind, so that goes too (its path is known once the server runs).
TMUX_CMD=(env TERM=xterm tmux -L "sockway-test-$$" -f /dev/null)
TMUX_SOCKET=
top_cleanup() {
	"${TMUX_CMD[@]}" kill-server 2>/dev/null
	[ -n "$TMUX_SOCKET" ] && rm -f "$TMUX_SOCKET"
	lib_cleanup
}
trap top_cleanup EXIT

# frame ARGS...: one JSON frame, "sockway -j top -n 1 -d 0.1 ARGS", in $TMP/frame.json.
frame() {
	"$SOCKWAY" -j top -n 1 -d 0.1 "$@" >"$TMP/frame.json" 2>"$TMP/frame.err"
}

# row EP BACKEND ROLE FILTER: FILTER (jq) of that row of the last frame; "none" without it.
row() {
	jq -r --arg e "$1" --arg b "$2" --arg r "$3" \
		"[.rows[] | select(.endpoint == \$e and .backend == \$b and .role == \$r) | $4] | first // \"none\"" \
		"$TMP/frame.json"
}

# counted EP_REQUESTS SHADOW_REQUESTS: a new frame shows that many requests of endpoint e's
# primaries (summed) and of its shadow (done or dropped), and N_SOLO of solo's.
counted() {
	frame &&
		[ "$(jq '[.rows[] | select(.endpoint == "e" and .role == "primary") | .counters.requests] | add' "$TMP/frame.json")" = "$1" ] &&
		[ "$(row e sh shadow '.counters.requests + .counters.shadow_drops')" = "$2" ] &&
		[ "$(row solo ok primary .counters.requests)" = "$N_SOLO" ]
}

# usage_refused DESC ARGS...: "sockway top ARGS" exits 2 with one line on stderr, nothing on
# stdout; under -j, {"error": ...} on stdout with the same exit code.
usage_refused() {
	local desc=$1
	shift
	sw top "$@"
	if [ "$RC" -ne 2 ] || [ "$(wc -l <"$TMP/err")" -ne 1 ] || [ -s "$TMP/out" ]; then
		fail "$desc: exit 2, one line on stderr" "exit $RC; stderr: $(cat "$TMP/err"); stdout: $(head -c 200 "$TMP/out")"
		return
	fi
	pass "$desc: exit 2, $(cat "$TMP/err")"
	sw -j top "$@"
	eq "$desc, with -j: exit 2 and an error object" "$RC $(jq -r 'has("error")' "$TMP/out" 2>&1)" "2 true"
}

check "load" "$SOCKWAY" load

# --- arguments ------------------------------------------------------------------------------------
usage_refused "-d 0" -n 1 -d 0
usage_refused "-d -1" -d -1
usage_refused "-d abc" -d abc
usage_refused "-d ''" -d ''
usage_refused "-d 3601" -d 3601
usage_refused "-d nan" -d nan
usage_refused "-d inf" -d inf
usage_refused "-d 1s" -d 1s
usage_refused "-d without a value" -d
usage_refused "-n 0" -n 0
usage_refused "-n -1" -n -1
usage_refused "-n x" -n x
usage_refused "-n 1.5" -n 1.5
usage_refused "-n without a value" -n
usage_refused "an unknown option" -x
usage_refused "two endpoints" e f
sw top help
eq "top help: exit 0, usage on stderr" "$RC $(head -n 1 "$TMP/err")" \
	"0 Usage: sockway top [-n COUNT] [-d SECONDS] [ENDPOINT]"
sw help
check "sockway help lists top" grep -q '^ *sockway top  *\[-n COUNT\] \[-d SECONDS\] \[ENDPOINT\]$' "$TMP/err"
# 3600 is taken: the frame is an hour away, so only a timeout ends it (124), not a refusal.
timeout 5 "$SOCKWAY" top -n 1 -d 3600 >/dev/null 2>&1
eq "-d 3600 is accepted (still waiting for its frame after 5 s)" "$?" 124

# --- policy, backends, sockwayd ---------------------------------------------------------------
accel_mode_enter
start_backend ok "$P_OK"
start_backend bad "$P_BAD" --status 503
start_backend sh "$P_SH"
check "backend create ok" "$SOCKWAY" backend create ok "127.0.0.1:$P_OK"
check "backend create bad" "$SOCKWAY" backend create bad "127.0.0.1:$P_BAD"
check "backend create sh" "$SOCKWAY" backend create sh "127.0.0.1:$P_SH"
check "endpoint e" "$SOCKWAY" endpoint create e --route /e --backend ok
check "e: ok=0.5 bad=0.5" "$SOCKWAY" traffic set e ok=0.5 bad=0.5
check "e: every request shadowed to sh" "$SOCKWAY" shadow set e sh 1
check "endpoint solo" "$SOCKWAY" endpoint create solo --route /solo --backend ok
start_sockwayd "$SWD_PORT" "$SWD_ADMIN" --workers 2 || { finish; exit 1; }

sw top nosuch -n 1
eq "an endpoint that does not exist: exit 1, one line" "$RC $(wc -l <"$TMP/err")" "1 1"

# --- counters so far, exactly -----------------------------------------------------------------
check "a frame before any traffic" frame
eq "it has a row per cell, sorted by name when nothing moves" \
	"$(jq -r '[.rows[] | "\(.endpoint)/\(.backend)/\(.role)"] | join(" ")' "$TMP/frame.json")" \
	"e/bad/primary e/ok/primary e/sh/shadow solo/ok/primary"
eq "and every count 0" "$(jq '[.rows[].counters.requests] | add' "$TMP/frame.json")" 0

N=200
N_SOLO=40
client /e --requests "$N"
C200=$(cj '.status["200"] // 0')
C503=$(cj '.status["503"] // 0')
eq "the client got $N answers, 200 or 503" "$((C200 + C503)) $(cj .errors)" "$N 0"
client /solo --requests "$N_SOLO"
if ! wait_until "$WAIT_S" counted "$N" "$N"; then
	fail "top counts the $N requests of e, their $N shadows and the $N_SOLO of solo" "$(head -c 600 "$TMP/frame.json")"
fi
eq "e/ok: requests, 2xx = the client's 200s" \
	"$(row e ok primary '[.counters.requests, .counters.status["2xx"]] | @tsv')" "$(printf '%s\t%s' "$C200" "$C200")"
eq "e/bad: requests, 5xx = the client's 503s" \
	"$(row e bad primary '[.counters.requests, .counters.status["5xx"]] | @tsv')" "$(printf '%s\t%s' "$C503" "$C503")"
eq "e/sh: $N shadows, none dropped, status matched for the 200s only" \
	"$(row e sh shadow '[.counters.requests, .counters.shadow_drops, .counters.shadow_match] | @tsv')" \
	"$(printf '%s\t0\t%s' "$N" "$C200")"
eq "totals: the primaries' requests" "$(jq .totals.requests "$TMP/frame.json")" $((N + N_SOLO))
ACCEL=$(jq '[.rows[] | select(.endpoint == "e") | .counters.accel_bytes] | add' "$TMP/frame.json")
if [ "$ACCEL_MODE" = on ]; then
	ge "accel on: e's rows count bytes the kernel moved" "$ACCEL" 1
else
	eq "accel off: e's rows count no byte the kernel moved" "$ACCEL" 0
fi

# --- plain frames and JSON frames: -n 2 -d 0.5 ---------------------------------------------------
sw top -n 2 -d 0.5
eq "top -n 2: exit 0" "$RC" 0
eq "two frames, each from its header line" "$(grep -c '^sockway top  ' "$TMP/out")" 2
eq "each with its column titles" "$(grep -c '^ENDPOINT  *BACKEND  *ROLE  *REQ/S  *REQUESTS ' "$TMP/out")" 2
eq "and a blank line after it" "$(grep -c '^$' "$TMP/out")" 2
eq "no terminal control in plain frames" "$(grep -c $'\033' "$TMP/out")" 0
eq "plain: e/bad's REQUESTS column in each frame" \
	"$(awk '$1 == "e" && $2 == "bad" && $3 == "primary" { print $5 }' "$TMP/out" | tr '\n' ' ')" "$C503 $C503 "
eq "plain: e/ok's REQUESTS column in each frame" \
	"$(awk '$1 == "e" && $2 == "ok" && $3 == "primary" { print $5 }' "$TMP/out" | tr '\n' ' ')" "$C200 $C200 "
eq "plain: idle intervals show no share and no latency (-)" \
	"$(awk '$1 == "e" && $2 == "bad" { print $6, $7, $8, $9, $10 }' "$TMP/out" | sort -u)" "- - - - -"

sw -j top -n 2 -d 0.5
eq "-j top -n 2: exit 0, two lines" "$RC $(wc -l <"$TMP/out")" "0 2"
eq "each line one JSON frame" "$(jq -c 'has("rows") and has("interval_s") and has("generation")' "$TMP/out" | tr '\n' ' ')" "true true "
eq "both frames: e/bad's and e/ok's counters so far" \
	"$(jq -r '[.rows[] | select(.endpoint == "e" and .role == "primary") | "\(.backend)=\(.counters.requests)"] | sort | join(",")' "$TMP/out" | tr '\n' ' ')" \
	"bad=$C503,ok=$C200 bad=$C503,ok=$C200 "
eq "both frames: nothing in the intervals, rates 0, shares null" \
	"$(jq -c '[.rows[] | [.interval.requests, .requests_per_s, .status_share]] | unique' "$TMP/out" | sort -u)" "[[0,0,null]]"
eq "each frame's interval measured (> 0)" "$(jq -c '.interval_s > 0' "$TMP/out" | tr '\n' ' ')" "true true "

sw -j top -n 1 -d 0.1 solo
eq "top solo: only solo's rows" "$(jq -r '.endpoint + ": " + ([.rows[] | .endpoint + "/" + .backend] | join(" "))' "$TMP/out")" "solo: solo/ok"

# --- intervals around a burst -----------------------------------------------------------------
# A top left running prints a frame every 0.2 s; the burst comes after its first frame and
# the run ends once a frame has counted all of it. However the frames fall, the intervals
# must add up to what the counters gained, and a rate must be its interval's count divided
# by its measured length.
spawn live "$SOCKWAY" -j top -d 0.2
LIVE_PID=$SPAWNED
live_frames() { [ "$(wc -l <"$TMP/live.log")" -ge "$1" ]; }
wait_until "$WAIT_S" live_frames 1 || fail "the running top printed its first frame" "$(head -c 300 "$TMP/live.log")"
B=100
client /e --requests "$B"
B200=$(cj '.status["200"] // 0')
N=$((N + B))
C200=$((C200 + B200))
wait_until "$WAIT_S" counted "$N" "$N" || fail "the burst is counted" "$(head -c 600 "$TMP/frame.json")"
# An endpoint created while top runs shows, by its name, once the generation moves.
check "endpoint late, created while top runs" "$SOCKWAY" endpoint create late --route /late --backend ok
client /late --requests 10
live_late() {
	tail -n 1 "$TMP/live.log" | jq -e '[.rows[] | select(.endpoint == "late" and .backend == "ok")][0].counters.requests == 10' >/dev/null &&
		tail -n 1 "$TMP/live.log" | jq -e --argjson n "$N" '[.rows[] | select(.endpoint == "e" and .role == "primary") | .counters.requests] | add == $n' >/dev/null
}
wait_until "$WAIT_S" live_late || fail "the running top shows endpoint late by its name, and its 10 requests" "$(tail -n 1 "$TMP/live.log" | head -c 600)"
stop_pid "$LIVE_PID" TERM
eq "SIGTERM ends the running top, exit 0" "$STOP_RC" 0
# Only whole lines count: the last one may have been cut by the signal (it is not: top
# writes a frame at once, but the check does not depend on it).
jq -c . "$TMP/live.log" >"$TMP/live.json" 2>/dev/null
FRAMES=$(wc -l <"$TMP/live.json")
ge "the running top printed frames (>= 3)" "$FRAMES" 3
eq "every line of it a JSON frame" "$FRAMES" "$(wc -l <"$TMP/live.log")"
# none DESC FILTER: jq -s FILTER over the running top's frames runs and prints nothing (it
# prints what breaks the rule). JSON numbers carry 9 significant digits: the comparisons of
# computed values allow for that.
none() {
	local out
	if ! out=$(jq -s -r "$2" "$TMP/live.json" 2>&1); then
		fail "$1" "jq: $out"
	elif [ -n "$out" ]; then
		fail "$1" "$(head -n 3 <<<"$out")"
	else
		pass "$1"
	fi
}
# Per row key, each frame's interval against the counters of the frame before it.
none "each interval = the counters' growth since the frame before" '
	def key: "\(.endpoint)/\(.backend)/\(.role)";
	def fields: [.requests, .status["2xx"], .status["5xx"], .shadow_match, .shadow_drops,
		.accel_bytes, .bytes_to_client, (.latency | map(.count) | add)];
	. as $f | range(1; length) as $i | $f[$i].rows[] as $r |
	([$f[$i - 1].rows[] | select(key == ($r | key))] | first) as $p |
	select($p != null) |
	($r.counters | fields) as $now | ($p.counters | fields) as $was |
	select([range(0; $now | length) as $k | $now[$k] - $was[$k]] != ($r.interval | fields)) |
	"frame \($i) \($r | key): interval \($r.interval | fields), counters \($now) after \($was)"'
eq "e's intervals add up to the burst ($B)" \
	"$(jq -s '[.[1:][].rows[] | select(.endpoint == "e" and .role == "primary") | .interval.requests] | add' "$TMP/live.json")" "$B"
ge "so some frame shows e's requests per second above 0" \
	"$(jq -s '[.[].rows[] | select(.endpoint == "e") | .requests_per_s] | max' "$TMP/live.json")" 0.000001
none "each rate = its interval's count / the interval measured" '
	.[] | .interval_s as $dt | .rows[] |
	select(((.requests_per_s - .interval.requests / $dt) | fabs) > 1e-6 * (1 + .requests_per_s) or
		((.accel_bytes_per_s - .interval.accel_bytes / $dt) | fabs) > 1e-6 * (1 + .accel_bytes_per_s)) |
	"\(.endpoint)/\(.backend): \(.requests_per_s) for \(.interval.requests) in \($dt)"'
none "totals: requests per second = the primaries' sum" '
	.[] | select(((.totals.requests_per_s -
		([.rows[] | select(.role == "primary") | .requests_per_s] | add // 0)) | fabs) >
		1e-6 * (1 + .totals.requests_per_s)) |
	"\(.time): \(.totals.requests_per_s)"'
none "shares: of the interval's responses, null when it had none" '
	.[].rows[] | (.interval.status | [.[]] | add) as $n |
	select(if $n == 0 then .status_share != null
		else ((.status_share["5xx"] - .interval.status["5xx"] / $n) | fabs) > 1e-8 or
			((.status_share["2xx"] - .interval.status["2xx"] / $n) | fabs) > 1e-8 end) |
	"\(.endpoint)/\(.backend)/\(.role): \(.status_share) of \(.interval.status)"'
eq "in the burst's frames: e/bad all 5xx, e/ok all 2xx" \
	"$(jq -s -r '.[].rows[] | select(.endpoint == "e" and .role == "primary" and .status_share != null) |
		"\(.backend) \(.status_share["2xx"]) \(.status_share["5xx"])"' "$TMP/live.json" | sort -u | tr '\n' ',')" \
	"bad 0 1,ok 1 0,"
none "shadow match share = the interval's matches / responses (primaries: null)" '
	.[].rows[] | (.interval.status | [.[]] | add) as $n |
	select(if .role == "primary" or $n == 0 then .shadow_match_share != null
		else ((.shadow_match_share - .interval.shadow_match / $n) | fabs) > 1e-8 end) |
	"\(.endpoint)/\(.backend)/\(.role): \(.shadow_match_share)"'
ge "the generation moved for endpoint late" \
	"$(jq -s '.[-1].generation - .[0].generation' "$TMP/live.json")" 2

# Not a terminal and no -n: plain frames until a signal.
spawn plain "$SOCKWAY" top -d 0.2
PLAIN_PID=$SPAWNED
plain_frames() { [ "$(grep -c '^sockway top  ' "$TMP/plain.log")" -ge 2 ]; }
wait_until "$WAIT_S" plain_frames || fail "stdout not a terminal: plain frames go on" "$(head -c 300 "$TMP/plain.log")"
stop_pid "$PLAIN_PID" TERM
eq "SIGTERM ends them, exit 0" "$STOP_RC" 0
eq "with no terminal control in them" "$(grep -c $'\033' "$TMP/plain.log")" 0

# --- a real terminal: tmux ------------------------------------------------------------------
# The shell in the pane runs top and then says how it exited; after q, the same shell runs
# stty, which shows the terminal's modes as top left them (an interactive bash keeps what
# it finds).
tm() {
	"${TMUX_CMD[@]}" "$@"
}
pane() {
	tm capture-pane -p -J -t top
}
# pane_requests EP BACKEND ROLE: that row's REQUESTS column in the pane.
pane_requests() {
	pane | awk -v e="$1" -v b="$2" -v r="$3" '$1 == e && $2 == b && $3 == r { print $5 }'
}
pane_shows_requests() {
	[ "$(pane_requests "$@")" = "$4" ]
}
# pane_fits WIDTH HEIGHT: the view fills no more than the pane, no line wrapped (capture -J
# joins wrapped lines), and it starts with the header at the top.
pane_fits() {
	[ "$(tm display -p -t top '#{pane_width}x#{pane_height}')" = "$1x$2" ] &&
		[ "$(pane | awk -v w="$1" 'length > w' | wc -l)" = 0 ] &&
		[ "$(pane | sed '/^$/d' | wc -l)" -le "$2" ] &&
		pane | head -n 1 | grep -q '^sockway top (q quits)  '
}
check "endpoint tm (no request yet)" "$SOCKWAY" endpoint create tm --route /tm --backend ok
if tm new-session -d -s top -x 120 -y 30 -e "SOCKWAY_PIN_ROOT=$SOCKWAY_PIN_ROOT" \
	"bash --norc --noprofile"; then
	TMUX_SOCKET=$(tm display -p -t top '#{socket_path}')
	tm send-keys -t top -l "PS1='\$ '; $SOCKWAY_ABS top -d 0.5; echo top-exit=\$?"
	tm send-keys -t top Enter
	wait_until "$WAIT_S" pane_shows_requests tm ok primary 0 ||
		fail "the view shows endpoint tm with 0 requests" "$(pane)"
	eq "the view is on the alternate screen" "$(tm display -p -t top '#{alternate_on}')" 1
	client /tm --requests 20
	if wait_until "$WAIT_S" pane_shows_requests tm ok primary 20; then
		pass "after 20 requests the view shows tm/ok with 20"
	else
		fail "after 20 requests the view shows tm/ok with 20" "$(pane)"
	fi
	eq "the rows of e are there by name" "$(pane | awk '$1 == "e" { print $2 "/" $3 }' | sort | tr '\n' ' ')" \
		"bad/primary ok/primary sh/shadow "
	check "at 120x30 the view fits" pane_fits 120 30
	check "every column shown at 120 wide" grep -q 'ACCEL/S$' < <(pane | sed -n 2p)
	# Six rows do not fit in 6 lines: three rows, then a line that counts the rest; and
	# columns that do not fit in 60 are left out whole.
	tm resize-window -t top -x 60 -y 6
	pane_refitted() {
		pane_fits 60 6 && pane | grep -qx '\.\.\. 3 more rows'
	}
	if wait_until "$WAIT_S" pane_refitted; then
		pass "resized to 60x6: the view still fits, 3 rows and a line counting 3 more"
	else
		fail "resized to 60x6: the view still fits, 3 rows and a line counting 3 more" "$(pane | cat -A | head -c 800)"
	fi
	eq "at 60 wide the titles end with a whole column" "$(pane | sed -n 2p | awk '{ print $NF }')" "2XX%"
	tm resize-window -t top -x 100 -y 20
	tm send-keys -t top q
	pane_says_exit() { pane | grep -qx 'top-exit=0'; }
	if wait_until "$WAIT_S" pane_says_exit; then
		pass "q quits, exit 0"
	else
		fail "q quits, exit 0" "$(pane | tail -n 5)"
	fi
	eq "the alternate screen is left, the cursor shown again" \
		"$(tm display -p -t top '#{alternate_on} #{cursor_flag}')" "0 1"
	tm send-keys -t top -l "stty -a >$TMP/stty.out; echo stty-done"
	tm send-keys -t top Enter
	pane_says_stty() { pane | grep -qx 'stty-done'; }
	wait_until "$WAIT_S" pane_says_stty || fail "stty ran in the pane" "$(pane | tail -n 5)"
	check "the terminal is canonical again (icanon)" grep -qE '(^| )icanon( |;|$)' "$TMP/stty.out"
	check "and echoes again (echo)" grep -qE '(^| )echo( |;|$)' "$TMP/stty.out"
	# Again, ended by Ctrl-C (SIGINT) this time.
	tm send-keys -t top -l "$SOCKWAY_ABS top -d 0.5; echo top2-exit=\$?"
	tm send-keys -t top Enter
	pane_on_alternate() { [ "$(tm display -p -t top '#{alternate_on}')" = 1 ]; }
	wait_until "$WAIT_S" pane_on_alternate || fail "top runs again on the alternate screen" "$(pane)"
	tm send-keys -t top C-c
	pane_says_exit2() { pane | grep -qx 'top2-exit=0'; }
	if wait_until "$WAIT_S" pane_says_exit2; then
		pass "Ctrl-C quits, exit 0"
	else
		fail "Ctrl-C quits, exit 0" "$(pane | tail -n 5)"
	fi
	tm send-keys -t top -l "stty -a >$TMP/stty2.out; echo stty2-done"
	tm send-keys -t top Enter
	pane_says_stty2() { pane | grep -qx 'stty2-done'; }
	wait_until "$WAIT_S" pane_says_stty2 || fail "stty ran in the pane again" "$(pane | tail -n 5)"
	eq "after Ctrl-C: the normal screen, the cursor, icanon and echo" \
		"$(tm display -p -t top '#{alternate_on} #{cursor_flag}') $(grep -oE '(^| )-?(icanon|echo)( |;|$)' "$TMP/stty2.out" | tr -d ' ;' | sort | tr '\n' ' ')" \
		"0 1 echo icanon "
else
	fail "tmux starts a session on its own socket"
fi

accel_mode_verify 100
finish
