#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The egress splice: a remote client (a network namespace behind a veth pair) of
# an accelerated sockwayd, whose backends are local and accelerated. sockops files
# sockwayd's accepted socket in sock_hash even though its peer is remote, and a response the
# kernel takes goes from the backend's send straight out of that socket (sk_msg redirect to
# its egress), never through sockwayd. Each body is compared byte for byte with the
# backend's own; accel_stats.spliced_bytes and sockway_kernel_responses_total prove which
# path the bytes took. Then what must not go wrong around it: sockwayd's socket is in
# egress_hash, not sock_hash (nothing is redirected into it); a remote client whose requests
# go to a remote backend has its socket taken out again (and gets the pipe); pipelined
# requests; clients that reset mid-response; the kill switch flipped under load; a
# non-blocking backend with the not-sent low-water mark set; a sockwayd killed mid-body and
# a new connection from the same port; and --no-egress.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

P_SMALL=$(port 10)
P_WHOLE=$(port 11)
P_DRIP=$(port 12)
P_SWD=$(port 13)
SWD_ADMIN=$(port 14)
P_FAR=$(port 15)
P_NB=$(port 16)
P_DH=$(port 17)
P_SRC=$(port 18)
B_ADMIN=$(port 19)
MIB1=1048576
MIB8=8388608

check "load" "$SOCKWAY" load
cgroup_new clients
CG=$CGROUP
check "accel add the backends' cgroup" "$SOCKWAY" accel add "$CG"

NS=swegr$$
NET=$(free_net 10.206)
LOWAT0=$(cat /proc/sys/net/ipv4/tcp_notsent_lowat)
WMEM0=$(cat /proc/sys/net/ipv4/tcp_wmem)
trap 'sysctl -qw net.ipv4.tcp_notsent_lowat="$LOWAT0" net.ipv4.tcp_wmem="$WMEM0"; lib_stop_all
	ip netns del "$NS" 2>/dev/null; lib_cleanup' EXIT
# New sockets start with a 4 MiB send buffer, for the test's length: the kernel sends a
# response out only when the whole send fits, and how fast TCP grows a buffer from the
# default 16 KiB depends on how busy the machine is. (A buffer that fills is the held
# section's case: the kernel stops, sockwayd goes on.)
sysctl -qw net.ipv4.tcp_wmem="4096 4194304 4194304"
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
whole_pid=$SPAWNED
SPAWN_CGROUP=$CG spawn drip python3 tests/integration/drip_backend.py "$P_DRIP" $MIB8
wait_until "$WAIT_S" grep -q ready "$TMP/whole.log" || fail "backend whole did not start"
wait_until "$WAIT_S" grep -q ready "$TMP/drip.log" || fail "backend drip did not start"
# A backend on the client's side of the veth (another host, as far as sockops can tell).
spawn far nsenter --net="/run/netns/$NS" env DRIP_BIND="10.206.$NET.2" \
	python3 tests/integration/drip_backend.py "$P_FAR" $MIB1 0
wait_until "$WAIT_S" grep -q ready "$TMP/far.log" || fail "backend far did not start"
for b in small:$P_SMALL whole:$P_WHOLE drip:$P_DRIP; do
	check "backend ${b%%:*}" "$SOCKWAY" backend create "${b%%:*}" "127.0.0.1:${b#*:}"
	check "endpoint ${b%%:*}" "$SOCKWAY" endpoint create "${b%%:*}" --route "/${b%%:*}" \
		--backend "${b%%:*}"
done
check "backend far" "$SOCKWAY" backend create far "10.206.$NET.2:$P_FAR"
check "endpoint far" "$SOCKWAY" endpoint create far --route /far --backend far

ACCEL_MODE=on
start_sockwayd "$P_SWD" "$SWD_ADMIN" --workers 2 --listen "$HOST_IP:$P_SWD"

