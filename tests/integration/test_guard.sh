#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The XDP guard on a real veth pair: clients in a network namespace this test creates
# reach sockwayd on the host side of the pair, where the guard is attached, in generic
# and in native mode, over IPv4 and IPv6:
#   - a denied address or prefix is dropped and counted (per prefix too), another source
#     keeps working, deleting the prefix restores it, an IPv6 prefix covers no IPv4
#     address; the kill switch lets it through;
#   - crafted frames (guard_craft.py): VLAN tags, IPv4 fragments that could hide a SYN's
#     flags, IPv6 extension headers and fragments, IPv6 sources counted per /64;
#   - a burst of new connections from one source beyond the limit is cut to the rate:
#     at most burst + rate x (the measured time) + 1 SYNs of it pass, while its established
#     connection and a second source keep working; an allowed prefix is not limited (IPv4,
#     generic mode);
#   - bad prefixes and rates are refused whole; detach and unload leave no program on the
#     interface (ip link, bpftool net).
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

ACCEL_MODE=off # the guard is before the stack: sockwayd's own path is enough here
GUARD_CLIENT=tests/integration/guard_client.py
GUARD_CRAFT=tests/integration/guard_craft.py
NS=sockway-guard-$$
HOST_IF=swg$$h
NS_IF=swg$$n

# A /24 of 10.204.0.0/16 that no route here covers but the default one (so that no network
# reached through a more specific route is shadowed); its IPv6 twin is fd53:7767:N::/64,
# likewise.
NET=$(free_net 10.204 fd53:7767)
[ -n "$NET" ] || { fail "a free /24 in 10.204.0.0/16"; finish; exit 1; }
H4=10.204.$NET.1 A4=10.204.$NET.2 B4=10.204.$NET.5 R4=10.204.$NET.6
H6=fd53:7767:$NET::1 A6=fd53:7767:$NET::2 B6=fd53:7767:$NET::5

netns_cleanup() {
	ip link del "$HOST_IF" 2>/dev/null
	ip link del "swg$$x" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
}
trap 'netns_cleanup; lib_cleanup' EXIT

check "setup: network namespace $NS and veth pair $HOST_IF/$NS_IF" bash -c "
	ip netns add $NS &&
	ip link add $HOST_IF type veth peer name $NS_IF netns $NS &&
	ip addr add $H4/24 dev $HOST_IF && ip addr add $H6/64 dev $HOST_IF nodad &&
	ip link set $HOST_IF up &&
	ip -n $NS addr add $A4/24 dev $NS_IF && ip -n $NS addr add $B4/24 dev $NS_IF &&
	ip -n $NS addr add $R4/24 dev $NS_IF &&
	ip -n $NS addr add $A6/64 dev $NS_IF nodad && ip -n $NS addr add $B6/64 dev $NS_IF nodad &&
	ip -n $NS link set $NS_IF up && ip -n $NS link set lo up"

check "sockway load" "$SOCKWAY" load
B1=$(port 1)
P=$(port 10)
A=$(port 11)
start_backend b1 "$B1"
check "backend b1" "$SOCKWAY" backend create b1 "127.0.0.1:$B1"
check "endpoint api" "$SOCKWAY" endpoint create api --route /api --backend b1
start_sockwayd "$P" "$A" --listen "$H4:$P" --listen "[$H6]:$P"
wait_until "$WAIT_S" curl -sf --max-time 5 "http://127.0.0.1:$A/healthz" >/dev/null ||
	fail "sockwayd answers on its admin port"

# http_from SRC HOST [TIMEOUT]: the status of GET /api/x from SRC in the namespace (000: no
# connection within TIMEOUT seconds).
http_from() {
	local host=$2
	[[ $host == *:* ]] && host="[$host]"
	ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' --interface "$1" \
		--connect-timeout "${3:-$WAIT_S}" --max-time "$WAIT_S" "http://$host:$P/api/x"
}

# gstat EXPR: a jq expression over `sockway -j guard stats`.
gstat() {
	"$SOCKWAY" -j guard stats | jq -r "$1"
}
count_of() {
	gstat ".counters.$1.packets"
}

