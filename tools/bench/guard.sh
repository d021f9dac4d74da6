#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/guard.sh: the XDP guard against the same protection written as nftables
# rules, under a SYN flood, in one run.
#
#   tools/bench/guard.sh [--duration S] [--flood-pps N] [--drop-pps N] [--rate R]
#                                                                   (after make, as root)
#
# Two network namespaces, each on a veth pair to this host: an attacker that floods
# sockwayd's port with SYNs from one address, delivered as XDP frames the way a NIC hands
# packets to XDP (tools/bench/xdpflood.c: a raw socket's packets would reach the veth as
# socket buffers already, which hides what XDP saves), and a
# client that measures sockwayd with wrk over keep-alive connections. The protection sits
# on the host side of both pairs:
#   guard: sockway guard attach (native XDP), "guard limit R" or "guard deny add SRC";
#   nft:   a netdev ingress chain (the earliest hook nftables has) with a per-source meter
#          "limit rate over R/second" and a deny set.
# Rows:
#   - the client alone (no flood): the throughput every other row is compared with;
#   - the client under a flood at --flood-pps, with no protection, the guard, nftables;
#   - the flood alone at --drop-pps (no client), for each protection and each kind (over
#     the limit, from a denied source): drops per second, the CPU time of the host end's
#     receive thread (threaded NAPI) per dropped packet, and the guard program's own time
#     per packet (bpf_stats, on for the run).
# Everything it starts is stopped and removed on exit: processes, namespaces, the nftables
# table (its own, named after its PID; no other rule is touched) and its pin directory.
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUTPUT=${OUTPUT:-.output}
SOCKWAY=$OUTPUT/sockway
SOCKWAYD=$OUTPUT/sockwayd
SWBACKEND=$OUTPUT/tools/swbackend
XDPFLOOD=$OUTPUT/tools/bench/xdpflood
DURATION=10
FLOOD_PPS=0
DROP_PPS=200000
RATE=100
CONNECTIONS=16

usage() {
	cat <<EOF
Usage: tools/bench/guard.sh [--duration S] [--flood-pps N] [--drop-pps N] [--rate R]
  --duration S    seconds per measured row (default $DURATION)
  --flood-pps N   SYNs per second of the flood beside the client (default 0: as fast as
                  the attacker's generator goes)
  --drop-pps N    SYNs per second of the flood alone, the same for every protection so
                  that their receive threads see the same batches (default $DROP_PPS)
  --rate R        new connections per second per source that both protections allow
                  (default $RATE)
Run from the repository root after make, as root. Installs wrk and nftables from Debian
when missing. Writes the table to $OUTPUT/bench/guard-DATE.md.
EOF
}
while [ $# -gt 0 ]; do
	case $1 in
	--duration) DURATION=${2:?}; shift 2 ;;
	--flood-pps) FLOOD_PPS=${2:?}; shift 2 ;;
	--drop-pps) DROP_PPS=${2:?}; shift 2 ;;
	--rate) RATE=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "guard.sh: unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
	esac
done
case $FLOOD_PPS in '' | *[!0-9]*) echo "guard.sh: --flood-pps is a whole number (0: full speed)" >&2; exit 2 ;; esac
for v in "$DURATION" "$DROP_PPS" "$RATE"; do
	case $v in '' | *[!0-9]* | 0) echo "guard.sh: numbers are positive whole numbers, not \"$v\"" >&2; exit 2 ;; esac
done