# The reference bodies, straight from the backends.
curl -s --max-time 30 -o "$TMP/ref-small" "http://127.0.0.1:$P_SMALL/small"
curl -s --max-time 30 -o "$TMP/ref-whole" "http://127.0.0.1:$P_WHOLE/whole"
curl -s --max-time 60 -o "$TMP/ref-drip" "http://127.0.0.1:$P_DRIP/drip"
# The far backend sends the same seeded body as whole (same size).
cp "$TMP/ref-whole" "$TMP/ref-far"

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
r0=$(metric sockway_batched_reads_total)
w0=$(metric sockway_batched_writes_total)
remote small 200
ge "small: the kernel passed responses on whole" \
	$(($(metric sockway_kernel_responses_total) - k0)) 100
# The remote client's requests come in sockwayd's batched reads (its writes stay in place),
# and go to the accelerated backend in its batched writes.
ge "small: sockwayd read the requests in its batches" \
	$(($(metric sockway_batched_reads_total) - r0)) 100
ge "small: and wrote them to the backend in its batches" \
	$(($(metric sockway_batched_writes_total) - w0)) 100
ge "small: spliced bytes grew" $(($(stat_of spliced_bytes) - s0)) 10000

s0=$(stat_of spliced_bytes)
remote whole 20
ge "whole: the kernel sent 1 MiB responses out (once the connection's buffers grew)" \
	$(($(stat_of spliced_bytes) - s0)) $MIB1
s0=$(stat_of spliced_bytes)
remote drip 4
ge "drip: body bytes went out by the egress splice" $(($(stat_of spliced_bytes) - s0)) $MIB1
# The same with Connection: close: the kernel cannot take the whole response (sockwayd adds
# Connection: close to its head), so sockwayd writes the head and arms the body splice
# behind it, which needs the head out of its buffer at once (a head left for the round's
# batched writes made it decline, and the body went through sockwayd).
s0=$(stat_of spliced_bytes)
bad=0
for i in 1 2; do
	nsenter --net="/run/netns/$NS" curl -s --max-time 120 -H 'Connection: close' \
		-o "$TMP/got-drip-close-$i" "http://$HOST_IP:$P_SWD/drip"
	cmp -s "$TMP/ref-drip" "$TMP/got-drip-close-$i" || bad=$((bad + 1))
done
eq "drip, Connection: close: 2 responses byte for byte" "$bad" 0
ge "drip, Connection: close: body bytes went out by the egress splice" \
	$(($(stat_of spliced_bytes) - s0)) $MIB1

# A remote client that stops reading after the head of an 8 MiB body, on a connection that
# two whole 8 MiB bodies warmed first (TCP grew its buffers): the kernel moves what the
# socket of sockwayd's has room for in its send buffer (sk_msg.bpf.c, send_room), then stops,
# and sockwayd forwards the rest, whose flow TCP and sockwayd's buffers bound. The socket's
# queued bytes stay within its send buffer, and the body comes whole once the client reads
# again.
# recv_q_full: the held client's socket in the namespace has bytes waiting (its window fills).
recv_q_full() {
	nsenter --net="/run/netns/$NS" ss -tnH state established "dport = :$P_SWD" |
		awk '$1 > 100000 { ok = 1 } END { exit !ok }'
}
# The client's receive buffer grows to 2 MiB at most (its namespace's own tcp_rmem; it
# inherits the host's, 32 MiB here): with sockwayd's 4 MiB send buffer the two hold less
# than the body, so some of it must wait for sockwayd, whatever TCP's autotuning does.
RMEM_NS0=$(ip netns exec "$NS" cat /proc/sys/net/ipv4/tcp_rmem)
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_rmem="4096 131072 2097152"
HOLD_HOST=$HOST_IP HOLD_WARM=2 spawn held nsenter --net="/run/netns/$NS" \
	python3 tests/integration/hold_client.py "$P_SWD" /drip "$TMP/got-held" "$TMP/held.go"
