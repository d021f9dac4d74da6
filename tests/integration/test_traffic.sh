#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Traffic through sockwayd, set with the sockway CLI, answered by real swbackends: the seed's
# examples (50/50 split, 1% canary, incremental rollout, rollback, two shadows), shard-key
# affinity as `sockway explain` predicts it, per-request choice on one keep-alive
# connection, shadows that hang or are down, the counters against what the backends and the
# client counted, changes that must reach every worker while other commits run, and weight
# changes 50 times a second under load. It runs with the kernel fast path on (every socket
# here accelerated) and off: SOCKWAY_TEST_ACCEL, see lib.sh.
#
# Every fraction is bounded from the live slot shares (`sockway -j traffic show`): an
# observed count of n draws with probability p must lie within n*p +- (5.5*sqrt(n*p*(1-p)) + 1),
# which a correct router misses about 4e-8 of the time.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

SWD_PORT=$(port 0)
SWD_ADMIN=$(port 1)
SWD_URL=http://127.0.0.1:$SWD_PORT

# name -> port of every backend this test runs.
declare -A BPORT=(
	[default_backend]=$(port 10) [canary_backend]=$(port 11) [new_backend]=$(port 12)
	[shadow_a]=$(port 13) [shadow_b]=$(port 14) [b1]=$(port 15) [b2]=$(port 16) [b3]=$(port 17)
	[hang]=$(port 18) [down]=$(port 19)
)

# snapshot: every running backend's counters, kept for delta.
declare -A SNAP
snapshot() {
	local b
	for b in "${!BPORT[@]}"; do
		[ "$b" = down ] && continue
		SNAP[$b.requests]=$(backend_count "${BPORT[$b]}" requests)
		SNAP[$b.shadow_requests]=$(backend_count "${BPORT[$b]}" shadow_requests)
	done
}
# delta BACKEND FIELD: how much FIELD (requests, shadow_requests) grew since the snapshot.
delta() {
	echo $(($(backend_count "${BPORT[$1]}" "$2") - SNAP[$1.$2]))
}

# only_to DESC N BACKEND: the last client run got N answers, all 200, all from BACKEND.
only_to() {
	eq "$1: $2 answers, all 200, all from $3" \
		"$(cj '[.responses, .errors, .status["200"], .backends[$b]] | @tsv' --arg b "$3" 2>/dev/null)" \
		"$(printf '%s\t0\t%s\t%s' "$2" "$2" "$2")"
}

# split DESC ENDPOINT N BACKEND...: the last client run of N requests is all 200 and each
# BACKEND's count is within the bound of its live share; no other backend answered.
split() {
	local desc=$1 ep=$2 n=$3 b others
	shift 3
	eq "$desc: $n answers, all 200, no errors" "$(cj '[.responses, .errors, .status["200"]] | @tsv')" \
		"$(printf '%s\t0\t%s' "$n" "$n")"
	for b in "$@"; do
		within "$desc: $b's count" "$(cj ".backends[\"$b\"] // 0")" "$n" "$(share "$ep" "$b")"
	done
	others=$(cj '[.backends | keys[] | select(IN($want[]) | not)] | join(",")' \
		--argjson want "$(printf '%s\n' "$@" | jq -R . | jq -sc .)")
	eq "$desc: no other backend answered" "$others" ""
}

check "load" "$SOCKWAY" load
accel_mode_enter
for b in "${!BPORT[@]}"; do
	[ "$b" = down ] && continue
	if [ "$b" = hang ]; then
		start_backend "$b" "${BPORT[$b]}" --latency-ms 10000
	else
		start_backend "$b" "${BPORT[$b]}"
	fi
	check "backend create $b" "$SOCKWAY" backend create "$b" "127.0.0.1:${BPORT[$b]}"
done
# Nothing listens on the "down" backend's port.
check "backend create down (nothing listening)" "$SOCKWAY" backend create down "127.0.0.1:${BPORT[down]}"
start_sockwayd "$SWD_PORT" "$SWD_ADMIN" --workers 2 || { finish; exit 1; }