log() { printf '[guard-bench] %s\n' "$*" >&2; }
die() {
	printf 'guard.sh: %s\n' "$*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (XDP, nftables, network namespaces)"
[ -f "$XDPFLOOD.bpf.o" ] || die "$XDPFLOOD.bpf.o is missing: run make first"
for bin in "$SOCKWAY" "$SOCKWAYD" "$SWBACKEND" "$XDPFLOOD"; do
	[ -x "$bin" ] || die "$bin is missing: run make first"
done
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nft >/dev/null || missing+=(nftables)
command -v jq >/dev/null || missing+=(jq)
command -v ethtool >/dev/null || missing+=(ethtool)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi

export SOCKWAY_PIN_ROOT=/sys/fs/bpf/sockway-bench-guard-$$
NS_ATK=sockway-gb-atk-$$
NS_CLI=sockway-gb-cli-$$
ATK_H=sga$$h ATK_N=sga$$n CLI_H=sgc$$h CLI_N=sgc$$n GEN_A=sgg$$a GEN_B=sgg$$b
NFT_TABLE=sockway_bench_$$
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	nft delete table netdev "$NFT_TABLE" 2>/dev/null
	ip link del "$ATK_H" 2>/dev/null
	ip link del "$CLI_H" 2>/dev/null
	ip netns del "$NS_ATK" 2>/dev/null
	ip netns del "$NS_CLI" 2>/dev/null
	[ -d "$SOCKWAY_PIN_ROOT" ] && "$SOCKWAY" unload >/dev/null 2>&1
	[ -n "${STATS_OLD:-}" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS_OLD"
	rm -rf "$TMPD"
}
TMPD=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Two /24s, 10.205.N.0 and 10.206.N.0, that no route here covers but the default one, so
# that no network reached through a more specific route (a VPN's 10.0.0.0/8 say) is
# shadowed by the benchmark's.
covered() {
	ip -4 route show match "$1" | grep -qv '^default'
}
pick() {
	local n
	for n in $(seq $(($$ % 200)) 254) $(seq 1 $(($$ % 200))); do
		covered "10.205.$n.1" || covered "10.206.$n.1" || { NET=$n; return 0; }
	done
	die "no /24 in 10.205.0.0/16 and 10.206.0.0/16 that no route covers already"
}
pick
ATK_HIP=10.205.$NET.1 ATK_IP=10.205.$NET.2 CLI_HIP=10.206.$NET.1 CLI_IP=10.206.$NET.2
veth() {
	local ns=$1 h=$2 n=$3 hip=$4 nip=$5
	ip netns add "$ns" &&
		ip link add "$h" type veth peer name "$n" netns "$ns" &&
		ip addr add "$hip/24" dev "$h" && ip link set "$h" up &&
		ip -n "$ns" addr add "$nip/24" dev "$n" && ip -n "$ns" link set "$n" up &&
		ip -n "$ns" link set lo up
}
veth "$NS_ATK" "$ATK_H" "$ATK_N" "$ATK_HIP" "$ATK_IP" || die "cannot set up $NS_ATK"
veth "$NS_CLI" "$CLI_H" "$CLI_N" "$CLI_HIP" "$CLI_IP" || die "cannot set up $NS_CLI"
# The flood arrives as XDP frames (tools/bench/xdpflood.c): a veth takes them only with
# NAPI on, which GRO turns on when no XDP program is attached; without a program it builds
# socket buffers from them, as a NIC driver does.
ethtool -K "$ATK_H" gro on >/dev/null && ethtool -K "$CLI_H" gro on >/dev/null ||
	die "ethtool -K gro on failed"
ATK_HMAC=$(cat "/sys/class/net/$ATK_H/address")
# The generator's frames go into GEN_A; GEN_B, its peer, redirects them out of ATK_N.
ip -n "$NS_ATK" link add "$GEN_A" type veth peer name "$GEN_B" &&
	ip -n "$NS_ATK" link set "$GEN_A" up && ip -n "$NS_ATK" link set "$GEN_B" up ||
	die "cannot set up $GEN_A/$GEN_B in $NS_ATK"
# The host end's receive work in a thread of its own, so that its CPU time is the cost of
# taking the flood (and dropping it) and nothing else.
echo 1 >"/sys/class/net/$ATK_H/threaded" || die "cannot make $ATK_H's NAPI threaded"
# napi_ticks: CPU time (USER_HZ ticks) of ATK_H's NAPI threads so far.
# (A thread's name is cut to 15 characters: match what is left of "napi/$ATK_H-N".)
napi_ticks() {
	local pid t=0 f
	for pid in $(ps -eo pid=,comm= | awk -v d="napi/$ATK_H" 'index($2, substr(d, 1, 15)) == 1 { print $1 }'); do
		read -ra f <"/proc/$pid/stat" || continue
		t=$((t + f[13] + f[14]))
	done
	echo "$t"
}

"$SOCKWAY" load >/dev/null || die "sockway load failed"
B=$((20000 + $$ % 20000))
P=$((B + 1))
A=$((B + 2))
"$SWBACKEND" --name b1 --listen "127.0.0.1:$B" >"$TMPD/backend.log" 2>&1 &
PIDS+=($!)
"$SOCKWAY" backend create b1 "127.0.0.1:$B" >/dev/null &&
	"$SOCKWAY" endpoint create api --route /api --backend b1 >/dev/null || die "policy"
"$SOCKWAYD" --no-accel --listen "$ATK_HIP:$P" --listen "$CLI_HIP:$P" --admin "127.0.0.1:$A" \
	>"$TMPD/sockwayd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do
	ip netns exec "$NS_CLI" curl -sf -o /dev/null --max-time 2 "http://$CLI_HIP:$P/api/x" && break
	sleep 0.1
done
ip netns exec "$NS_CLI" curl -sf -o /dev/null --max-time 5 "http://$CLI_HIP:$P/api/x" ||
	die "sockwayd does not answer through $CLI_H: $(tail -3 "$TMPD/sockwayd.log")"

# busy: CPU time of the whole machine in USER_HZ ticks (all but idle and iowait).
busy() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
HZ=$(getconf CLK_TCK)

protect_none() {
	"$SOCKWAY" guard detach "$ATK_H" >/dev/null 2>&1
	"$SOCKWAY" guard detach "$CLI_H" >/dev/null 2>&1
	nft delete table netdev "$NFT_TABLE" 2>/dev/null
	"$SOCKWAY" guard limit 0 >/dev/null
	"$SOCKWAY" guard deny del "$ATK_IP" >/dev/null 2>&1
	return 0
}
# protect_guard limit|deny
protect_guard() {
	protect_none
	"$SOCKWAY" guard attach "$ATK_H" --mode native >/dev/null &&
		"$SOCKWAY" guard attach "$CLI_H" --mode native >/dev/null || die "guard attach"
	if [ "$1" = limit ]; then
		"$SOCKWAY" guard limit "$RATE" >/dev/null || die "guard limit $RATE refused"
	else
		"$SOCKWAY" guard deny add "$ATK_IP" >/dev/null || die "guard deny add refused"
	fi
}
# protect_nft limit|deny: the same in a netdev ingress chain on both host ends.
protect_nft() {
	local deny=
	protect_none
	[ "$1" = deny ] && deny="elements = { $ATK_IP }"
	nft -f - <<EOF || die "nft rules refused"
table netdev $NFT_TABLE {
	set deny { type ipv4_addr; flags interval; $deny }
	set flood { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 60s; }
	chain ingress {
		type filter hook ingress devices = { $ATK_H, $CLI_H } priority -500; policy accept;
		ip saddr @deny counter drop
		tcp dport $P tcp flags & (syn | ack) == syn update @flood { ip saddr limit rate over $RATE/second burst $RATE packets } counter drop
	}
}
EOF
}
# dropped guard|nft: packets dropped so far by the protection.
dropped() {
	if [ "$1" = guard ]; then
		"$SOCKWAY" -j guard stats | jq '.counters.denied.packets + .counters.limited.packets'
	elif [ "$1" = nft ]; then
		nft -j list table netdev "$NFT_TABLE" 2>/dev/null |
			jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add // 0'
	else
		echo 0
	fi
}

# flood SECONDS PPS: the attacker's flood in the background (PPS 0: full speed).
flood() {
	local pps=()
	[ "$2" -gt 0 ] && pps=(--pps "$2")
	ip netns exec "$NS_ATK" "$XDPFLOOD" --via "$GEN_A" --peer "$GEN_B" --out "$ATK_N" \
		--dst-mac "$ATK_HMAC" --src "$ATK_IP" \
		--dst "$ATK_HIP:$P" --seconds "$1" "${pps[@]}" >"$TMPD/flood.json" 2>"$TMPD/flood.err" &
	FLOOD_PID=$!
	PIDS+=("$FLOOD_PID")
}

# client_row NAME PROTECTION KIND FLOOD(0|1): wrk from the client namespace.
ROWS=()
BASE_RPS=
client_row() {
	local name=$1 prot=$2 kind=$3 with_flood=$4 d0 d1 b0 b1 rps
	case $prot in guard) protect_guard "$kind" ;; nft) protect_nft "$kind" ;; *) protect_none ;; esac
	d0=$(dropped "$prot")
	[ "$with_flood" = 1 ] && flood $((DURATION + 2)) "$FLOOD_PPS" && sleep 1
	b0=$(busy)
	ip netns exec "$NS_CLI" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://$CLI_HIP:$P/api/x" \
		>"$TMPD/wrk.out" 2>&1
	b1=$(busy)
	d1=$(dropped "$prot")
	if [ "$with_flood" = 1 ]; then
		wait "$FLOOD_PID"
		[ -s "$TMPD/flood.json" ] || die "the flood did not run: $(cat "$TMPD/flood.err")"
	fi
	rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$TMPD/wrk.out")
	[ -n "$rps" ] || die "wrk gave no result: $(cat "$TMPD/wrk.out")"
	[ -z "$BASE_RPS" ] && BASE_RPS=$rps
	ROWS+=("| $name | $rps | $(awk -v a="$rps" -v b="$BASE_RPS" 'BEGIN { printf "%.2f", a / b }') | $((d1 - d0)) | $(awk -v t=$((b1 - b0)) -v hz="$HZ" -v d="$DURATION" 'BEGIN { printf "%.2f", t / hz / d }') |")
	log "${ROWS[-1]}"
}