held=$SPAWNED
wait_until "$WAIT_S" test -e "$TMP/held.go.warm" || fail "held: the client warmed its connection"
s0=$(stat_of spliced_bytes)
touch "$TMP/held.go.warm.go"
wait_until "$WAIT_S" test -e "$TMP/held.go.held" || fail "held: the client read the head"
wait_until "$WAIT_S" recv_q_full || fail "held: the client's receive queue filled"
# sockwayd's socket to it: bytes queued (w) within its send buffer (tb) and one message.
mem=$(ss -tnmH state established "sport = :$P_SWD" "dst 10.206.$NET.2" | tr -d '\n' |
	sed -n 's/.*skmem:(\([^)]*\)).*/\1/p')
w=$(tr ',' '\n' <<<"$mem" | sed -n 's/^w//p' | head -n 1)
tb=$(tr ',' '\n' <<<"$mem" | sed -n 's/^tb//p' | head -n 1)
echo "# held: sockwayd's socket to the held client: skmem($mem)"
if [ -n "$w" ] && [ -n "$tb" ]; then
	le "held: its queued bytes within its send buffer and one 256 KiB piece" "$w" \
		$((tb + 262144 * 5 / 4 + 4096))
else
	fail "held: sockwayd's socket to the held client in ss" "skmem($mem)"
fi
ge "held: the kernel sent body pieces out of it while the client held" \
	$(($(stat_of spliced_bytes) - s0)) 262144
touch "$TMP/held.go"
wait "$held"
cmp -s "$TMP/ref-drip" "$TMP/got-held"
eq "held: the body whole once the client reads again" "$?" 0
echo "# held: spliced $(($(stat_of spliced_bytes) - s0)) of $MIB8 body bytes since the head"
le "held: not all of it by the kernel" $(($(stat_of spliced_bytes) - s0)) $((MIB8 - 1))
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_rmem="$RMEM_NS0"

# --- a remote client's socket is in egress_hash, not in sock_hash ------------------------------
# in_addr MAP: entries of MAP (sock_addr, egress_addr) whose peer is the namespace's client.
CLIENT_IP32=$(python3 -c "import socket, struct; print(struct.unpack('<I', socket.inet_aton('10.206.$NET.2'))[0])")
in_addr() {
	bpftool -j map dump pinned "$SOCKWAY_PIN_ROOT/$1" |
		jq "[.[] | select(.formatted.key.remote_ip[0] == $CLIENT_IP32)] | length"
}
no_egress_left() {
	[ "$(in_addr egress_addr)" = 0 ]
}
wait_until "$WAIT_S" no_egress_left || fail "mark: egress_addr empty once the clients closed"
rm -f "$TMP/mark.go"
HOLD_HOST=$HOST_IP spawn mark nsenter --net="/run/netns/$NS" python3 \
	tests/integration/hold_client.py "$P_SWD" /small /dev/null "$TMP/mark.go"
mark=$SPAWNED
wait_until "$WAIT_S" test -e "$TMP/mark.go.held" || fail "mark: the client read the head"
eq "mark: the remote client's socket is in egress_addr" "$(in_addr egress_addr)" 1
eq "mark: and not in sock_addr" "$(in_addr sock_addr)" 0
u0=$(metric sockway_client_untracked_total)
touch "$TMP/mark.go"
wait "$mark"
eq "mark: its requests to a local accelerated backend kept it in" \
	$(($(metric sockway_client_untracked_total) - u0)) 0
wait_until "$WAIT_S" no_egress_left
eq "mark: its entry left egress_addr when it closed" "$(in_addr egress_addr)" 0

# --- pipelined requests from a remote client ------------------------------------------------
# bodies_whole FILE REF N: FILE holds N responses (as ka_client.py wrote them), each body
# equal to REF.
bodies_whole() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys
data, ref, n = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), int(sys.argv[3])
good = 0
while data:
    head, _, rest = data.partition(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    good += rest[:length] == ref
    data = rest[length:]
sys.exit(0 if good == n else 1)
PY
}
ka_remote() {
	nsenter --net="/run/netns/$NS" env KA_HOST="$HOST_IP" KA_OUT="$TMP/ka.out" \
		python3 tests/integration/ka_client.py "$P_SWD" "$@"
}
for mode in pipe half; do
	rm -f "$TMP/ka.out"
	out=$(ka_remote /whole 8 "$mode")
	echo "# pipelined ($mode): $out"
	eq "pipelined ($mode): 8 responses of 1 MiB, status 200" "$(cut -d' ' -f1 <<<"$out")" 8
	bodies_whole "$TMP/ka.out" "$TMP/ref-whole" 8
	eq "pipelined ($mode): every body byte for byte, in order" "$?" 0