# --- 50/50 split, and the counters against the backends and the client --------------------------
check "endpoint fifty" "$SOCKWAY" endpoint create fifty --route /fifty --backend default_backend
check "fifty 0.5/0.5" "$SOCKWAY" traffic set fifty default_backend=0.5 canary_backend=0.5
snapshot
client /fifty --requests 4000 --connections 8
split "50/50" fifty 4000 default_backend canary_backend
for b in default_backend canary_backend; do
	seen=$(cj ".backends[\"$b\"] // 0")
	eq "50/50 counters: $b counted what the client saw" "$(delta $b requests)" "$seen"
	eq "50/50 counters: stats requests of (fifty, $b, primary) = the client's count" \
		"$(cell fifty $b primary .requests)" "$seen"
	eq "50/50 counters: stats 2xx of (fifty, $b, primary) = the client's count" \
		"$(cell fifty $b primary '.status["2xx"]')" "$seen"
	eq "50/50 counters: no upstream errors for $b" "$(cell fifty $b primary '[.errors[]] | add')" 0
done

# --- 1% canary, then a third backend, promotion and rollback (README walkthrough) ---------------
check "endpoint canary" "$SOCKWAY" endpoint create canary --route /canary-test --backend default_backend
check "canary 0.99/0.01" "$SOCKWAY" traffic set canary default_backend=0.99 canary_backend=0.01
client /canary-test --requests 20000 --connections 16
split "1% canary" canary 20000 default_backend canary_backend
check "canary 0.98/0.01/0.01" "$SOCKWAY" traffic set canary default_backend=0.98 canary_backend=0.01 new_backend=0.01
client /canary-test --requests 20000 --connections 16
split "0.98/0.01/0.01" canary 20000 default_backend canary_backend new_backend
check "promote new_backend=1" "$SOCKWAY" traffic set canary new_backend=1
client /canary-test --requests 1000 --connections 8
only_to "promoted" 1000 new_backend
check "roll back default_backend=1" "$SOCKWAY" traffic set canary default_backend=1
client /canary-test --requests 1000 --connections 8
only_to "rolled back" 1000 default_backend

# --- incremental rollout 0.9/0.1 -> 0.8/0.2 -> 0.5/0.5 -> 1.0, and rollback ---------------------
check "endpoint incremental" "$SOCKWAY" endpoint create incremental --route /incremental --backend default_backend
for step in 0.9:0.1 0.8:0.2 0.5:0.5; do
	check "incremental ${step%:*}/${step#*:}" "$SOCKWAY" traffic set incremental \
		default_backend="${step%:*}" new_backend="${step#*:}"
	client /incremental --requests 4000 --connections 8
	split "incremental ${step%:*}/${step#*:}" incremental 4000 default_backend new_backend
done
check "incremental new_backend=1" "$SOCKWAY" traffic set incremental new_backend=1
client /incremental --requests 1000 --connections 8
only_to "incremental 1.0" 1000 new_backend
check "incremental rollback default_backend=1" "$SOCKWAY" traffic set incremental default_backend=1
client /incremental --requests 1000 --connections 8
only_to "incremental rollback" 1000 default_backend

# --- two shadows at 0.5 and 0.1 -----------------------------------------------------------------
check "endpoint shadowed" "$SOCKWAY" endpoint create shadowed --route /shadowed --backend default_backend
check "shadow 0.5 to shadow_a" "$SOCKWAY" shadow set shadowed shadow_a 0.5
check "shadow 0.1 to shadow_b" "$SOCKWAY" shadow set shadowed shadow_b 0.1
snapshot
client /shadowed --requests 4000 --connections 8
only_to "shadowed: the client sees only the primary" 4000 default_backend
eq "shadowed: the client never saw a shadow response" "$(cj .shadow_seen)" 0
# Shadow copies go out, and are counted, after the client has its answer: wait until each
# shadow backend's count of copies received equals sockwayd's count of copies answered (no
# copy between the two any more).
shadows_answered() {
	local b
	for b in shadow_a shadow_b; do
		[ "$(delta $b shadow_requests)" = "$(cell shadowed $b shadow .requests)" ] || return 1
	done
}
wait_until "$WAIT_S" shadows_answered
within "shadow_a got a fraction 0.5 of the requests" "$(delta shadow_a shadow_requests)" 4000 0.5
within "shadow_b got a fraction 0.1 of the requests" "$(delta shadow_b shadow_requests)" 4000 0.1
eq "shadow_a got nothing but shadows" "$(delta shadow_a requests)" "$(delta shadow_a shadow_requests)"
eq "shadow_b got nothing but shadows" "$(delta shadow_b requests)" "$(delta shadow_b shadow_requests)"
eq "shadowed counters: default_backend counted the 4000" "$(delta default_backend requests)" 4000
eq "shadowed counters: stats (shadowed, default_backend, primary) requests" \
	"$(cell shadowed default_backend primary .requests)" 4000
