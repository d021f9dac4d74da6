#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The egress splice (prototype): a remote client (a network namespace behind a veth pair) of
# an accelerated sockwayd, whose backends are local and accelerated. sockops files
# sockwayd's accepted socket in sock_hash even though its peer is remote, and a response the
# kernel takes goes from the backend's send straight out of that socket (sk_msg redirect to
# its egress), never through sockwayd. Each body is compared byte for byte with the
# backend's own; accel_stats.spliced_bytes and sockway_kernel_responses_total prove which
# path the bytes took.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

P_SMALL=$(port 10)
P_WHOLE=$(port 11)
P_DRIP=$(port 12)
P_SWD=$(port 13)
SWD_ADMIN=$(port 14)
MIB1=1048576
MIB8=8388608

check "load" "$SOCKWAY" load
cgroup_new clients
CG=$CGROUP
check "accel add the backends' cgroup" "$SOCKWAY" accel add "$CG"

NS=swegr$$
NET=$(free_net 10.206)
trap 'lib_stop_all; ip netns del "$NS" 2>/dev/null; lib_cleanup' EXIT
if [ -z "$NET" ]; then
	fail "a free /24 in 10.206.0.0/16"
	finish
	exit 1
fi
HOST_IP=10.206.$NET.1
check "namespace $NS behind veth se$$h, 10.206.$NET.0/24" bash -c "
	ip netns add $NS && ip link add se$$h type veth peer name se$$n netns $NS &&
	ip addr add $HOST_IP/24 dev se$$h && ip link set se$$h up &&
	ip -n $NS addr add 10.206.$NET.2/24 dev se$$n && ip -n $NS link set se$$n up &&
	ip -n $NS link set lo up"

# Backends in the accelerated cgroup: small responses in one send (swbackend), a 1 MiB
# response in one send, and an 8 MiB body sent after its head in 256 KiB pieces.
SPAWN_CGROUP=$CG start_backend small "$P_SMALL"
SPAWN_CGROUP=$CG spawn whole python3 tests/integration/drip_backend.py "$P_WHOLE" $MIB1 0
SPAWN_CGROUP=$CG spawn drip python3 tests/integration/drip_backend.py "$P_DRIP" $MIB8
wait_until "$WAIT_S" grep -q ready "$TMP/whole.log" || fail "backend whole did not start"
wait_until "$WAIT_S" grep -q ready "$TMP/drip.log" || fail "backend drip did not start"
for b in small:$P_SMALL whole:$P_WHOLE drip:$P_DRIP; do
	check "backend ${b%%:*}" "$SOCKWAY" backend create "${b%%:*}" "127.0.0.1:${b#*:}"
	check "endpoint ${b%%:*}" "$SOCKWAY" endpoint create "${b%%:*}" --route "/${b%%:*}" \
		--backend "${b%%:*}"
done

ACCEL_MODE=on
start_sockwayd "$P_SWD" "$SWD_ADMIN" --workers 2 --listen "$HOST_IP:$P_SWD"

# The reference bodies, straight from the backends.
curl -s --max-time 30 -o "$TMP/ref-small" "http://127.0.0.1:$P_SMALL/small"
curl -s --max-time 30 -o "$TMP/ref-whole" "http://127.0.0.1:$P_WHOLE/whole"
curl -s --max-time 60 -o "$TMP/ref-drip" "http://127.0.0.1:$P_DRIP/drip"

# remote NAME N: N GETs of /NAME from the namespace on one keep-alive connection; checks
# every body against the reference.
remote() {
	local name=$1 n=$2 i args=() bad=0
	for i in $(seq "$n"); do
		args+=(-o "$TMP/got-$name-$i" "http://$HOST_IP:$P_SWD/$name")
	done
	nsenter --net="/run/netns/$NS" curl -s --max-time 120 "${args[@]}"
	for i in $(seq "$n"); do
		cmp -s "$TMP/ref-$name" "$TMP/got-$name-$i" || bad=$((bad + 1))
	done
	eq "$name: $n remote responses byte for byte" "$bad" 0
}

s0=$(stat_of spliced_bytes)
k0=$(metric sockway_kernel_responses_total)
remote small 200
ge "small: the kernel passed responses on whole" \
	$(($(metric sockway_kernel_responses_total) - k0)) 100
ge "small: spliced bytes grew" $(($(stat_of spliced_bytes) - s0)) 10000

remote whole 20
s0=$(stat_of spliced_bytes)
remote drip 4
ge "drip: body bytes went out by the egress splice" $(($(stat_of spliced_bytes) - s0)) $MIB1

# A remote client that stops reading after the head of the 8 MiB body: the kernel moves
# only what the client's socket has room for in its send buffer (sk_msg.bpf.c, send_room),
# then stops and sockwayd forwards the rest, whose flow TCP and sockwayd's buffers bound. The
# socket's queued bytes stay within its send buffer, and the body comes whole once the client
# reads again.
# recv_q_full: the held client's socket in the namespace has bytes waiting (its window fills).
recv_q_full() {
	nsenter --net="/run/netns/$NS" ss -tnH state established "dport = :$P_SWD" |
		awk '$1 > 100000 { ok = 1 } END { exit !ok }'
}
s0=$(stat_of spliced_bytes)
HOLD_HOST=$HOST_IP spawn held nsenter --net="/run/netns/$NS" python3 tests/integration/hold_client.py \
	"$P_SWD" /drip "$TMP/got-held" "$TMP/held.go"
held=$SPAWNED
wait_until "$WAIT_S" test -e "$TMP/held.go.held" || fail "held: the client read the head"
wait_until "$WAIT_S" recv_q_full || fail "held: the client's receive queue filled"
# sockwayd's socket to it: bytes queued (w) within its send buffer (tb) and one message.
mem=$(ss -tnmH state established "sport = :$P_SWD" "dst $HOST_IP%se$$h" 2>/dev/null | tr -d '\n' |
	sed -n 's/.*skmem:(\([^)]*\)).*/\1/p')
[ -z "$mem" ] && mem=$(ss -tnmH state established "sport = :$P_SWD" | tr -d '\n' |
	sed -n 's/.*skmem:(\([^)]*\)).*/\1/p')
w=$(tr ',' '\n' <<<"$mem" | sed -n 's/^w//p' | head -n 1)
tb=$(tr ',' '\n' <<<"$mem" | sed -n 's/^tb//p' | head -n 1)
echo "# held: sockwayd's socket to the held client: skmem($mem)"
le "held: its queued bytes within its send buffer and one 256 KiB piece" "${w:-0}" $((${tb:-0} + 262144 * 5 / 4 + 4096))
touch "$TMP/held.go"
wait "$held"
cmp -s "$TMP/ref-drip" "$TMP/got-held"
eq "held: the body whole once the client reads again" "$?" 0
echo "# held: spliced $(($(stat_of spliced_bytes) - s0)) of $MIB8 body bytes"
le "held: not all of it by the kernel" $(($(stat_of spliced_bytes) - s0)) $((MIB8 - 1))
finish