# prog_ns: "run_time_ns run_cnt" of the pinned xdp_guard (bpf_stats is on for the run).
prog_ns() {
	bpftool -j prog show pinned "$SOCKWAY_PIN_ROOT/xdp_guard" | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"'
}
STATS_OLD=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1

# drop_row NAME PROTECTION KIND: the flood alone at DROP_PPS.
DROPS=()
drop_row() {
	local name=$1 prot=$2 kind=$3 d0 d1 n0 n1 sent secs p0 p1 per=-
	case $prot in guard) protect_guard "$kind" ;; nft) protect_nft "$kind" ;; *) protect_none ;; esac
	p0=$(prog_ns)
	d0=$(dropped "$prot")
	n0=$(napi_ticks)
	flood "$DURATION" "$DROP_PPS"
	wait "$FLOOD_PID"
	n1=$(napi_ticks)
	d1=$(dropped "$prot")
	sent=$(jq .sent "$TMPD/flood.json" 2>/dev/null)
	secs=$(jq .seconds "$TMPD/flood.json" 2>/dev/null)
	[ -n "$sent" ] || die "the flood did not run: $(cat "$TMPD/flood.err")"
	p1=$(prog_ns)
	[ "$n1" -gt "$n0" ] || die "no CPU time seen for $ATK_H's NAPI thread (is it threaded?)"
	[ "$prot" = guard ] && per=$(awk -v a="$p0" -v b="$p1" 'BEGIN { split(a, x, " "); split(b, y, " "); n = y[2] - x[2]; printf "%.0f", n ? (y[1] - x[1]) / n : 0 }')
	DROPS+=("| $name | $sent | $((d1 - d0)) | $(awk -v n=$((d1 - d0)) -v s="$secs" 'BEGIN { printf "%.0f", n / s }') | $(awk -v t=$((n1 - n0)) -v hz="$HZ" -v s="$secs" 'BEGIN { printf "%.2f", t / hz / s }') | $(awk -v n=$((d1 - d0)) -v t=$((n1 - n0)) -v hz="$HZ" 'BEGIN { printf "%.0f", t ? n / (t / hz) : 0 }') | $per |")
	log "${DROPS[-1]}"
}