# no_xdp: nothing of XDP left on the host side of the pair.
no_xdp() {
	! ip link show dev "$HOST_IF" | grep -q 'xdp' &&
		! bpftool net show dev "$HOST_IF" | grep -q 'xdp_guard'
}

eq "reachable before the guard (IPv4)" "$(http_from "$A4" "$H4")" 200
eq "reachable before the guard (IPv6)" "$(http_from "$A6" "$H6")" 200
eq "sockwayd added its listening port to the guarded ports" "$(gstat '.ports | join(",")')" "$P"

HMAC=$(cat "/sys/class/net/$HOST_IF/address")

# craft KIND SRC DST: one crafted frame (guard_craft.py) from the namespace to the host end.
craft() {
	ip netns exec "$NS" python3 "$GUARD_CRAFT" "$NS_IF" "$HMAC" "$1" "$2" "$3" "$P"
}
# counter_above NAME VALUE: the guard counter NAME is above VALUE (for wait_until).
counter_above() {
	[ "$(count_of "$1")" -gt "$2" ]
}
# craft_sees KIND SRC DST COUNTER DESC: the frame moves COUNTER, and no other verdict.
craft_sees() {
	local before others0 others1
	before=$(count_of "$4")
	others0=$(gstat "[.counters | to_entries[] | select(.key != \"$4\" and .key != \"passed\") | .value.packets] | add")
	craft "$1" "$2" "$3"
	if wait_until "$WAIT_S" counter_above "$4" "$before"; then
		others1=$(gstat "[.counters | to_entries[] | select(.key != \"$4\" and .key != \"passed\") | .value.packets] | add")
		eq "$5" "$others1" "$others0"
	else
		fail "$5" "counter $4 stayed at $before"
	fi
}

# syn_sent SRC PORT: the connection from SRC:PORT in the namespace is still waiting for its
# SYN's answer (ss filters by address, whatever form it prints it in).
syn_sent() {
	local src=$1
	[[ $src == *:* ]] && src="[$src]"
	ip netns exec "$NS" ss -Htn state syn-sent src "$src" sport = ":$2" | grep -q .
}

# drops DESC SRC DST: the guard counts a drop while the client's connection from SRC is
# still unanswered (SYN-SENT), and the client never gets a response. Events, not a short
# connect timeout: on a slow machine a timeout alone would pass with no guard.
drops() {
	local d0 pid why= host=$3 lport
	[[ $host == *:* ]] && host="[$host]"
	lport=$(port 20)
	d0=$(count_of denied)
	spawn drops ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' --interface "$2" \
		--local-port "$lport" --connect-timeout "$WAIT_S" --max-time "$WAIT_S" \
		"http://$host:$P/api/x"
	pid=$SPAWNED
	if ! wait_until "$WAIT_S" counter_above denied "$d0"; then
		why="the denied counter stayed at $d0"
	elif ! wait_until "$WAIT_S" syn_sent "$2" "$lport"; then
		why="no connection from $2:$lport left waiting"
	fi
	stop_pid "$pid"
	# Killed while it waited, curl printed nothing; a response would be its status.
	if [ -s "$TMP/drops.log" ]; then
		fail "$1" "the client ended before it was stopped: HTTP $(cat "$TMP/drops.log")${why:+; $why}"
	elif [ -n "$why" ]; then
		fail "$1" "$why"
	else
		pass "$1"
	fi
}

