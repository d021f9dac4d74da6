#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# sockwayd's response bodies through a pipe (user/helper/pipe.c): on the userspace path, the
# rest of a Content-Length body of 32 KiB or more moves from the backend's socket to the
# client's with splice(2), never copied into sockwayd. The path of remote clients and remote
# backends, which the kernel fast path cannot help; here clients and backends are local but
# in no accelerated cgroup, which is the same to sockwayd.
# Both sockwayds run each section: one --no-accel, one by default (in its own accelerated
# cgroup, whose sockets with no accelerated peer leave the fast path, and only then may
# take the pipe). Each body is checked byte for byte against the backend's sha256, and
# sockway_piped_bytes_total proves which path the bytes took. The hazards: bodies that come
# in pieces, keep-alive and pipelined requests behind a piped body, a client that stops
# reading (the pipe fills, the client's socket refuses), a client killed mid-body (its pipe
# must close, not go back to the pool with its bytes), a backend that dies mid-body or resets
# once sockwayd holds the whole body, sizes around the threshold, HEAD, and
# sockets on the fast path (accelerated clients and backends), which must never be piped.
# Section 6 of each mode resets the backend's connection once sockwayd holds the body;
# section 7 ends a close-delimited body with a close, then cuts one with a reset.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

P_WHOLE=$(port 10)
P_DRIP=$(port 11)
P_CUT=$(port 12)
P_BIG=$(port 13)
P_SIZES=$(port 14)
P_RST=$(port 15)
P_NA=$(port 20)
P_NA_ADMIN=$(port 21)
P_DEF=$(port 22)
P_DEF_ADMIN=$(port 23)
P_NOPIPE=$(port 24)
P_NOPIPE_ADMIN=$(port 25)
P_AWHOLE=$(port 26)
P_RT=$(port 27)
P_RT_ADMIN=$(port 28)
P_FD=$(port 29)
P_FD_ADMIN=$(port 30)
P_SMALLP=$(port 31)
P_CLOSED=$(port 32)
MIB1=1048576
MIB4=4194304
MIB8=8388608
MIB32=33554432

sha_of() {
	sha256sum <"$1" | awk '{ print $1 }'
}

# get PORT PATH NAME [CURL ARGS]: a GET through sockwayd, body in $TMP/NAME; "CODE SIZE".
get() {
	local p=$1 path=$2 name=$3
	shift 3
	curl -s --max-time 60 -o "$TMP/$name" -w '%{http_code} %{size_download}' "$@" \
		"http://127.0.0.1:$p$path"
}

# piped ADMIN_PORT: sockway_piped_bytes_total of that sockwayd.
piped() {
	curl -s --max-time 30 "http://127.0.0.1:$1/metrics" |
		awk '$1 == "sockway_piped_bytes_total" { print $2 }'
}

# sockets PID: the socket file descriptors sockwayd PID holds.
sockets() {
	find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l
}

# cpu_ticks PID: user + system CPU time of process PID, in clock ticks (all threads).
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# not_busy DESC PID: PID takes under a third of a CPU-second in a second of wall time. A
# window measured, not a rate assumed: a worker woken for nothing again and again spins at
# a whole CPU (101 ticks in the runs that found it), and keeps most of it on a busy
# machine; an idle one takes nothing.
not_busy() {
	local t0
	t0=$(cpu_ticks "$2")
	sleep 1
	le "$1 (CPU ticks in 1 s)" $(($(cpu_ticks "$2") - t0)) 33
}

# pipes PID: the pipe file descriptors sockwayd PID holds (two per pipe).
pipes() {
	find "/proc/$1/fd" -lname 'pipe:*' 2>/dev/null | wc -l
}

# send_q PORT: the bytes waiting in the send queues of sockwayd's sockets to clients on PORT.
send_q() {
	ss -tnH state established "( sport = :$1 )" | awk '{ s += $2 } END { print s + 0 }'
}

check "load" "$SOCKWAY" load
warn0=$(kernel_warnings)

