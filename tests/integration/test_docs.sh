#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The manual pages and the bash completion, held against the binaries so that neither can
# drift from the code:
#  - both pages render without a warning (groff, mandoc);
#  - every object, verb and option that "sockway --help" and "sockway OBJECT help" print is
#    in sockway.8, and every command and option tag of sockway.8 is in them; the SYNOPSIS is
#    "sockway --help"; every option of "sockwayd --help", with its argument, is a tag of
#    sockwayd.8 and the other way round (tests/integration/docs_check.py); the checker
#    itself fails on pages and help texts broken on purpose;
#  - the page's policy file and first example work against the real agent;
#  - the completion offers the objects, verbs and options of the help texts, file names,
#    interfaces, and the backends and endpoints of a loaded pin root, and stays silent
#    without root.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh

CHECK=tests/integration/docs_check.py
PAGE=tools/man/sockway.8
DPAGE=tools/man/sockwayd.8
COMPLETION=tools/completion/sockway
DCOMPLETION=tools/completion/sockwayd

# run_checks CMD...: each "ok - " or "not ok - " line CMD prints (docs_check.py) counts as a
# pass or a failure, with the indented line after it as the failure's detail.
run_checks() {
	local line desc=
	"$@" >"$TMP/checks.out" 2>&1
	echo "exit $?" >>"$TMP/checks.out"
	while IFS= read -r line; do
		case $line in
		"ok - "*)
			[ -n "$desc" ] && fail "$desc"
			desc=
			pass "${line#ok - }"
			;;
		"not ok - "*)
			[ -n "$desc" ] && fail "$desc"
			desc=${line#not ok - }
			;;
		"    "*)
			[ -n "$desc" ] && fail "$desc" "${line#    }"
			desc=
			;;
		"exit 0") ;;
		*)
			[ -n "$desc" ] && fail "$desc"
			desc=
			fail "$CHECK ran cleanly" "$line"
			;;
		esac
	done <"$TMP/checks.out"
	[ -n "$desc" ] && fail "$desc"
	return 0
}

# render PAGE: the page as text, no fonts, one output line per input line's paragraph line
# (wide, so that nothing wraps inside a synopsis).
render() {
	# A groff without Debian's man.local prints \- as a minus sign and - as a hyphen.
	groff -man -Tutf8 -P-cbou -rLL=300n "$1" 2>/dev/null | sed 's/\xe2\x88\x92/-/g; s/\xe2\x80\x90/-/g'
}

# --- rendering -----------------------------------------------------------------------------
for page in "$PAGE" "$DPAGE"; do
	eq "groff renders $page without a warning" "$(groff -man -Tutf8 -ww -z "$page" 2>&1)" ""
	eq "mandoc -Tlint finds no warning in $page" "$(mandoc -Tlint -W warning "$page" 2>&1)" ""
	name=$(basename "$page" .8)
	MANWIDTH=80 man -l "$page" >"$TMP/man.out" 2>"$TMP/man.err"
	check "man -l $page shows its NAME line" grep -q "^ *$name - " "$TMP/man.out"
	eq "man -l $page prints nothing on stderr" "$(cat "$TMP/man.err")" ""
done
render "$PAGE" >"$TMP/sockway.txt"
render "$DPAGE" >"$TMP/sockwayd.txt"

# --- the help texts against the pages ----------------------------------------------------
# Help goes to stderr. An object's help is asked with "help" (every object takes it); the
# timeout and /dev/null guard against an object that would take "help" for an argument and
# run on.
HELP=$TMP/help
mkdir "$HELP"
"$SOCKWAY" --help >"$HELP/_help.txt" 2>&1
eq "sockway --help exits 0" "$?" 0
for obj in $( (python3 "$CHECK" objects "$HELP" && python3 "$CHECK" page-objects "$PAGE") | sort -u); do
	timeout 20 "$SOCKWAY" "$obj" help </dev/null >"$HELP/$obj.txt" 2>&1
done
"$SOCKWAYD" --help >"$TMP/sockwayd-help.txt" 2>&1
eq "sockwayd --help exits 0" "$?" 0

run_checks python3 "$CHECK" sockway "$HELP" "$PAGE" "$TMP/sockway.txt"
run_checks python3 "$CHECK" sockwayd "$TMP/sockwayd-help.txt" "$DPAGE" "$TMP/sockwayd.txt"
run_checks python3 "$CHECK" escapes "$PAGE"
run_checks python3 "$CHECK" escapes "$DPAGE"

