#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/bpf_lines charges sample addresses to the source lines of a loaded program,
# from the kernel's JIT line info. Here against sk_msg's msg_redirect as `sockway load`
# loads it: the addresses are taken from the tool's own --lines listing, one byte past
# a record's start (where a sample lands), and each must be charged to that record's line
# and function; addresses outside the program are counted apart.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

BL=$OUTPUT/tools/bench/bpf_lines
check "sockway load" "$SOCKWAY" load
id=$(bpftool -j prog show pinned "$SOCKWAY_PIN_ROOT/msg_redirect" | jq .id)
check "--lines lists the records" bash -c "'$BL' '$id' --lines >'$TMP/lines'"
ge "msg_redirect has hundreds of line records" "$(wc -l <"$TMP/lines")" 100
# Records as "ADDR FUNC+OFF FILE:LINE TEXT", by address.
eq "every record names a function, a file and a line" \
	"$(grep -cvE '^[0-9a-f]+ [a-z_0-9?]+\+0x[0-9a-f]+ [^ ]+:[0-9]+ ' "$TMP/lines")" 0
sort -c -t' ' -k1,1 "$TMP/lines" 2>/dev/null && pass "--lines is by address" ||
	fail "--lines is by address"

# Two records of msg_redirect itself on different lines and one of a subprogram (the
# program has some: bpf_loop callbacks), each followed by a record of its function more than
# a byte later, so that +1 stays in the record. pick main|sub SKIP_LOC: "ADDR FUNC FILE:LINE".
pick() {
	local addr next fn loc
	while read -r addr next fn loc; do
		[ "$loc" != "$2" ] && [ $((0x$next)) -gt $((0x$addr + 1)) ] &&
			echo "$addr $fn $loc" && return
	done < <(awk -v want="$1" '
		{ split($2, a, "+"); fn[NR] = a[1]; addr[NR] = $1; loc[NR] = $3 }
		END {
			for (i = 1; i < NR; i++)
				if ((want == "main") == (fn[i] == "msg_redirect") && fn[i + 1] == fn[i])
					print addr[i], addr[i + 1], fn[i], loc[i]
		}' "$TMP/lines")
}
read -r a1 f1 l1 < <(pick main -)
read -r a2 f2 l2 < <(pick main "${l1:-}")
read -r a3 f3 l3 < <(pick sub -)
if [ -z "${a1:-}" ] || [ -z "${a2:-}" ] || [ -z "${a3:-}" ]; then
	fail "three records to aim at" "got '${a1:-}' '${a2:-}' '${a3:-}'"
else
	{
		for _ in 1 2 3 4; do printf '%x\n' $((0x$a1 + 1)); done
		printf '%x\r\n' $((0x$a1 + 1))
		for _ in 1 2 3; do printf '    %x\n' $((0x$a2 + 1)); done
		printf '%x\n' $((0x$a3 + 1))
		echo 0
		echo ffffffff81000000
		echo not-an-address
		printf -- '-%x\n' $((0x$a1 + 1))
	} >"$TMP/samples"
	"$BL" "$id" --top 3 <"$TMP/samples" >"$TMP/out"
	eq "the summary: 9 in (one line with CRLF), 2 outside, 2 unread (a word, a sign)" \
		"$(head -1 "$TMP/out" | cut -d: -f2-)" " 9 samples in it, 2 outside, 2 lines unread"
	eq "the most: 5 on the first record's line" "$(sed -n 2p "$TMP/out" | awk '{print $1, $3, $4}')" \
		"5 $f1 $l1"
	eq "then 3 on the second's" "$(sed -n 3p "$TMP/out" | awk '{print $1, $3, $4}')" \
		"3 $f2 $l2"
	eq "then 1 in the subprogram $f3, on its record's line" \
		"$(sed -n 4p "$TMP/out" | awk '{print $1, $3, $4}')" "1 $f3 $l3"
fi

bl_run() {
	"$BL" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
	RC=$?
}
bl_run 4294967295
eq "a program that does not exist: exit 1, one line" "$RC $(wc -l <"$TMP/err")" "1 1"
bl_run 12x
eq "an id that is not a number: usage, exit 2" "$RC" 2
bl_run "$id" --top 0
eq "--top 0: usage, exit 2" "$RC" 2
finish