# Backends in no accelerated cgroup: 1 MiB in one send (as most servers send), 8 MiB head
# first and then in 256 KiB pieces 2 ms apart, the same dying after 3 MiB, and 32 MiB in one
# send (what a client that stops reading backs up).
spawn whole python3 tests/integration/drip_backend.py "$P_WHOLE" $MIB1 0
spawn drip python3 tests/integration/drip_backend.py "$P_DRIP" $MIB8
spawn cut python3 tests/integration/drip_backend.py "$P_CUT" $MIB8 262144 2 3145728
spawn big python3 tests/integration/drip_backend.py "$P_BIG" $MIB32 0
# 4 MiB in 16 KiB pieces 1 ms apart: each read finds less than a read takes (a slow or
# remote backend), and the body must take the pipe all the same.
spawn smallp python3 tests/integration/drip_backend.py "$P_SMALLP" $MIB4 16384 1
# 1 MiB in one send, reset once acknowledged and the test says so (section 6).
DRIP_RESET_GO=$TMP/rst6 spawn rst python3 tests/integration/drip_backend.py "$P_RST" $MIB1 0
# 1 MiB close-delimited (no Content-Length, the backend closes after it; section 7).
DRIP_CLOSE=1 spawn closed python3 tests/integration/drip_backend.py "$P_CLOSED" $MIB1 0
for b in whole drip cut big rst smallp closed; do
	wait_until "$WAIT_S" grep -q ready "$TMP/$b.log" || fail "$b backend did not start" "$(cat "$TMP/$b.log")"
done
SHA1=$(head -1 "$TMP/whole.log")
SHA8=$(head -1 "$TMP/drip.log")
SHA32=$(head -1 "$TMP/big.log")
SHA4=$(head -1 "$TMP/smallp.log")
for spec in "whole $P_WHOLE" "drip $P_DRIP" "cut $P_CUT" "big $P_BIG" "rst $P_RST" \
	"smallp $P_SMALLP" "closed $P_CLOSED"; do
	set -- $spec
	check "backend $1" "$SOCKWAY" backend create "$1" "127.0.0.1:$2"
	check "endpoint $1" "$SOCKWAY" endpoint create "$1" --route /"$1" --backend "$1"
done

# Started with a soft open file limit of 1024 (the shell's is put back after).
nofile=$(ulimit -Sn)
ulimit -Sn 1024
start_sockwayd "$P_NA" "$P_NA_ADMIN" --workers 1 --no-accel
NA_PID=$SWD_PID
ulimit -Sn "$nofile"
# Descriptors per slow client (its socket, its upstream's, a pipe's two): sockwayd raises
# its soft limit to the hard one.
eq "sockwayd's open file limit is raised to the hard limit" \
	"$(awk '/^Max open files/ { print ($4 == $5) }' "/proc/$NA_PID/limits")" 1
[ -n "$CGROUP2" ] || fail "a cgroup v2 hierarchy is mounted (for the default sockwayd)"
# The default: sockwayd joins its own accelerated cgroup.
start_sockwayd "$P_DEF" "$P_DEF_ADMIN" --workers 1
DEF_PID=$SWD_PID
check "the default sockwayd is accelerated" sockwayd_accelerated "$DEF_PID"

