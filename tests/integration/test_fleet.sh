#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The fleet property: hosts that hold the same policy send a shard key to the same backend,
# however each came to that policy, so many hosts behind ECMP or an L4 balancer need no
# coordination. Three instances, each in its own network namespace with its own pin
# directory, its own sockwayd and its own backends named alike (alpha, beta, gamma on the
# same loopback ports), are fed one final policy through `sockway apply --watch`, each by a
# different history of edits (one at once; one through three splits; one through other
# endpoints, a removed backend, a refused file, a ConfigMap-style ..data swap and the keys
# in another order). Then each gets the same 10,000 shard keys through its real sockwayd on
# real sockets, and every key must reach the same backend name on all three.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

KEYS=10000
HOSTS=(1 2 3)
ns() { echo "swfleet$$-$1"; }
pin() { echo "/sys/fs/bpf/sockway-test-$$-fleet$1"; }
# on I CMD...: CMD in host I's network namespace, with host I's pin directory. nsenter
# rather than "ip netns exec", which mounts a new /sys and so hides /sys/fs/bpf.
on() {
	local i=$1
	shift
	env SOCKWAY_PIN_ROOT="$(pin "$i")" nsenter --net="/run/netns/$(ns "$i")" "$@"
}
# on_cmd I: the same as a command prefix, in $ON (for spawn, which runs commands, not
# functions).
on_cmd() {
	ON=(env SOCKWAY_PIN_ROOT="$(pin "$1")" SOCKWAY="$SOCKWAY" nsenter --net="/run/netns/$(ns "$1")")
}
# sw_on I ARGS...: sockway ARGS on host I.
sw_on() {
	local i=$1
	shift
	on "$i" "$SOCKWAY" "$@"
}

fleet_cleanup() {
	local i
	# The processes in the namespaces first: the namespaces go before lib_cleanup runs.
	lib_stop_all
	for i in "${HOSTS[@]}"; do
		[ -d "$(pin "$i")" ] && { SOCKWAY_PIN_ROOT=$(pin "$i") "$SOCKWAY" unload >/dev/null 2>&1 ||
			rm -rf "$(pin "$i")"; }
		ip netns del "$(ns "$i")" 2>/dev/null
	done
}
trap 'fleet_cleanup; lib_cleanup' EXIT

ALPHA=9001 BETA=9002 GAMMA=9003 LISTEN=8000 ADMIN=8001

# backends NAME...: a "backends" object with NAME on its port (same on every host).
backends_json() {
	local name sep=
	printf '{'
	for name in "$@"; do
		case $name in
		alpha) p=$ALPHA ;;
		beta) p=$BETA ;;
		gamma) p=$GAMMA ;;
		esac
		printf '%s"%s": {"replicas": ["127.0.0.1:%s"]}' "$sep" "$name" "$p"
		sep=', '
	done
	printf '}'
}

# The policy every host ends with: a keyed 50/30/20 split and a canary.
final_policy() {
	cat <<-EOF
		{"version": 1,
		 "backends": $(backends_json alpha beta gamma),
		 "endpoints": {
		  "users": {"route": "/users", "traffic": {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}},
		  "canary": {"route": "/canary", "traffic": {"alpha": 0.99, "gamma": 0.01}}}}
	EOF
}

# save FILE: stdin to FILE the way an editor saves (a new file renamed over it).
save() {
	cat >"$1.new" && mv -f "$1.new" "$1"
}

# applied_as I WANT: host I's exported policy is WANT (for wait_until).
applied_as() {
	[ "$(sw_on "$1" export)" = "$2" ]
}
# users_is I SPLIT: host I's endpoint "users" splits as SPLIT (jq -c of its traffic).
users_is() {
	[ "$(sw_on "$1" -j export | jq -c .endpoints.users.traffic)" = "$2" ]
}