# The header rules (bpf/guard.bpf.c), with crafted frames; a limit on, so SYNs count.
craft_checks() {
	local mode=$1
	check "[$mode] limit 1000 --burst 1000 (crafted SYNs count)" "$SOCKWAY" guard limit 1000 --burst 1000
	check "[$mode] deny add $A4" "$SOCKWAY" guard deny add "$A4"
	craft_sees vlan3-syn "$A4" "$H4" denied "[$mode] three VLAN 0 tags do not hide a denied source"
	check "[$mode] deny del $A4" "$SOCKWAY" guard deny del "$A4"
	craft_sees vlan3-syn "$B4" "$H4" syn_passed "[$mode] a SYN in three VLAN tags is seen as a SYN"
	craft_sees vlan9-syn "$B4" "$H4" malformed "[$mode] nine VLAN tags: malformed"
	craft_sees frag-off1 "$B4" "$H4" malformed "[$mode] an IPv4 TCP fragment at offset 8: malformed"
	craft_sees frag-tiny "$B4" "$H4" malformed "[$mode] a first fragment without the TCP flags: malformed"
	craft_sees ext6-syn "$B6" "$H6" syn_passed "[$mode] IPv6: six extension headers are read through"
	craft_sees ext7-syn "$B6" "$H6" malformed "[$mode] IPv6: seven extension headers: malformed"
	craft_sees v6frag-syn "$B6" "$H6" syn_passed "[$mode] IPv6: a SYN in a first fragment is seen"
	# A source is an IPv6 /64: two addresses of one share a bucket, another /64 has its own.
	check "[$mode] limit 1 --burst 1" "$SOCKWAY" guard limit 1 --burst 1
	# Both SYNs in one burst from one process: a second between them would refill the
	# bucket (1 a second), which a busy machine can take between two craft runs.
	passed0=$(count_of syn_passed)
	limited0=$(count_of limited)
	craft v6frag-syn "fd53:7767:$NET:77::1,fd53:7767:$NET:77::2" "$H6"
	wait_until "$WAIT_S" counter_above limited "$limited0" ||
		fail "[$mode] IPv6: the same /64's next is limited" "counter limited stayed at $limited0"
	eq "[$mode] IPv6: of two SYNs of one /64, the first passes" \
		$(($(count_of syn_passed) - passed0)) 1
	eq "[$mode] IPv6: and the second is limited" $(($(count_of limited) - limited0)) 1
	craft_sees v6frag-syn "fd53:7767:$NET:78::1" "$H6" syn_passed "[$mode] IPv6: another /64 is another source"
	check "[$mode] deny add ::/0 (all of IPv6)" "$SOCKWAY" guard deny add ::/0
	eq "[$mode] an IPv6 prefix covers no IPv4 address" "$(http_from "$A4" "$H4")" 200
	check "[$mode] deny del ::/0" "$SOCKWAY" guard deny del ::/0
	check "[$mode] limit 0" "$SOCKWAY" guard limit 0
}