# --- the checker fails on what it is there to catch ------------------------------------------
# broken DESC EXPECTED_LINE DETAIL CMD...: CMD (docs_check.py on something broken on purpose)
# prints "not ok - EXPECTED_LINE" and a detail line containing DETAIL.
broken() {
	local desc=$1 want=$2 detail=$3
	shift 3
	"$@" >"$TMP/broken.out" 2>&1
	if grep -A1 -F -x "not ok - $want" "$TMP/broken.out" | tail -n +2 | grep -q -- "$detail"; then
		pass "the check fails on $desc"
	else
		fail "the check fails on $desc" "no \"not ok - $want\" with $detail: $(head -c 600 "$TMP/broken.out")"
	fi
}

# Each broken page keeps its name (the checks name the page), in a directory of its own.
mkdir "$TMP/broken"
BP=$TMP/broken/$(basename "$PAGE")
BD=$TMP/broken/$(basename "$DPAGE")
# An option described no more.
sed '/^\.TP$/{N;/\n\.B \\-\\-dry\\-run$/d}' "$PAGE" >"$BP"
broken "a page without the --dry-run tag" \
	"apply: sockway.8 describes every option of its usage under a tag of its own" --dry-run \
	python3 "$CHECK" sockway "$HELP" "$BP" "$TMP/sockway.txt"
# An option gone from the page altogether: the rendered text no longer shows it.
sed 's/\\-\\-reset//g' "$PAGE" >"$BP"
render "$BP" >"$TMP/broken.txt"
broken "a page without --reset" "stats: sockway.8 shows every option of its usage" --reset \
	python3 "$CHECK" sockway "$HELP" "$BP" "$TMP/broken.txt"
# A verb gone from the page.
sed '/^\.TP$/{N;/\n\\fBsockway traffic show\\fR/d}' "$PAGE" >"$BP"
render "$BP" >"$TMP/broken.txt"
broken "a page without traffic show" "traffic: sockway.8 shows every verb of its help" show \
	python3 "$CHECK" sockway "$HELP" "$BP" "$TMP/broken.txt"
# An option the binary no longer has.
cp -r "$HELP" "$TMP/help-broken"
sed -i 's/--reset//g' "$TMP/help-broken/stats.txt" "$TMP/help-broken/_help.txt"
broken "help texts without --reset" "stats: every option sockway.8 documents is in its help" \
	--reset python3 "$CHECK" sockway "$TMP/help-broken" "$PAGE" "$TMP/sockway.txt"
# sockwayd: an option gone from the page, another renamed in the binary, a bare '-'.
sed '/^\.TP$/{N;/\n\.BI \\-\\-lend " N"$/d}' "$DPAGE" >"$BD"
broken "sockwayd.8 without --lend" \
	"every option of sockwayd --help, with its argument, is an OPTIONS tag of sockwayd.8" \
	"--lend N" python3 "$CHECK" sockwayd "$TMP/sockwayd-help.txt" "$BD" "$TMP/sockwayd.txt"
sed 's/--drain MS/--drain-time MS/' "$TMP/sockwayd-help.txt" >"$TMP/broken-help.txt"
broken "sockwayd --help with --drain renamed" \
	"every OPTIONS tag of sockwayd.8 is in sockwayd --help, with its argument" "--drain MS" \
	python3 "$CHECK" sockwayd "$TMP/broken-help.txt" "$DPAGE" "$TMP/sockwayd.txt"
sed 's/^\.BI \\-\\-lend " N"$/.BI --lend " N"/' "$DPAGE" >"$BD"
broken "an option written with a bare '-'" "sockwayd.8 writes every option with \\- (no bare '-')" \
	--lend python3 "$CHECK" escapes "$BD"

# --- the page's examples work ---------------------------------------------------------------
# The policy file of POLICY FILE, as rendered, and the first example of EXAMPLES.
awk '/^POLICY FILE/ { on = 1 } on && !p && /^ +\{$/ { p = 1; end = $0; sub(/\{/, "}", end) }
	p { print } p && $0 == end { exit }' "$TMP/sockway.txt" >"$TMP/policy.json"
check "the page's policy file is JSON" jq -e .version "$TMP/policy.json"
awk '/^EXAMPLES/ { on = 1; next } on && /^ +sockway / { p = 1; sub(/^ +/, ""); print; next }
	p { exit }' "$TMP/sockway.txt" >"$TMP/example.sh"