eq "shadowed counters: stats (shadowed, default_backend, primary) 2xx" \
	"$(cell shadowed default_backend primary '.status["2xx"]')" 4000
for b in shadow_a shadow_b; do
	# The shadow's counters are written when its response ends: poll until they settle.
	want=$(delta $b shadow_requests)
	wait_until "$WAIT_S" cell_is shadowed $b shadow .requests "$want"
	eq "shadowed counters: stats (shadowed, $b, shadow) requests = $b's shadow_requests" \
		"$(cell shadowed $b shadow .requests)" "$want"
	eq "shadowed counters: stats (shadowed, $b, shadow) 2xx = $b's shadow_requests" \
		"$(cell shadowed $b shadow '.status["2xx"]')" "$want"
	eq "shadowed counters: every $b status matched the primary's" \
		"$(cell shadowed $b shadow .shadow_match)" "$want"
	eq "shadowed counters: no $b shadow dropped" "$(cell shadowed $b shadow .shadow_drops)" 0
	eq "shadowed counters: no primary cell for $b" "$(cell shadowed $b primary .requests)" 0
done

# --- affinity: 1000 keys x 10 requests, as `sockway explain` predicts ---------------------------
check "endpoint affinity" "$SOCKWAY" endpoint create affinity --route /affinity --backend b1
check "affinity 0.5/0.5" "$SOCKWAY" traffic set affinity b1=0.5 b2=0.5
keys=()
for i in $(seq 0 999); do
	keys+=(--key "key-$i")
done
"$SOCKWAY" -j explain /affinity "${keys[@]}" >"$TMP/explain1.json"
eq "explain predicts 1000 keys" "$(jq length "$TMP/explain1.json")" 1000
# mismatches EXPLAIN: keys whose requests did not all reach the one predicted backend.
mismatches() {
	jq -n --slurpfile c "$TMP/client.json" --slurpfile x "$1" \
		'[$x[0][] | select(($c[0].keys[.key] // []) != [.backend]) | .key] | length'
}
client /affinity --keys 1000 --requests 10000 --connections 16
eq "affinity: 10000 answers, all 200" "$(cj '[.responses, .status["200"]] | @tsv')" "$(printf '10000\t10000')"
eq "affinity: 1000 keys seen" "$(cj '.keys | length')" 1000
eq "affinity: every key reached exactly the backend explain predicts" "$(mismatches "$TMP/explain1.json")" 0
within "affinity: b1's share of the keys" "$(jq '[.[] | select(.backend == "b1")] | length' "$TMP/explain1.json")" 1000 "$(share affinity b1)"
cp "$TMP/client.json" "$TMP/affinity1.json"

check "affinity 0.3/0.5/0.2 (b3 joins)" "$SOCKWAY" traffic set affinity b1=0.3 b2=0.5 b3=0.2
moved=$("$SOCKWAY" -j traffic show affinity | jq -r .last_change_moved_slots)
"$SOCKWAY" -j explain /affinity "${keys[@]}" >"$TMP/explain2.json"
client /affinity --keys 1000 --requests 10000 --connections 16
eq "affinity after the change: 10000 answers, all 200" "$(cj '[.responses, .status["200"]] | @tsv')" "$(printf '10000\t10000')"
eq "affinity after the change: every key reached its new prediction" "$(mismatches "$TMP/explain2.json")" 0
obs_moved=$(jq -n --slurpfile a "$TMP/affinity1.json" --slurpfile b "$TMP/client.json" \
	'[$a[0].keys | keys[] as $k | select($a[0].keys[$k] != $b[0].keys[$k])] | length')
pred_moved=$(jq -n --slurpfile a "$TMP/explain1.json" --slurpfile b "$TMP/explain2.json" \
	'[range($a[0] | length) as $i | select($a[0][$i].backend != $b[0][$i].backend)] | length')
eq "affinity: the keys that moved are those explain moved" "$obs_moved" "$pred_moved"
le "affinity: keys moved ($obs_moved of 1000) <= the moved slots' fraction + tolerance" "$obs_moved" \
	"$(awk -v m="$moved" 'BEGIN { p = m / 16384; print 1000 * p + 5.5 * sqrt(1000 * p * (1 - p)) + 1 }')"