# --- refusals: nothing changes ---------------------------------------------------------------
refused_guard() {
	local desc=$1 pattern=$2 want_rc=${3:-1} before after
	shift 3
	before=$("$SOCKWAY" -j guard stats | jq -c '{deny, allow, limit}')
	sw "$@"
	after=$("$SOCKWAY" -j guard stats | jq -c '{deny, allow, limit}')
	if [ "$RC" -ne "$want_rc" ]; then
		fail "$desc" "exit $RC, want $want_rc: $(cat "$TMP/err")"
	elif [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -qE -- "$pattern" "$TMP/err"; then
		fail "$desc" "stderr not one line matching /$pattern/: $(cat "$TMP/err")"
	elif [ "$before" != "$after" ]; then
		fail "$desc" "the guard changed: $before -> $after"
	else
		pass "$desc"
	fi
}
refused_guard "host bits past the length refused, the prefix meant named" \
	'did you mean 10\.1\.2\.0/24' 1 guard deny add 10.1.2.3/24
refused_guard "a length over 32 for IPv4 refused" 'prefix length is 0-32' 1 guard deny add 10.0.0.0/33
refused_guard "a length over 128 for IPv6 refused" 'prefix length is 0-128' 1 guard allow add fd00::/129
refused_guard "not an address refused" 'not an IPv4 or IPv6 address' 1 guard deny add 10.0.0.256
refused_guard "a signed length refused" 'prefix length' 1 guard deny add 10.0.0.0/+8
refused_guard "an empty length refused" 'prefix length' 1 guard deny add 10.0.0.0/
refused_guard "a length with a space refused" 'prefix length' 1 guard deny add "10.0.0.0/ 8"
refused_guard "deleting a prefix that is not there refused" 'not in the deny list' 1 \
	guard deny del 10.9.9.0/24
refused_guard "a rate over the limit refused" 'over the limit' 1 guard limit 1000001
refused_guard "a rate that is not a number: usage error" 'whole number' 2 guard limit 10/s
refused_guard "a zero burst: usage error" 'at least 1' 2 guard limit 10 --burst 0
refused_guard "attach to an interface that does not exist refused" 'no interface' 1 \
	guard attach swg-none-$$
refused_guard "detach where nothing is attached refused" 'not attached' 1 guard detach "$HOST_IF"

# --- deny, in each mode ----------------------------------------------------------------------
deny_checks() {
	local mode=$1 d0 h
	d0=$(count_of denied)
	check "[$mode] deny add $A4 (one address)" "$SOCKWAY" guard deny add "$A4"
	drops "[$mode] a denied source gets no connection" "$A4" "$H4"
	eq "[$mode] another source keeps working" "$(http_from "$B4" "$H4")" 200
	h=$(gstat ".deny[] | select(.prefix == \"$A4/32\") | .packets")
	ge "[$mode] the prefix counted the dropped packets" "${h:-0}" 1
	ge "[$mode] the denied counter grew" "$(count_of denied)" $((d0 + 1))
	check "[$mode] deny del $A4" "$SOCKWAY" guard deny del "$A4/32"
	eq "[$mode] deleting the prefix restores the source" "$(http_from "$A4" "$H4")" 200

	check "[$mode] deny add 10.204.$NET.0/30 (a prefix holding A)" \
		"$SOCKWAY" guard deny add "10.204.$NET.0/30"
	drops "[$mode] the prefix drops A" "$A4" "$H4"
	eq "[$mode] B, outside it, passes" "$(http_from "$B4" "$H4")" 200
	check "[$mode] deny del the prefix" "$SOCKWAY" guard deny del "10.204.$NET.0/30"

	check "[$mode] IPv6: deny add fd53:7767:$NET::/126" "$SOCKWAY" guard deny add "fd53:7767:$NET::/126"
	drops "[$mode] IPv6: the prefix drops A" "$A6" "$H6"
	eq "[$mode] IPv6: B, outside it, passes" "$(http_from "$B6" "$H6")" 200
	h=$(gstat ".deny[] | select(.prefix == \"fd53:7767:$NET::/126\") | .packets")
	ge "[$mode] IPv6: the prefix counted the dropped packets" "${h:-0}" 1
	check "[$mode] IPv6: deny del" "$SOCKWAY" guard deny del "fd53:7767:$NET::/126"
	eq "[$mode] IPv6: A passes again" "$(http_from "$A6" "$H6")" 200
}

check "attach --mode generic" "$SOCKWAY" guard attach "$HOST_IF" --mode generic
eq "stats: attached in generic mode" "$(gstat ".interfaces[] | select(.name == \"$HOST_IF\") | .mode")" generic
ip link show dev "$HOST_IF" | grep -q xdpgeneric && pass "ip link shows xdpgeneric" ||
	fail "ip link shows xdpgeneric" "$(ip link show dev "$HOST_IF")"
sw guard attach "$HOST_IF" --mode generic
eq "attach again in the same mode: nothing to do" "$RC $(grep -c 'already attached' "$TMP/out")" "0 1"
refused_guard "attach again in the other mode refused" 'detach it first' 1 \
	guard attach "$HOST_IF" --mode native
deny_checks generic
craft_checks generic

# --- the kill switch ---------------------------------------------------------------------------
check "deny add $A4 for the kill switch" "$SOCKWAY" guard deny add "$A4"
check "guard off" "$SOCKWAY" guard off
total0=$(gstat '[.counters[].packets] | add')
eq "guard off: the denied source passes" "$(http_from "$A4" "$H4")" 200
eq "guard off: nothing is counted" "$(gstat '[.counters[].packets] | add')" "$total0"
check "guard on" "$SOCKWAY" guard on
drops "guard on: dropped again" "$A4" "$H4"
check "deny del $A4" "$SOCKWAY" guard deny del "$A4"

# --- the rate limit ----------------------------------------------------------------------------
# The flood comes from R, whose bucket is fresh: the section needs the whole burst, and a
# new limit keeps a source's debt from the last one (cut to its burst), which A may have.
RATE=1 BURST=5 FLOOD=40
check "limit $RATE --burst $BURST" "$SOCKWAY" guard limit $RATE --burst $BURST
eq "stats: the limit" "$(gstat '"\(.limit.rate) \(.limit.burst)"')" "$RATE $BURST"
syn0=$(count_of syn_passed)
lim0=$(count_of limited)
t0=${EPOCHREALTIME/./}
out=$(ip netns exec "$NS" python3 "$GUARD_CLIENT" "$H4" "$P" "$R4" "$B4" $FLOOD)
eq "the flooding source's established connection keeps working" "$(jq -r .after <<<"$out")" 200
eq "its request before the flood" "$(jq -r .before <<<"$out")" 200
eq "a second source keeps working during the flood" "$(jq -r .other <<<"$out")" 200
# Every SYN of it seen: the kept connection, the flood and the second source's.
seen() {
	[ $(($(count_of syn_passed) - syn0 + $(count_of limited) - lim0)) -ge $((FLOOD + 2)) ]
}
wait_until "$WAIT_S" seen || fail "every SYN of the burst reached the guard"
t1=${EPOCHREALTIME/./}
syn=$(($(count_of syn_passed) - syn0))
lim=$(($(count_of limited) - lim0))
# R's SYNs that may pass in the time measured (GCRA: burst at once, then one per 1/rate),
# one more for a second boundary, and B's one.
bound=$(awk -v b=$BURST -v r=$RATE -v us=$((t1 - t0)) 'BEGIN { printf "%d", b + r * us / 1e6 + 1 + 1 }')
echo "# $FLOOD+2 SYNs in $(((t1 - t0) / 1000)) ms: $syn passed (bound $bound), $lim limited"
le "the burst is cut to about the rate: passed SYNs within burst + rate x time + 1" "$syn" "$bound"
ge "at least the burst passed (and the second source)" "$syn" $((BURST + 1))
ge "the rest was dropped as limited" "$lim" $((FLOOD + 2 - bound))

check "allow add $A4 (exempt from the limit)" "$SOCKWAY" guard allow add "$A4"
lim0=$(count_of limited)
out=$(ip netns exec "$NS" python3 "$GUARD_CLIENT" "$H4" "$P" "$A4" "$B4" $FLOOD --all "$WAIT_S")
eq "an allowed source opens all its connections at once" "$(jq -r .connected <<<"$out")" $FLOOD
eq "none of them was limited" "$(($(count_of limited) - lim0))" 0
h=$(gstat ".allow[] | select(.prefix == \"$A4/32\") | .packets")
ge "the allowed prefix counted its SYNs" "${h:-0}" $((FLOOD + 1))
check "allow del $A4" "$SOCKWAY" guard allow del "$A4"
check "limit 0 (off)" "$SOCKWAY" guard limit 0

# --- the policy file carries the guard ----------------------------------------------------------
base=$("$SOCKWAY" export)
with_guard=$(jq -c '.guard = {"deny": ["2001:db8::/32", "192.0.2.0/24"], "allow": ["198.51.100.7"],
	"limit": {"rate": 100, "burst": 200}}' <<<"$base")
check "apply a policy with a guard" bash -c "'$SOCKWAY' apply -f - <<<'$with_guard'"
eq "export gives the guard back, canonical" "$("$SOCKWAY" export | jq -c .guard)" \
	'{"allow":["198.51.100.7/32"],"deny":["192.0.2.0/24","2001:db8::/32"],"limit":{"burst":200,"rate":100}}'
eq "export | apply -f - changes nothing" "$("$SOCKWAY" export | "$SOCKWAY" apply -f -)" "no changes"
eq "the file's limit is live" "$(gstat '"\(.limit.rate) \(.limit.burst)"')" "100 200"
bad=$(jq -c '.guard.deny += ["192.0.2.0/24"]' <<<"$with_guard")
refused_guard "a prefix listed twice: the file is refused whole" 'lists 192\.0\.2\.0/24 twice' 1 \
	apply -f "$(printf '%s' "$bad" >"$TMP/bad.json" && echo "$TMP/bad.json")"
bad=$(jq -c '.guard.limit.rate = 1.5' <<<"$with_guard")
refused_guard "a fractional rate: the file is refused whole" 'whole number' 1 \
	apply -f "$(printf '%s' "$bad" >"$TMP/bad.json" && echo "$TMP/bad.json")"
bad=$(jq -c '.guard.deny = ["10.0.0.1/8"]' <<<"$with_guard")
refused_guard "host bits in a file's prefix: refused, with the path" 'guard.deny\[0\].*did you mean 10\.0\.0\.0/8' 1 \
	apply -f "$(printf '%s' "$bad" >"$TMP/bad.json" && echo "$TMP/bad.json")"
eq "a file without a guard leaves the guard as it is" "$("$SOCKWAY" apply -f - <<<"$base")" "no changes"
eq "dry run of an empty guard: what would go" \
	"$("$SOCKWAY" apply --dry-run -f - <<<"$(jq -c '.guard = {}' <<<"$base")" | head -1)" \
	"~ guard: deny +0 -2; allow +0 -1; limit 100/s burst 200 -> 0/s burst 0"
check "\"guard\": {} empties it" bash -c "'$SOCKWAY' apply -f - <<<'$(jq -c '.guard = {}' <<<"$base")'"
eq "export has no guard when it holds nothing" "$("$SOCKWAY" export | jq -c .guard)" null

# --- detach, native mode, unload ---------------------------------------------------------------
check "detach" "$SOCKWAY" guard detach "$HOST_IF"
no_xdp && pass "detach leaves no program on the interface" ||
	fail "detach leaves no program on the interface" "$(ip link show dev "$HOST_IF"; bpftool net show dev "$HOST_IF")"
eq "no guard in stats after detach" "$(gstat '.interfaces | length')" 0
check "attach --mode native (veth has native XDP)" "$SOCKWAY" guard attach "$HOST_IF" --mode native
eq "stats: attached in native mode" "$(gstat ".interfaces[] | select(.name == \"$HOST_IF\") | .mode")" native
deny_checks native
craft_checks native
id0=$(gstat '.interfaces[0].prog_id')
check "sockway load again (a reload replaces the programs)" "$SOCKWAY" load
id1=$(gstat '.interfaces[0].prog_id')
eq "a reload moves the guard's link to the new program" \
	"$([ "$id1" != "$id0" ] && echo moved)/$id1" \
	"moved/$(bpftool -j prog show pinned "$SOCKWAY_PIN_ROOT/xdp_guard" | jq .id)"
check "deny add $A4 after the reload" "$SOCKWAY" guard deny add "$A4"
drops "the reloaded guard drops" "$A4" "$H4"
check "deny del $A4" "$SOCKWAY" guard deny del "$A4"
eq "status names the guard's interface" "$("$SOCKWAY" status | grep -c "guard:.*$HOST_IF (native")" 1
# An interface deleted with the guard attached: its link goes by the pin's name.
GONE_A=swg$$x GONE_B=swg$$y
if ip link add "$GONE_A" type veth peer name "$GONE_B"; then
	check "attach to $GONE_A (to be deleted)" "$SOCKWAY" guard attach "$GONE_A" --mode generic
	gone_idx=$(cat "/sys/class/net/$GONE_A/ifindex")
	ip link del "$GONE_A"
	eq "stats: the deleted interface's link shows as gone" \
		"$(gstat ".interfaces[] | select(.name == \"guard_if$gone_idx\") | .present")" false
	check "detach guard_if$gone_idx (the pin's name)" "$SOCKWAY" guard detach "guard_if$gone_idx"
	eq "the pin is gone" "$(gstat ".interfaces | map(select(.present == false)) | length")" 0
else
	fail "a second veth pair for the deleted-interface case"
fi
stop_pid "$SWD_PID"
check "sockway unload" "$SOCKWAY" unload
no_xdp && pass "unload detaches the guard" ||
	fail "unload detaches the guard" "$(ip link show dev "$HOST_IF"; bpftool net show dev "$HOST_IF")"

finish