done
# half_rounds LABEL N: N clients in turn pipeline 8 requests and half-close. Once the last
# exchange ends, the connection closes after its last bytes: if the client's socket cannot
# take them all at that moment, sockwayd must still wait for room (a round in three or four
# used to leave them in sockwayd until the keep-alive timeout).
half_rounds() {
	local i ok=0
	for i in $(seq "$2"); do
		rm -f "$TMP/ka.out"
		ka_remote /whole 8 half >/dev/null 2>&1 && bodies_whole "$TMP/ka.out" "$TMP/ref-whole" 8 &&
			ok=$((ok + 1))
	done
	eq "$1: $2 clients that pipelined 8 requests and half-closed got all 8 responses" "$ok" "$2"
}
half_rounds "half-close" 8

# --- a remote client of a remote backend leaves the map -------------------------------------
# Its socket is taken out at the first response bytes of the far backend (the kernel cannot
# reach it), and the rest of each body goes through the pipe (neither end on the map).
u0=$(metric sockway_client_untracked_total)
p0=$(metric sockway_piped_bytes_total)
s0=$(stat_of spliced_bytes)
rm -f "$TMP/ka.out"
out=$(ka_remote /far 4 seq)
bodies_whole "$TMP/ka.out" "$TMP/ref-far" 4
eq "far: 4 responses of a remote backend byte for byte" "$?" 0
eq "far: the client's socket was taken out of the map once" \
	$(($(metric sockway_client_untracked_total) - u0)) 1
ge "far: and its bodies went through the pipe" $(($(metric sockway_piped_bytes_total) - p0)) \
	$((3 * MIB1))