log "attacker $ATK_IP -> $ATK_HIP:$P ($ATK_H), client $CLI_IP -> $CLI_HIP:$P ($CLI_H)"
client_row "client alone" none limit 0
client_row "flood, no protection" none limit 1
client_row "flood, XDP guard (limit)" guard limit 1
client_row "flood, nftables (limit)" nft limit 1
client_row "flood, XDP guard (deny)" guard deny 1
client_row "flood, nftables (deny)" nft deny 1
drop_row "XDP guard, over the limit" guard limit
drop_row "nftables, over the limit" nft limit
drop_row "XDP guard, denied source" guard deny
drop_row "nftables, denied source" nft deny
protect_none

mkdir -p "$OUTPUT/bench"
OUT=$OUTPUT/bench/guard-$(date +%Y%m%d-%H%M%S).md
{
	echo "tools/bench/guard.sh --duration $DURATION --flood-pps $FLOOD_PPS --drop-pps $DROP_PPS --rate $RATE; $(nproc) CPUs, $(uname -r), $(nft --version)"
	echo
	echo "The client (wrk -t2 -c$CONNECTIONS, keep-alive, from its namespace) while the attacker floods $([ "$FLOOD_PPS" = 0 ] && echo "as fast as it can" || echo "at $FLOOD_PPS SYN/s") (the attacker shares this machine's CPUs):"
	echo
	echo "| row | requests/s | × alone | flood packets dropped | busy cores |"
	echo "|---|---:|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "The flood alone at $DROP_PPS SYN/s (XDP frames), $DURATION s; the host end's receive thread's CPU time:"
	echo
	echo "| protection | SYNs sent | dropped | dropped/s | receive cores | dropped per receive core-second | xdp_guard ns per packet |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${DROPS[@]}"
} | tee "$OUT"
log "saved to $OUT"