check "affinity: some keys moved to b3" test "$obs_moved" -gt 0

# --- per-request choice on one keep-alive connection --------------------------------------------
check "endpoint perreq" "$SOCKWAY" endpoint create perreq --route /perreq --backend b1
check "perreq 0.7/0.3" "$SOCKWAY" traffic set perreq b1=0.7 b2=0.3
c0=$(metric sockway_connections_total)
client /perreq --requests 2000 --connections 1
eq "one connection carried the 2000 requests" "$(($(metric sockway_connections_total) - c0))" 1
split "one keep-alive connection" perreq 2000 b1 b2

# --- a change reaches every worker, even one that was idle, while other commits run ------------
# Requests sent after `sockway traffic set` (or `endpoint create`) returned must follow it,
# also on a worker whose last request came long before, and while commits of an unrelated
# endpoint keep the generation odd much of the time. New connections (--no-keepalive) spread
# the requests over sockwayd's workers.
check "endpoint storm" "$SOCKWAY" endpoint create storm --route /storm --backend b1
check "endpoint fresh (created after the workers last routed)" "$SOCKWAY" endpoint create fresh --route /fresh --backend b1
# The storm runs until its flag file is removed (600 s at most, should the test die), and
# counts its commits in storm.n: the test goes on once it has made a few.
touch "$TMP/storm.on"
(
	i=0
	end=$((SECONDS + 600))
	while [ -e "$TMP/storm.on" ] && [ "$SECONDS" -lt "$end" ]; do
		if [ $((i % 2)) -eq 0 ]; then
			"$SOCKWAY" traffic set storm b1=0.5 b2=0.5 >/dev/null
		else
			"$SOCKWAY" traffic set storm b1=0.9 b2=0.1 >/dev/null
		fi
		i=$((i + 1))
		echo "$i" >"$TMP/storm.n"
	done
) &
storm=$!
LIB_PIDS+=("$storm")
# storm_made N: the storm has committed N times or more.
storm_made() {
	[ "$(cat "$TMP/storm.n" 2>/dev/null || echo 0)" -ge "$1" ]
}
wait_until "$WAIT_S" storm_made 3
client /fresh --no-keepalive --requests 400 --connections 4
only_to "a new endpoint under a commit storm (every worker)" 400 b1
# Forty rollouts and rollbacks of fresh between b1 and b2 during the storm: after each
# `traffic set` returned, 40 requests must all reach the backend it named.
stale=""
for i in $(seq 1 40); do
	target=b$((1 + i % 2))
	"$SOCKWAY" traffic set fresh "$target=1" >/dev/null || stale="$stale set$i-refused"
	client /fresh --no-keepalive --requests 40 --connections 4 || break
	got=$(cj '[.status["200"] // 0, .backends[$t] // 0] | @tsv' --arg t "$target")
	[ "$got" = "$(printf '40\t40')" ] || stale="$stale round$i:$target:$(cj -c '{status, backends}')"
done
rm -f "$TMP/storm.on"
wait "$storm"
eq "after each of 40 changes of fresh under the storm, every request follows it" "$stale" ""

# --- changes under load: 250 weight flips, at most 50 a second, 64 connections --------------------
# The client runs from before the first flip to after the last (it is stopped by SIGTERM;
# the duration is only a cap); the flips start once it has traffic going. 250 of them
# happen whatever the machine's speed: a busy one only takes longer.
check "endpoint churn" "$SOCKWAY" endpoint create churn --route /churn --backend b1
check "churn b1=0.9 b2=0.1 b3=0" "$SOCKWAY" traffic set churn b1=0.9 b2=0.1 b3=0
snapshot
nice -n 10 "$SWCLIENT" --url "$SWD_URL/churn" --connections 64 --duration-ms 600000 \
	--timeout-ms 30000 >"$TMP/churn.json" 2>"$TMP/churn.err" &