ge "the page's first example has commands" "$(wc -l <"$TMP/example.sh")" 5
while read -r -u 3 -a cmd; do
	check "example: ${cmd[*]}" "$SOCKWAY" "${cmd[@]:1}"
done 3<"$TMP/example.sh"
# It created backends of its own; the policy file's apply replaces them (a dry run).
sw apply -f "$TMP/policy.json" --dry-run
eq "the page's policy file is accepted by apply --dry-run" "$RC" 0
check "and apply plans its changes" grep -q '^would apply' "$TMP/out"

# --- completion --------------------------------------------------------------------------
# comp FILE WORDS...: what FILE's completion function offers for the command line WORDS,
# the last one being completed, one per line; in a shell of its own with set -u, as bash
# calls it (COMP_WORDS, COMP_CWORD).
comp() {
	local file=$1
	shift
	bash -uc '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		"$(complete -p "${1##*/}" | sed "s/.*-F \([^ ]*\) .*/\1/")"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$file" "$@" 2>"$TMP/comp.err"
}

# offers DESC WANT WORDS...: the completion of WORDS (sockway's, WORDS[0] is the binary)
# offers every word of WANT, and prints nothing on stderr.
offers() {
	local desc=$1 want=$2 missing='' w
	shift 2
	comp "$COMPLETION" "$@" >"$TMP/comp.out"
	for w in $want; do
		grep -qxF -- "$w" "$TMP/comp.out" || missing+=" $w"
	done
	if [ -n "$missing" ]; then
		fail "$desc" "missing:$missing; offered: $(tr '\n' ' ' <"$TMP/comp.out")"
	elif [ -s "$TMP/comp.err" ]; then
		fail "$desc" "stderr: $(head -c 300 "$TMP/comp.err")"
	else
		pass "$desc"
	fi
}

# offers_only DESC WANT WORDS...: exactly the words of WANT, in any order.
offers_only() {
	local desc=$1 want=$2 got
	shift 2
	got=$(comp "$COMPLETION" "$@" | sort | tr '\n' ' ')
	# shellcheck disable=SC2086 # a word list
	eq "$desc" "$got" "$(printf '%s\n' $want | sort | tr '\n' ' ')"
}

objects=$(python3 "$CHECK" objects "$HELP")
# shellcheck disable=SC2086 # a word list
offers "completion: every object of sockway --help" "$objects" "$SOCKWAY" ""
comp "$COMPLETION" "$SOCKWAY" "" | grep -vx help >"$TMP/comp-objects"
extra=$(python3 "$CHECK" page-objects "$PAGE" | grep -vxF -f - "$TMP/comp-objects" | tr '\n' ' ')
eq "completion: every object it offers has commands in sockway.8" "$extra" ""
offers "completion: the global options of sockway --help" "$(python3 "$CHECK" globals "$HELP")" \
	"$SOCKWAY" -
offers "completion: objects after a global option" "backend" "$SOCKWAY" -j b
offers "completion: an abbreviated object's verbs (gu)" "attach detach deny" "$SOCKWAY" gu ""

# Per command of the help texts: its verb, its sub-verbs, its options (after as many
# arguments as it needs before them).
seen=" "
while IFS=$'\t' read -r obj verb nargs sub opts; do
	[ "$verb" = - ] && verb=
	words=("$obj" ${verb:+"$verb"})
	for ((i = 0; i < nargs; i++)); do
		words+=(x)
	done
	if [ -n "$verb" ] && [[ $seen != *" $obj/$verb "* ]]; then
		seen+="$obj/$verb "
		offers "completion: sockway $obj offers $verb" "$verb" "$SOCKWAY" "$obj" ""
	fi
	if [ "$sub" != - ]; then
		offers "completion: sockway $obj $verb offers $sub" "$sub" "$SOCKWAY" "$obj" "$verb" ""
	fi
	if [ "$opts" != - ]; then
		offers "completion: sockway ${words[*]} - offers $opts" "$opts" "$SOCKWAY" "${words[@]}" -
	fi
done < <(python3 "$CHECK" commands "$HELP")

# Names from a loaded pin root (the example above loaded it).
check "backend create cmp_one" "$SOCKWAY" backend create cmp_one "127.0.0.1:$(port 1)"
check "backend create cmp_two" "$SOCKWAY" backend create cmp_two "127.0.0.1:$(port 2)"
check "endpoint create ep_one" "$SOCKWAY" endpoint create ep_one --route /one --backend cmp_one
check "endpoint create ep_two" "$SOCKWAY" endpoint create ep_two --route /two --backend cmp_two
offers "completion: backend delete offers the backends" "cmp_one cmp_two default_backend" \
	"$SOCKWAY" backend delete ""