for spec in "no-accel $P_NA $P_NA_ADMIN $NA_PID" "default $P_DEF $P_DEF_ADMIN $DEF_PID"; do
	set -- $spec
	m=$1 p=$2 a=$3 pid=$4

	# --- 1. bodies through the pipe, byte for byte --------------------------------------------
	before=$(piped "$a")
	eq "$m 1: 1 MiB in one send" "$(get "$p" /whole/a w1)" "200 $MIB1"
	eq "$m 1: its bytes" "$(sha_of "$TMP/w1")" "$SHA1"
	# All but what came with the head, in the first read (64 KiB at most).
	ge "$m 1: piped all but the first read" "$(($(piped "$a") - before))" $((MIB1 - 65536))
	before=$(piped "$a")
	eq "$m 1: 8 MiB in pieces" "$(get "$p" /drip/a d1)" "200 $MIB8"
	eq "$m 1: its bytes" "$(sha_of "$TMP/d1")" "$SHA8"
	ge "$m 1: piped all but the first read" "$(($(piped "$a") - before))" $((MIB8 - 65536))
	before=$(piped "$a")
	eq "$m 1: 4 MiB in 16 KiB pieces" "$(get "$p" /smallp/a sp1)" "200 $MIB4"
	eq "$m 1: its bytes" "$(sha_of "$TMP/sp1")" "$SHA4"
	ge "$m 1: piped all but the first read" "$(($(piped "$a") - before))" $((MIB4 - 65536))

	# --- 2. keep-alive and pipelining behind piped bodies ----------------------------------------
	KA_OUT=$TMP/ka-$m python3 tests/integration/ka_client.py "$p" /whole/k 4 seq >"$TMP/ka.out" 2>&1
	eq "$m 2: 4 bodies in turn on one connection" "$(cut -d' ' -f1 "$TMP/ka.out")" 4
	check "$m 2: each byte for byte" bodies_ok "$TMP/ka-$m" 4 "$SHA1"
	KA_OUT=$TMP/kp-$m python3 tests/integration/ka_client.py "$p" /drip/k 3 pipe >"$TMP/kp.out" 2>&1
	eq "$m 2: 3 pipelined 8 MiB bodies" "$(cut -d' ' -f1 "$TMP/kp.out")" 3
	check "$m 2: each byte for byte, in order" bodies_ok "$TMP/kp-$m" 3 "$SHA8"

	# A backend that sends a second response right behind a piped body (bytes past its
	# Content-Length): the splice takes exactly the body, the rest stays in the socket,
	# and the connection must not go back to the pool with it, where the next request
	# (this client's pipelined one, or another client's) would read it as its answer.
	KA_OUT=$TMP/kt-$m python3 tests/integration/ka_client.py "$p" /whole/tail 3 pipe >"$TMP/kt.out" 2>&1
	eq "$m 2: 3 pipelined bodies, each with bytes behind it" "$(cut -d' ' -f1 "$TMP/kt.out")" 3
	check "$m 2: each byte for byte: the bytes behind one are nobody's answer" \
		bodies_ok "$TMP/kt-$m" 3 "$SHA1"

	# --- 3. a client that stops reading ------------------------------------------------------------
	# 32 MiB in one send: the client's queue fills, then sockwayd's send queue to it; the
	# pipe holds what it read and the backend waits. Then the client reads on.
	rm -f "$TMP/go3"
	spawn hold3 python3 tests/integration/hold_client.py "$p" /big/h "$TMP/h3" "$TMP/go3" 65536
	hold3=$SPAWNED
	wait_until "$WAIT_S" test -e "$TMP/go3.held" || fail "$m 3: the client got the head"
	check "$m 3: sockwayd's send queue to it fills (over 1 MiB)" \
		wait_until "$WAIT_S" eval '[ "$(send_q "$p")" -gt 1048576 ]'
	touch "$TMP/go3"
	wait "$hold3"
	eq "$m 3: then it reads it all" "$(cat "$TMP/hold3.log")" "200 $MIB32"
	eq "$m 3: byte for byte" "$(sha_of "$TMP/h3")" "$SHA32"

	# --- 4. a client killed mid-body: its pipe closes ----------------------------------------------
	p0=$(pipes "$pid")
	rm -f "$TMP/go4"
	spawn hold4 python3 tests/integration/hold_client.py "$p" /big/k "$TMP/h4" "$TMP/go4" 65536
	hold4=$SPAWNED
	wait_until "$WAIT_S" test -e "$TMP/go4.held" || fail "$m 4: the client got the head"
	check "$m 4: the body backs up" wait_until "$WAIT_S" eval '[ "$(send_q "$p")" -gt 1048576 ]'
	stop_pid "$hold4" KILL
	# Section 3's pipe was kept, empty, and this body took it; it holds bytes now, so it
	# is closed rather than kept for the next body (which would get them).
	ge "$m 4: a spare pipe (section 3's) was there" "$p0" 2
	check "$m 4: the pipe that held its bytes is closed, not kept" \
		wait_until "$WAIT_S" eval '[ "$(pipes "$pid")" -eq $((p0 - 2)) ]'
	eq "$m 4: and the next body is whole" "$(get "$p" /whole/b w4)" "200 $MIB1"
	eq "$m 4: byte for byte" "$(sha_of "$TMP/w4")" "$SHA1"

	# --- 5. a backend dying mid-body -----------------------------------------------------------
	code=$(get "$p" /cut/a c5)
	rc=$?
	le "$m 5: the client gets less than the body" "${code#* }" $((MIB8 - 1))
	eq "$m 5: and a close (curl: partial file)" "$rc" 18
	eq "$m 5: the bytes it got are the body's" "$(head -c "$(stat -c %s "$TMP/c5")" "$TMP/d1" | sha256sum | cut -d' ' -f1)" "$(sha_of "$TMP/c5")"
	eq "$m 5: sockwayd lives on" "$(get "$p" /whole/c w5)" "200 $MIB1"

	# --- 6. a backend that resets once the body is all with sockwayd -----------------------------
	# The client stops reading; the backend waits until sockwayd's socket acknowledged the
	# whole body, then resets it. Whatever sockwayd holds (its socket's queue, the pipe)
	# still reaches the client, and the reset must not wake the worker for nothing while
	# the client waits (epoll reports a reset whatever the mask), or it would spin, a
	# CPU-second per second. Here the body (1 MiB) fits the client's side and the pipe, so
	# the upstream is back in its pool when the reset comes; a reset while the pipe is full
	# and body is still queued on the upstream's socket (which reactor_mod's empty mask is
	# for) depends on how far the kernel grows each socket's buffers, and is not made here.
	rm -f "$TMP/go6" "$TMP/rst6"
	n6=$((${n6:-0} + 1))
	spawn hold6 python3 tests/integration/hold_client.py "$p" /rst/reset "$TMP/h6" "$TMP/go6"
	hold6=$SPAWNED
	wait_until "$WAIT_S" test -e "$TMP/go6.held" || fail "$m 6: the client got the head"
	check "$m 6: sockwayd holds the whole body" \
		wait_until "$WAIT_S" eval '[ "$(grep -c acknowledged "$TMP/rst.log")" -ge "$n6" ]'
	s1=$(sockets "$pid")
	touch "$TMP/rst6"
	check "$m 6: the backend reset" \
		wait_until "$WAIT_S" eval '[ "$(grep -c "reset: sent" "$TMP/rst.log")" -ge "$n6" ]'
	not_busy "$m 6: the reset does not keep sockwayd busy while the client waits" "$pid"
	touch "$TMP/go6"
	wait "$hold6"
	eq "$m 6: then the client reads the whole body" "$(cat "$TMP/hold6.log")" "200 $MIB1"
	eq "$m 6: byte for byte" "$(sha_of "$TMP/h6")" "$SHA1"
	check "$m 6: and the reset connection is closed" \
		wait_until "$WAIT_S" eval '[ "$(sockets "$pid")" -le $((s1 - 2)) ]'

	# --- 7. a close-delimited body: it ends where the backend closes, not where it resets ------
	# A reset ends no body: the client must see one too (a close would say "whole").
	code=$(get "$p" /closed/a c7)
	rc=$?
	eq "$m 7: a close-delimited body, whole, and a clean close" "$code $rc" "200 $MIB1 0"
	eq "$m 7: byte for byte" "$(sha_of "$TMP/c7")" "$SHA1"
	get "$p" /closed/reset r7 >/dev/null
	eq "$m 7: one the backend resets reaches the client as a reset (curl: recv failure)" "$?" 56
	eq "$m 7: sockwayd lives on" "$(get "$p" /whole/r7 w7)" "200 $MIB1"