eq "far: nothing spliced by the kernel" $(($(stat_of spliced_bytes) - s0)) 0
# The same connection, a local backend next: served by sockwayd, not the kernel (the socket
# is off the map for good).
cat >"$TMP/mixed.py" <<'PY'
import os, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.settimeout(60)
out = open(sys.argv[3], "wb")
for path in sys.argv[4:]:
    s.sendall(b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            sys.exit(1)
        rest += d
    out.write(head + b"\r\n\r\n" + rest)
PY
s0=$(stat_of spliced_bytes)
nsenter --net="/run/netns/$NS" python3 "$TMP/mixed.py" "$HOST_IP" "$P_SWD" "$TMP/ka.out" \
	far whole whole
bodies_whole "$TMP/ka.out" "$TMP/ref-whole" 3
eq "mixed: far then local, one connection: bodies byte for byte" "$?" 0
eq "mixed: the local ones not spliced (the socket left the map)" \
	$(($(stat_of spliced_bytes) - s0)) 0

# --- remote clients that reset mid-response -------------------------------------------------
# Each reads three 1 MiB bodies whole, then up to 64 KiB of a fourth, and resets (SO_LINGER
# 0): the kernel may be sending out of sockwayd's socket right then. The backends and sockwayd go
# on, and the next responses are whole.
cat >"$TMP/reset.py" <<'PY'
import socket, struct, sys


def get(s, want):
    """Asks for /whole and reads want bytes of the answer (all of it: None)."""
    s.sendall(b"GET /whole HTTP/1.1\r\nHost: t\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    if want is None:
        want = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                if l.lower().startswith(b"content-length:")][0]
    while len(rest) < want:
        d = s.recv(65536)
        if not d:
            sys.exit(1)
        rest += d


for i in range(int(sys.argv[3])):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    s.settimeout(60)
    # Whole responses first: its send buffer grows until a 1 MiB response fits, which the
    # kernel needs before it sends one out of it.
    for _ in range(3):
        get(s, None)
    get(s, (i % 8) * 8192 + 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY
s0=$(stat_of spliced_bytes)
nsenter --net="/run/netns/$NS" python3 "$TMP/reset.py" "$HOST_IP" "$P_SWD" 20
eq "reset: 20 clients done" "$?" 0
echo "# reset: $(($(stat_of spliced_bytes) - s0)) bytes spliced to the 20 clients;" \
	"the backend's log: $(grep -c -i 'error' "$TMP/whole.log") error lines"
ge "reset: the kernel was sending to them" $(($(stat_of spliced_bytes) - s0)) 1
eq "reset: the backend still runs" "$(kill -0 "$whole_pid" 2>/dev/null; echo $?)" 0
eq "reset: sockwayd still runs" "$(kill -0 "$SWD_PID" 2>/dev/null; echo $?)" 0
remote whole 10

# --- the kill switch flipped while remote clients download ----------------------------------
# Two remote clients loop over small and 1 MiB responses (each checked byte for byte) while
# the switch flips 8 times; between flips the test waits for rounds done, not for a time.
loop_client() {
	local i=$1 n=0 bad=0
	while [ ! -e "$TMP/flip.stop" ]; do
		nsenter --net="/run/netns/$NS" curl -s --max-time 60 \
			-o "$TMP/fl$i-a" "http://$HOST_IP:$P_SWD/whole" \
			-o "$TMP/fl$i-b" "http://$HOST_IP:$P_SWD/small" \
			-o "$TMP/fl$i-c" "http://$HOST_IP:$P_SWD/whole"
		cmp -s "$TMP/fl$i-a" "$TMP/ref-whole" && cmp -s "$TMP/fl$i-b" "$TMP/ref-small" &&
			cmp -s "$TMP/fl$i-c" "$TMP/ref-whole" || bad=$((bad + 1))
		n=$((n + 1))
		echo "$n $bad" >"$TMP/fl$i.tmp" && mv "$TMP/fl$i.tmp" "$TMP/fl$i.n"
	done
}
rounds() {
	cat "$TMP"/fl*.n 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'
}
rounds_past() {
	[ "$(rounds)" -ge "$1" ]
}
rm -f "$TMP/flip.stop" "$TMP"/fl*.n
s0=$(stat_of spliced_bytes)
lp=()
for i in 1 2; do
	loop_client "$i" &
	lp+=($!)
	LIB_PIDS+=($!)
done
for f in 1 2 3 4 5 6 7 8; do
	wait_until "$WAIT_S" rounds_past $(($(rounds) + 2)) || fail "flip $f: the clients went on"
	if [ $((f % 2)) = 1 ]; then
		"$SOCKWAY" accel off >/dev/null || fail "flip: accel off"
	else
		"$SOCKWAY" accel on >/dev/null || fail "flip: accel on"
	fi
done
wait_until "$WAIT_S" rounds_past $(($(rounds) + 2)) || fail "flip: the clients went on at the end"
touch "$TMP/flip.stop"
for p in "${lp[@]}"; do
	wait "$p"
done
bad=$(cat "$TMP"/fl*.n | awk '{ b += $2 } END { print b + 0 }')
ge "flip: the kernel spliced while the switch was on" $(($(stat_of spliced_bytes) - s0)) 1
echo "# flip: $(rounds) rounds of 3 responses"
eq "flip: every response whole while the switch flipped 8 times" "$bad" 0
ge "flip: and the clients went on (rounds)" "$(rounds)" 18

# --- a non-blocking backend, with the not-sent low-water mark set ---------------------------
# With TCP_NOTSENT_LOWAT (here net.ipv4.tcp_notsent_lowat, for this section only) a send
# waits once that many bytes are queued and not yet sent. A redirect past it would be cut
# short after the kernel counted it whole: a non-blocking backend would get a short write
# and send the rest again, and the client a truncated response. The kernel must leave such
# responses to sockwayd (send_room); with the mark back to its default, it takes them.
SPAWN_CGROUP=$CG spawn nb python3 tests/integration/nb_backend.py "$P_NB" $MIB1
wait_until "$WAIT_S" grep -q ready "$TMP/nb.log" || fail "backend nb did not start"
check "backend nb" "$SOCKWAY" backend create nb "127.0.0.1:$P_NB"
check "endpoint nb" "$SOCKWAY" endpoint create nb --route /nb --backend nb
cp "$TMP/ref-whole" "$TMP/ref-nb"
sysctl -qw net.ipv4.tcp_notsent_lowat=16384
remote nb 20
sysctl -qw net.ipv4.tcp_notsent_lowat="$LOWAT0"
echo "# lowat: the backend's short writes: $(grep -c 'short write' "$TMP/nb.log")"
s0=$(stat_of spliced_bytes)
remote nb 10
ge "lowat: at the default mark, the kernel takes that backend's responses" \
	$(($(stat_of spliced_bytes) - s0)) $MIB1

# --- a sockwayd killed mid-body: a new connection from the same address and port ----------
# Two sockwayds share the listener (a restart's bridge); the one serving a remote client is
# killed while the kernel sends a body out of its socket and the backend has paused. The
# client resets and connects again from the same address and port, to the other one: the
# same tuple, another socket. When the backend goes on, the dead sockwayd's arming must not
# send the rest of that body into the new connection (the kernel checks the socket's
# cookie): the backend's sends fail instead, and the new connection's first bytes are the
# answer to its own request.
SPAWN_CGROUP=$CG DRIP_HOLD_AT=$MIB1 DRIP_HOLD_FILE="$TMP/dh.hold" spawn dh \
	python3 tests/integration/drip_backend.py "$P_DH" $MIB8 32768 2
wait_until "$WAIT_S" grep -q ready "$TMP/dh.log" || fail "backend dh did not start"
check "backend dh" "$SOCKWAY" backend create dh "127.0.0.1:$P_DH"
check "endpoint dh" "$SOCKWAY" endpoint create dh --route /dh --backend dh
spawn reuse nsenter --net="/run/netns/$NS" python3 tests/integration/reuse_client.py "$HOST_IP" \
	"$P_SWD" "10.206.$NET.2" "$P_SRC" "$TMP/step" "$TMP/dh.hold" /dh /small
reuse=$SPAWNED
wait_until "$WAIT_S" test -e "$TMP/step.read" || fail "reuse: the backend paused mid-body"
A_PID=$SWD_PID
A_ADMIN=$SWD_ADMIN
start_sockwayd "$P_SWD" "$B_ADMIN" --workers 2 --listen "$HOST_IP:$P_SWD"
stop_pid "$A_PID" KILL
touch "$TMP/step.1"
wait_until "$WAIT_S" test -e "$TMP/step.2" || fail "reuse: the client connected again"
SWD_ADMIN=$B_ADMIN
touch "$TMP/dh.hold"
wait_until "$WAIT_S" grep -q Error "$TMP/dh.log" ||
	fail "reuse: the backend's sends to the dead sockwayd failed"
touch "$TMP/step.3"
wait "$reuse"
eq "reuse: the new connection's first bytes answer its own request" \
	"$(tail -n 1 "$TMP/reuse.log")" 'HTTP/1.1 200'

# --- --no-egress -----------------------------------------------------------------------------
stop_pid "$SWD_PID"
start_sockwayd "$P_SWD" "$SWD_ADMIN" --workers 2 --listen "$HOST_IP:$P_SWD" --no-egress
s0=$(stat_of spliced_bytes)
remote whole 5
eq "no-egress: nothing spliced" $(($(stat_of spliced_bytes) - s0)) 0
ge "no-egress: the client's socket left the map at accept" \
	"$(metric sockway_client_untracked_total)" 1
half_rounds "no-egress, half-close" 8
finish