churn_client=$!
LIB_PIDS+=("$churn_client")
# b1_answered N: b1 answered N requests or more since the snapshot.
b1_answered() {
	[ "$(delta b1 requests)" -ge "$1" ]
}
wait_until "$WAIT_S" b1_answered 64
flips=0
flips_ok=0
t0=${EPOCHREALTIME/./}
while [ "$flips" -lt 250 ]; do
	if [ $((flips % 2)) -eq 0 ]; then
		w="b1=0.1 b2=0.9 b3=0"
	else
		w="b1=0.9 b2=0.1 b3=0"
	fi
	# shellcheck disable=SC2086
	"$SOCKWAY" traffic set churn $w >/dev/null 2>>"$TMP/churn-set.err" && flips_ok=$((flips_ok + 1))
	flips=$((flips + 1))
	# No faster than 50 a second: sleep until the next 20 ms mark, if it is still ahead.
	left=$((t0 + flips * 20000 - ${EPOCHREALTIME/./}))
	[ "$left" -gt 0 ] && sleep "$(printf '0.%06d' "$left")"
done
check "churn: the client ran all through the 250 changes" kill -0 "$churn_client"
stop_pid "$churn_client"
eq "churn: swclient ran" "$STOP_RC" 0
cp "$TMP/churn.json" "$TMP/client.json"
eq "churn: every weight change succeeded" "$flips_ok/$flips" "250/250"
eq "churn: no client errors" "$(cj .errors)" 0
if [ "$(cj '(.status | keys) == ["200"] and .status["200"] == .requests and .requests > 0')" = true ]; then
	pass "churn: every response was a 200 ($(cj .requests) requests)"
else
	fail "churn: every response was a 200" "client: $(cj -c '{requests, responses, errors, status}'); sockwayd: $(metric sockway_unrouted_requests_total) unrouted"
fi
eq "churn: b3 (weight 0) never answered the client" "$(cj '.backends.b3 // 0')" 0
eq "churn: b3 never received a request" "$(delta b3 requests)" 0
check "churn: b1 answered" test "$(cj '.backends.b1 // 0')" -gt 0
check "churn: b2 answered" test "$(cj '.backends.b2 // 0')" -gt 0

# --- shadows that hang or are down change nothing for the primary ---------------------------------
# A second sockwayd with a small shadow queue and a short response timeout, so that the hanging
# shadow times out and overflows quickly.
SWD_PORT2=$(port 2)
start_sockwayd "$SWD_PORT2" "$(port 3)" --workers 2 --shadow-queue 16 --response-timeout 500 --drain 1000
SWD2_PID=$SWD_PID
SWD_URL=http://127.0.0.1:$SWD_PORT2
check "endpoint slowshadow" "$SOCKWAY" endpoint create slowshadow --route /slowshadow --backend b1
client /slowshadow --requests 2000 --connections 4
only_to "no shadow" 2000 b1
for s in hang down; do
	check "shadow $s at 1.0" "$SOCKWAY" shadow set slowshadow $s 1
	client /slowshadow --requests 2000 --connections 4
	only_to "with the $s shadow" 2000 b1
	eq "with the $s shadow: the client never saw a shadow response" "$(cj .shadow_seen)" 0
	# A sanity bound, not a measure (tools/bench measures latency): a primary that waited for
	# its shadow would wait for the shadow's 500 ms timeout (the hanging one answers after
	# 10 s), so its median would be 500 ms or more; a busy machine does not add 250 ms to
	# the median of a backend that answers in microseconds.
	le "with the $s shadow: p50 $(cj .latency_us.p50) us < 250 ms (the primary does not wait for it)" \
		"$(cj .latency_us.p50)" 250000
	wait_until "$WAIT_S" cell_is slowshadow $s shadow '([.errors[]] | add) + .shadow_drops > 0' true
	check "with the $s shadow: its errors or drops show in sockway stats" \
		test "$(cell slowshadow $s shadow '([.errors[]] | add) + .shadow_drops')" -gt 0
	eq "with the $s shadow: the primary cell has no errors" \
		"$(cell slowshadow b1 primary '[.errors[]] | add')" 0
	check "shadow $s stopped" "$SOCKWAY" shadow set slowshadow $s 0
done
eq "the hanging shadow failed by timeout" "$(cell slowshadow hang shadow '(.errors.timeout + .shadow_drops) > 0')" true
eq "the down shadow failed by refused connects (or drops)" "$(cell slowshadow down shadow '(.errors.connect_refused + .shadow_drops) > 0')" true
stop_pid "$SWD2_PID"

# Over 90,000 requests went client -> sockwayd -> backend and back, four sends each at least.
accel_mode_verify 100000
finish