done

# --- 6. sizes around the threshold, and HEAD -------------------------------------------------------
# Through the default sockwayd: just under 32 KiB (never piped), 96 KiB (the first read
# takes up to 64 KiB, head included, so at least 32 KiB are left: piped), 1 MiB and a byte
# (the last pipe load is one byte), and a HEAD of 8 MiB.
for size in 32767 98304 1048577; do
	spawn "s$size" python3 tests/integration/drip_backend.py "$P_SIZES" "$size" 0
	sp=$SPAWNED
	wait_until "$WAIT_S" grep -q ready "$TMP/s$size.log" || fail "size $size backend did not start"
	sha=$(head -1 "$TMP/s$size.log")
	check "6: backend sizes" "$SOCKWAY" backend create sizes "127.0.0.1:$P_SIZES"
	check "6: endpoint sizes" "$SOCKWAY" endpoint create sizes --route /sizes --backend sizes
	before=$(piped "$P_DEF_ADMIN")
	eq "6: $size bytes" "$(get "$P_DEF" /sizes/a s6)" "200 $size"
	eq "6: $size bytes, byte for byte" "$(sha_of "$TMP/s6")" "$sha"
	# Under 32 KiB after the first read (up to 64 KiB, head included): copied.
	if [ "$size" -lt 32768 ]; then
		eq "6: $size bytes: copied, not piped" "$(piped "$P_DEF_ADMIN")" "$before"
	else
		ge "6: $size bytes: piped (at least what the first read cannot have taken)" \
			"$(($(piped "$P_DEF_ADMIN") - before))" $((size - 65536))
	fi
	check "6: endpoint delete" "$SOCKWAY" endpoint delete sizes
	check "6: backend delete" "$SOCKWAY" backend delete sizes
	stop_pid "$sp"