# --- three hosts ------------------------------------------------------------------------------
for i in "${HOSTS[@]}"; do
	check "host $i: namespace $(ns "$i") with its loopback up" \
		bash -c "ip netns add $(ns "$i") && ip -n $(ns "$i") link set lo up"
	check "host $i: sockway load into $(pin "$i")" sw_on "$i" load
	for b in alpha:$ALPHA beta:$BETA gamma:$GAMMA; do
		on_cmd "$i"
		spawn "backend-$i-${b%%:*}" "${ON[@]}" "$SWBACKEND" --name "${b%%:*}" \
			--listen "127.0.0.1:${b##*:}"
	done
	on_cmd "$i"
	spawn "sockwayd-$i" "${ON[@]}" "$SOCKWAYD" --listen "127.0.0.1:$LISTEN" --admin "127.0.0.1:$ADMIN" --no-accel
	mkdir -p "$TMP/host$i"
done
for i in "${HOSTS[@]}"; do
	check "host $i: sockwayd is ready" wait_until "$WAIT_S" grep -q '; ready' "$TMP/sockwayd-$i.log"
	for p in $ALPHA $BETA $GAMMA; do
		check "host $i: backend on port $p answers" wait_until "$WAIT_S" \
			on "$i" curl -sf --max-time 5 "http://127.0.0.1:$p/__swbackend/stats"
	done
done

# --- three histories -------------------------------------------------------------------------
# Host 1: the final policy at once.
final_policy >"$TMP/host1/policy.json"
spawn watch-1 env SOCKWAY_PIN_ROOT="$(pin 1)" "$SOCKWAY" apply -f "$TMP/host1/policy.json" --watch
check "host 1: the final policy is applied" wait_until "$WAIT_S" users_is 1 '{"alpha":0.5,"beta":0.3,"gamma":0.2}'
FINAL=$(sw_on 1 export)

# Host 2: alpha alone, then 50/50 with beta, then the final one.
cat >"$TMP/host2/policy.json" <<-EOF
	{"version": 1, "backends": $(backends_json alpha),
	 "endpoints": {"users": {"route": "/users", "traffic": {"alpha": 1}}}}
EOF
spawn watch-2 env SOCKWAY_PIN_ROOT="$(pin 2)" "$SOCKWAY" apply -f "$TMP/host2/policy.json" --watch
check "host 2: first edit" wait_until "$WAIT_S" users_is 2 '{"alpha":1}'
save "$TMP/host2/policy.json" <<-EOF
	{"version": 1, "backends": $(backends_json alpha beta),
	 "endpoints": {"users": {"route": "/users", "traffic": {"alpha": 0.5, "beta": 0.5}}}}
EOF
check "host 2: second edit" wait_until "$WAIT_S" users_is 2 '{"alpha":0.5,"beta":0.5}'
final_policy | save "$TMP/host2/policy.json"
check "host 2: the final policy is applied" wait_until "$WAIT_S" applied_as 2 "$FINAL"

# Host 3, a ConfigMap volume: gamma-heavy with other endpoints, a file that is refused, a
# backend removed and added back, and the final document with its keys in reverse order.
CM=$TMP/host3
swap() { # swap N: ..data now points at ..N (as kubelet updates a ConfigMap volume)
	ln -s "..$1" "$CM/..data_tmp" && mv -T "$CM/..data_tmp" "$CM/..data"
}
mkdir "$CM/..1"
cat >"$CM/..1/policy.json" <<-EOF
	{"version": 1, "backends": $(backends_json gamma beta alpha),
	 "endpoints": {"users": {"route": "/users", "traffic": {"gamma": 0.7, "beta": 0.2, "alpha": 0.1}},
	               "old": {"route": "/old", "traffic": {"beta": 1}}}}
EOF
ln -s ..1 "$CM/..data"
ln -s ..data/policy.json "$CM/policy.json"
spawn watch-3 env SOCKWAY_PIN_ROOT="$(pin 3)" "$SOCKWAY" apply -f "$CM/policy.json" --watch
check "host 3: first edit" wait_until "$WAIT_S" users_is 3 '{"alpha":0.1,"beta":0.2,"gamma":0.7}'
mkdir "$CM/..2"
echo '{"version": 1, "backends": {}, "endpoints": {"users": {"route": "/users", "traffic": {"nobody": 1}}}}' \
	>"$CM/..2/policy.json"