offers_only "completion: backend delete cmp_o offers cmp_one" "cmp_one" \
	"$SOCKWAY" backend delete cmp_o
offers_only "completion: abbreviated (back del cmp_t)" "cmp_two" "$SOCKWAY" back del cmp_t
offers "completion: endpoint delete offers the endpoints" "ep_one ep_two canary" \
	"$SOCKWAY" endpoint delete ""
offers "completion: endpoint create --backend offers the backends" "cmp_one cmp_two" \
	"$SOCKWAY" endpoint create x --backend ""
offers "completion: traffic set offers the endpoints" "ep_one ep_two" "$SOCKWAY" traffic set ""
offers "completion: traffic set ENDPOINT offers BACKEND=" "cmp_one= cmp_two=" \
	"$SOCKWAY" traffic set ep_one ""
offers_only "completion: traffic set after a weight (bash split at =) offers nothing" "" \
	"$SOCKWAY" traffic set ep_one cmp_one = 0.5
offers "completion: traffic show offers the endpoints" "ep_one ep_two" "$SOCKWAY" traffic show ""
offers "completion: shadow set offers the endpoints" "ep_one ep_two" "$SOCKWAY" shadow set ""
offers "completion: shadow set ENDPOINT offers the backends" "cmp_one cmp_two" \
	"$SOCKWAY" shadow set ep_one ""
offers "completion: shadow list offers the endpoints" "ep_one ep_two" "$SOCKWAY" shadow list ""
offers "completion: stats offers the endpoints" "ep_one ep_two" "$SOCKWAY" stats ""
offers "completion: top offers the endpoints" "ep_one ep_two" "$SOCKWAY" top ""
offers "completion: explain offers the endpoints' routes" "/one /two" "$SOCKWAY" explain ""
offers "completion: endpoint create --methods completes a list" "GET,POST GET,PUT" \
	"$SOCKWAY" endpoint create x --methods GET,P
: >"$TMP/docs-policy.json"
offers_only "completion: apply -f offers file names" "$TMP/docs-policy.json" \
	"$SOCKWAY" apply -f "$TMP/docs-pol"
offers "completion: guard attach offers interfaces" "lo" "$SOCKWAY" guard attach ""
offers "completion: guard detach offers interfaces" "lo" "$SOCKWAY" guard detach ""
offers_only "completion: guard attach --mode offers the modes" "native generic" \
	"$SOCKWAY" guard attach lo --mode ""

# Without root the agent refuses; the completion then offers nothing and says nothing.
if command -v setpriv >/dev/null; then
	nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	check "a user other than root runs sockway" "${nobody[@]}" "$SOCKWAY" --version
	"${nobody[@]}" "$SOCKWAY" -j backend list >"$TMP/out" 2>&1
	check "and is refused the backend list" grep -q '"error"' "$TMP/out"
	# shellcheck disable=SC2016 # expanded by that shell
	"${nobody[@]}" bash -c '. "$1"; COMP_WORDS=("$2" backend delete ""); COMP_CWORD=3
		_sockway; printf "%s\n" "${COMPREPLY[@]}"' _ "$COMPLETION" "$SOCKWAY" \
		>"$TMP/out" 2>"$TMP/err"
	eq "without root backend delete offers nothing" "$(tr -d '\n' <"$TMP/out")" ""
	eq "and prints nothing on stderr" "$(cat "$TMP/err")" ""
else
	fail "setpriv (util-linux) is missing"
fi

# sockwayd: exactly the options of its --help.
want=$(sed -n 's/^  \(-[a-zA-Z], \)\?\(--[a-z-]*\).*/\1\2/p' "$TMP/sockwayd-help.txt" |
	tr -d ',' | tr ' ' '\n' | sort | tr '\n' ' ')
eq "sockwayd --help lists options" "$([ -n "${want// /}" ] && echo yes)" yes
eq "completion: sockwayd offers exactly the options of its --help" \
	"$(comp "$DCOMPLETION" "$SOCKWAYD" - | sort | tr '\n' ' ')" "$want"
eq "completion: sockwayd --shadow-keep-header offers the credentials" \
	"$(comp "$DCOMPLETION" "$SOCKWAYD" --shadow-keep-header "" | sort | tr '\n' ' ')" \
	"Authorization Cookie Proxy-Authorization "

finish