done
eq "6: HEAD of 8 MiB: a head, no body" "$(get "$P_DEF" /drip/h h6 -I)" "200 0"
eq "6: and the connection serves on (keep-alive)" \
	"$(curl -s --max-time 30 -o /dev/null -w '%{http_code} %{num_connects}\n' -I "http://127.0.0.1:$P_DEF/drip/h" -o /dev/null "http://127.0.0.1:$P_DEF/whole/h" | tr '\n' ' ')" \
	"200 1 200 0 "

# --- 9. a client that stops reading for good -----------------------------------------------------
# The backend waits for the client, not the other way round: at the response timeout the
# client is closed, with no error counted against the backend and its replica not marked
# down (one slow client could otherwise take a replica out again and again).
start_sockwayd "$P_RT" "$P_RT_ADMIN" --workers 1 --no-accel --response-timeout 1000
rm -f "$TMP/go9"
errs9=$(cell big big primary '[.errors[]] | add')
spawn hold9 python3 tests/integration/hold_client.py "$P_RT" /big/t "$TMP/h9" "$TMP/go9" 65536
hold9=$SPAWNED
wait_until "$WAIT_S" test -e "$TMP/go9.held" || fail "9: the client got the head"
check "9: sockwayd closes the client that takes nothing" \
	wait_until "$WAIT_S" eval '[ -z "$(ss -tnH state established "( sport = :$P_RT )")" ]'
eq "9: no upstream error counted against the backend" "$(cell big big primary '[.errors[]] | add')" "$errs9"
eq "9: and its replica serves the next client" "$(get "$P_RT" /big/n b9)" "200 $MIB32"
touch "$TMP/go9"
stop_pid "$hold9" KILL

# --- 10. out of file descriptors ---------------------------------------------------------------------
# sockwayd with a hard limit of 48 descriptors, and 80 idle clients: accept fails (EMFILE)
# with connections left in the backlog, and the listener stays readable. The worker must
# rest its listeners until the next tick rather than be woken for them again and again,
# and take connections again once descriptors are free. The same for a probe of the admin
# port: its thread rests its listener too, and answers once descriptors are free.
# A client connected before, whose next request needs a new upstream connection, gets a 503
# (sockwayd's shortage, not the backend's): no connect error counted against the backend,
# no retry, and its replica not marked down (--replica-down 600000 would show it: its next
# request, once descriptors are free, would get a 503 too).
# --header-timeout keeps the idle clients' descriptors taken for as long as the section
# runs (the default 10 s would free them, and let backlog connections in, part way).
cat >"$TMP/swd-nofile" <<EOS
#!/bin/sh
exec prlimit --nofile=48:48 "$SOCKWAYD" "\$@"
EOS
chmod +x "$TMP/swd-nofile"
SOCKWAYD=$TMP/swd-nofile start_sockwayd "$P_FD" "$P_FD_ADMIN" --workers 1 --no-accel \
	--header-timeout 600000 --replica-down 600000