swap 2
check "host 3: a file naming a backend that does not exist is refused" \
	wait_until "$WAIT_S" grep -q 'nobody' "$TMP/watch-3.log"
mkdir "$CM/..3"
cat >"$CM/..3/policy.json" <<-EOF
	{"version": 1, "backends": $(backends_json alpha gamma),
	 "endpoints": {"users": {"route": "/users", "traffic": {"gamma": 0.5, "alpha": 0.5}}}}
EOF
swap 3
check "host 3: beta removed" wait_until "$WAIT_S" users_is 3 '{"alpha":0.5,"gamma":0.5}'
mkdir "$CM/..4"
final_policy | jq -S '.' | jq '. as $p | {endpoints: $p.endpoints, backends: $p.backends, version: 1}' \
	>"$CM/..4/policy.json"
swap 4
check "host 3: the final policy is applied" wait_until "$WAIT_S" applied_as 3 "$FINAL"

# --- the same keys everywhere -----------------------------------------------------------------
# The maps first: each endpoint's slot table is the same on the three hosts.
for i in 2 3; do
	for e in users canary; do
		eq "host $i: the slot table of $e is host 1's" \
			"$(sw_on "$i" -j traffic show "$e" | jq -c .backends)" \
			"$(sw_on 1 -j traffic show "$e" | jq -c .backends)"
	done
done
# Then real requests: the three clients at once, each on its own host.
for i in "${HOSTS[@]}"; do
	on_cmd "$i"
	spawn "keys-$i" "${ON[@]}" python3 tests/integration/kr_client.py "$LISTEN" keys "$KEYS" \
		user- X-SERVE-SHARD-KEY /users
	KEYS_PID[i]=$SPAWNED
done
for i in "${HOSTS[@]}"; do
	stop_pid "${KEYS_PID[i]}" 0 # signal 0: only wait for it
	eq "host $i: $KEYS keyed requests answered 200" "$STOP_RC" 0
	jq -c '.backends' "$TMP/keys-$i.log" >"$TMP/keys-$i.json" 2>/dev/null
done
eq "host 1: every key got a backend" "$(jq '[.[] | select(. != "")] | length' "$TMP/keys-1.json")" "$KEYS"
eq "host 2 sent every key to the backend host 1 sent it to" \
	"$(cmp -s "$TMP/keys-1.json" "$TMP/keys-2.json" && echo same || jq -n --slurpfile a "$TMP/keys-1.json" --slurpfile b "$TMP/keys-2.json" '[$a[0] | to_entries[] | select($b[0][.key] != .value)] | length')" same
eq "host 3 sent every key to the backend host 1 sent it to" \
	"$(cmp -s "$TMP/keys-1.json" "$TMP/keys-3.json" && echo same || jq -n --slurpfile a "$TMP/keys-1.json" --slurpfile b "$TMP/keys-3.json" '[$a[0] | to_entries[] | select($b[0][.key] != .value)] | length')" same
# And the keys spread as the split says, so that the equality above means something.
for b in alpha:0.5 beta:0.3 gamma:0.2; do
	within "the keys that went to ${b%%:*} (weight ${b##*:})" \
		"$(jq --arg b "${b%%:*}" '[.[] | select(. == $b)] | length' "$TMP/keys-1.json")" "$KEYS" "${b##*:}"
done
# Each host counted its own requests: its backends, not another host's, answered them.
for i in "${HOSTS[@]}"; do
	eq "host $i: its own backends answered its $KEYS requests" \
		"$(for p in $ALPHA $BETA $GAMMA; do on "$i" curl -s "http://127.0.0.1:$p/__swbackend/stats" | jq .requests; done | awk '{ s += $1 } END { print s }')" \
		"$KEYS"
done

finish