FD_PID=$SWD_PID
SWD_ADMIN=$P_FD_ADMIN
eq "10: sockwayd runs with 48 descriptors" \
	"$(awk '/^Max open files/ { print $4 }' "/proc/$FD_PID/limits")" 48
rm -f "$TMP/go10" "$TMP/go10a" "$TMP/go10b"
# One keep-alive connection, three requests: a HEAD through drip now (the connection is
# sockwayd's, and whole's pool stays empty), a GET through whole on go10a, another on go10b.
# Prints "N: STATUS BODY" for each (the body's length when it is long).
spawn ka10 python3 -c '
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(60)
buf = b""
def ask(n, method, path):
    global buf
    s.sendall(("%s %s HTTP/1.1\r\nHost: t\r\n\r\n" % (method, path)).encode())
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536) or sys.exit("%d: closed" % n)
    head, _, buf = buf.partition(b"\r\n\r\n")
    size = 0 if method == "HEAD" else [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                                       if l.lower().startswith(b"content-length:")][0]
    while len(buf) < size:
        buf += s.recv(1 << 20) or sys.exit("%d: closed" % n)
    body, buf = buf[:size], buf[size:]
    print(n, head.split(b" ")[1].decode(),
          body.decode(errors="replace").strip() if size < 100 else size, flush=True)
def wait_for(f):
    while not os.path.exists(f):
        time.sleep(0.05)
ask("1:", "HEAD", "/drip/k")
wait_for(sys.argv[2])
ask("2:", "GET", "/whole/e")
wait_for(sys.argv[3])
ask("3:", "GET", "/whole/k")
' "$P_FD" "$TMP/go10a" "$TMP/go10b"
ka10=$SPAWNED
check "10: a keep-alive client is served before descriptors run out" \
	wait_until "$WAIT_S" grep -q '^1: 200' "$TMP/ka10.log"
fds10=$(find "/proc/$FD_PID/fd" | wc -l)
refused10=$(cell whole whole primary '.errors.connect_refused')
s5xx10=$(cell whole whole primary '.status."5xx"')
retried10=$(metric 'sockway_upstream_retries_total{reason="connect"}')
spawn hold10 python3 -c '
import os, socket, sys, time
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(80)]
print("held", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
' "$P_FD" "$TMP/go10"
hold10=$SPAWNED
check "10: every descriptor is in use" \
	wait_until "$WAIT_S" eval '[ "$(find "/proc/$FD_PID/fd" | wc -l)" -gt 48 ]'
not_busy "10: the connections waiting in the backlog do not keep sockwayd busy" "$FD_PID"
spawn healthz10 curl -s --max-time 60 -w ' %{http_code}' "http://127.0.0.1:$P_FD_ADMIN/healthz"
healthz10=$SPAWNED
check "10: a probe's connection waits in the admin port's backlog" \
	wait_until "$WAIT_S" eval '[ -n "$(ss -tnH state established "( dport = :$P_FD_ADMIN )")" ]'
not_busy "10: nor does the probe waiting on the admin port" "$FD_PID"
touch "$TMP/go10a"
check "10: the keep-alive client's request through whole is answered" \
	wait_until "$WAIT_S" grep -q '^2: ' "$TMP/ka10.log"
eq "10: no descriptor for a new upstream connection: 503, sockwayd's shortage" \
	"$(sed -n 's/^2: //p' "$TMP/ka10.log")" "503 sockwayd is out of descriptors or memory"
eq "10: counted as a 5xx of whole" "$(($(cell whole whole primary '.status."5xx"') - s5xx10))" 1
eq "10: and no connect error against whole" \
	"$(cell whole whole primary '.errors.connect_refused')" "$refused10"
touch "$TMP/go10"
wait "$hold10"
wait "$healthz10"
eq "10: descriptors free again: the probe gets its answer (/healthz)" \
	"$(tr -d '\n' <"$TMP/healthz10.log")" "ok 200"
eq "10: the 503 was not retried (sockway_upstream_retries_total)" \
	"$(metric 'sockway_upstream_retries_total{reason="connect"}')" "$retried10"
check "10: sockwayd holds no more descriptors than before the idle clients came" \
	wait_until "$WAIT_S" eval '[ "$(find "/proc/$FD_PID/fd" | wc -l)" -le "$fds10" ]'
touch "$TMP/go10b"
wait "$ka10"
eq "10: whole's replica is not down: the client's next request gets its body at once" \
	"$(sed -n 's/^3: //p' "$TMP/ka10.log")" "200 $MIB1"
check "10: descriptors free again: sockwayd takes connections (a 1 MiB body)" \
	wait_until "$WAIT_S" eval '[ "$(get "$P_FD" /whole/f f10)" = "200 $MIB1" ]'
ge "10: and counted the pauses (sockway_accept_paused_total)" \
	"$(metric sockway_accept_paused_total)" 1

# --- 7. --no-pipe: the same bodies, copied ---------------------------------------------------------
start_sockwayd "$P_NOPIPE" "$P_NOPIPE_ADMIN" --workers 1 --no-accel --no-pipe
eq "7: --no-pipe: 8 MiB" "$(get "$P_NOPIPE" /drip/n n7)" "200 $MIB8"
eq "7: byte for byte" "$(sha_of "$TMP/n7")" "$SHA8"
eq "7: nothing piped" "$(piped "$P_NOPIPE_ADMIN")" 0

# --- 8. sockets on the fast path never take the pipe ---------------------------------------------
# An accelerated client and an accelerated backend: the kernel moves the bytes (its own
# splice), or sockwayd reads them; splice(2) would miss bytes redirected into the upstream's
# queue of the fast path.
cgroup_new accel
ACG=$CGROUP
check "8: accel add a cgroup" "$SOCKWAY" accel add "$ACG"
SPAWN_CGROUP=$ACG spawn awhole python3 tests/integration/drip_backend.py "$P_AWHOLE" $MIB1 0
wait_until "$WAIT_S" grep -q ready "$TMP/awhole.log" || fail "8: accelerated backend did not start"
check "8: backend awhole" "$SOCKWAY" backend create awhole "127.0.0.1:$P_AWHOLE"
check "8: endpoint awhole" "$SOCKWAY" endpoint create awhole --route /awhole --backend awhole
before=$(piped "$P_DEF_ADMIN")
for i in 1 2 3; do
	eq "8: accelerated client, accelerated backend ($i)" \
		"$( (SPAWN_CGROUP=$ACG lib_exec curl -s --max-time 30 -o "$TMP/a8" -w '%{http_code} %{size_download}' "http://127.0.0.1:$P_DEF/awhole/$i"))" "200 $MIB1"
	eq "8: byte for byte ($i)" "$(sha_of "$TMP/a8")" "$SHA1"
	eq "8: plain client, accelerated backend ($i)" "$(get "$P_DEF" /awhole/p$i a8p)" "200 $MIB1"
	eq "8: byte for byte ($i)" "$(sha_of "$TMP/a8p")" "$SHA1"
	eq "8: accelerated client, plain backend ($i)" \
		"$( (SPAWN_CGROUP=$ACG lib_exec curl -s --max-time 30 -o "$TMP/a8c" -w '%{http_code} %{size_download}' "http://127.0.0.1:$P_DEF/whole/$i"))" "200 $MIB1"
	eq "8: byte for byte ($i)" "$(sha_of "$TMP/a8c")" "$SHA1"
done
eq "8: none of them piped" "$(piped "$P_DEF_ADMIN")" "$before"
# sockwayd --no-accel and an accelerated backend: sockops leaves the backend's end out too
# (its peer, sockwayd's socket, is not accelerated), nothing can be redirected, and sockwayd
# asks the map for both ends (sock_on_fast_path) before it pipes.
before=$(piped "$P_NA_ADMIN")
eq "8: --no-accel, accelerated backend" "$(get "$P_NA" /awhole/n a8n)" "200 $MIB1"
eq "8: byte for byte" "$(sha_of "$TMP/a8n")" "$SHA1"
ge "8: piped: both ends are off the fast path" "$(($(piped "$P_NA_ADMIN") - before))" $((MIB1 - 65536))

eq "no kernel warnings" "$(kernel_warnings)" "$warn0"
finish
