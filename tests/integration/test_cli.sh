#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The agent end to end, as root, on real pinned maps: load, the seed's walkthroughs (split,
# canary, incremental rollout, rollback, shadows), refusals that leave the policy alone,
# bpftool's view of the maps, export/apply round trip, unload.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

# slots ENDPOINT BACKEND: slots of BACKEND in ENDPOINT's live table.
slots() {
	"$SOCKWAY" -j traffic show "$1" | jq -r --arg b "$2" '[.backends[] | select(.backend == $b) | .slots] | add // 0'
}
moved() {
	"$SOCKWAY" -j traffic show "$1" | jq -r '.last_change_moved_slots'
}

# --- nothing loaded -----------------------------------------------------------------------
sw backend list
eq "a command before load fails" "$RC" 1
check "and says to run sockway load" grep -q 'run "sockway load" first' "$TMP/err"
sw -j status
eq "status before load says not loaded" "$(jq -r .loaded "$TMP/out")" false

# bpffs hidden by a tmpfs in a private mount namespace, and no CAP_SYS_ADMIN to mount it.
unshare -m bash -c "mount -t tmpfs tmpfs /sys/fs/bpf && setpriv --bounding-set -sys_admin '$SOCKWAY' load" >"$TMP/out" 2>"$TMP/err"
eq "load without bpffs and without the right to mount it fails" "$?" 1
check "and says how to mount bpffs" grep -q 'mount -t bpf bpf /sys/fs/bpf' "$TMP/err"

# --- load ---------------------------------------------------------------------------------
check "load" "$SOCKWAY" load
sw -j status
eq "status after load says loaded" "$(jq -r .loaded "$TMP/out")" true
eq "status lists the decide program" "$(jq -r '.programs[0].name' "$TMP/out")" decide
eq "pin directory is root-only" "$(stat -c %a "$SOCKWAY_PIN_ROOT")" 700
modes=$(stat -c %a "$SOCKWAY_PIN_ROOT"/* | sort -u | tr '\n' ' ')
eq "pinned files are root-only" "$modes" "600 "
if command -v setpriv >/dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$SOCKWAY" backend list >"$TMP/out" 2>"$TMP/err"
	eq "non-root is refused" "$?" 1
	check "with a message that says root" grep -q "must run as root" "$TMP/err"
else
	fail "setpriv (util-linux) is missing"
fi

# --- backends and the seed's canary walkthrough -----------------------------------------
check "backend create default_backend" "$SOCKWAY" backend create default_backend 127.0.0.1:9001
check "backend create canary_backend" "$SOCKWAY" backend create canary_backend 127.0.0.1:9002 '[::1]:9002'
check "backend create new_backend" "$SOCKWAY" backend create new_backend 127.0.0.1:9003
sw -j backend list
eq "backend list shows three" "$(jq length "$TMP/out")" 3
eq "IPv6 replica printed canonically" "$(jq -r '.[] | select(.name == "canary_backend") | .replicas[1]' "$TMP/out")" "[::1]:9002"

check "endpoint create canary" "$SOCKWAY" endpoint create canary --route /canary-test --backend default_backend
eq "new endpoint starts at 1.0" "$(slots canary default_backend)" 16384
check "canary 0.99/0.01" "$SOCKWAY" traffic set canary default_backend=0.99 canary_backend=0.01
eq "1% canary gets 164 of 16384 slots" "$(slots canary canary_backend)" 164
eq "and default keeps 16220" "$(slots canary default_backend)" 16220
le "1% canary moved at most 1.1 x 164 + 2 slots" "$(moved canary)" 182.4
check "canary 0.98/0.01/0.01" "$SOCKWAY" traffic set canary default_backend=0.98 canary_backend=0.01 new_backend=0.01
eq "new_backend gets 164 slots" "$(slots canary new_backend)" 164
eq "canary_backend keeps 164 slots" "$(slots canary canary_backend)" 164
le "second step moved at most 1.1 x 164 + 2" "$(moved canary)" 182.4
check "promote new_backend to 1.0" "$SOCKWAY" traffic set canary new_backend=1
eq "new_backend has every slot" "$(slots canary new_backend)" 16384
le "promotion moved 16220 (+10%)" "$(moved canary)" $((16220 * 11 / 10 + 2))
check "rollback to default_backend in one command" "$SOCKWAY" traffic set canary default_backend=1
eq "rollback: default_backend has every slot" "$(slots canary default_backend)" 16384

# --- 50/50 split and the incremental rollout -----------------------------------------------
check "endpoint fifty" "$SOCKWAY" endpoint create fifty --route /fifty --backend default_backend
check "fifty 0.5/0.5" "$SOCKWAY" traffic set fifty default_backend=0.5 canary_backend=0.5
eq "50/50 gives 8192 slots each" "$(slots fifty default_backend)/$(slots fifty canary_backend)" 8192/8192
check "endpoint incremental" "$SOCKWAY" endpoint create incremental --route /incremental --backend default_backend --methods GET,post --host Example.COM
prev=16384
for step in 0.9:0.1 0.8:0.2 0.5:0.5 0:1; do
	old=${step%:*}
	new=${step#*:}
	check "incremental $old/$new" "$SOCKWAY" traffic set incremental default_backend="$old" new_backend="$new"
	want=$(awk -v w="$new" 'BEGIN { printf "%d", w * 16384 + 0.5 }')
	eq "incremental: new_backend has $want slots" "$(slots incremental new_backend)" "$want"
	delta=$((prev - $(slots incremental default_backend)))
	le "incremental $old/$new moved at most 1.1 x $delta + 2" "$(moved incremental)" "$(awk -v d=$delta 'BEGIN { print 1.1 * d + 2 }')"
	prev=$(slots incremental default_backend)
done
sw -j endpoint list
eq "host is stored in lower case" "$(jq -r '.[] | select(.name == "incremental") | .host' "$TMP/out")" example.com
eq "methods are stored" "$(jq -r '.[] | select(.name == "incremental") | .methods' "$TMP/out")" GET,POST

# --- shadows --------------------------------------------------------------------------------
check "endpoint shadow" "$SOCKWAY" endpoint create shadow --route /shadow --backend default_backend
check "shadow 0.5 to canary_backend" "$SOCKWAY" shadow set shadow canary_backend 0.5
check "shadow 0.1 to new_backend" "$SOCKWAY" shadow set shadow new_backend 0.1
sw -j shadow list shadow
eq "two shadows listed" "$(jq -c '[.[] | [.backend, .fraction]]' "$TMP/out")" '[["canary_backend",0.5],["new_backend",0.1]]'
sw shadow set shadow canary_backend 5e-1
eq "shadow set prints the fraction it stored, not the one typed" "$(cat "$TMP/out")" \
	"shadowing a fraction 0.5 of shadow's requests to canary_backend"
check "shadow fraction 0 stops it" "$SOCKWAY" shadow set shadow new_backend 0
sw -j shadow list
eq "one shadow left" "$(jq length "$TMP/out")" 1

# --- refusals: one line, exit 1, nothing changed --------------------------------------------
refused "weights that sum to 0.98" 'sum to 0\.98' traffic set fifty default_backend=0.49 canary_backend=0.49
refused "an unknown backend in weights" '"nope"' traffic set fifty nope=1
refused "a backend named twice" 'canary_backend' traffic set fifty canary_backend=0.5 canary_backend=0.5
refused "a negative weight" 'weight' traffic set fifty default_backend=-0.5 canary_backend=1.5
refused "a weight that is not a number" 'weight' traffic set fifty default_backend=abc
refused "a shadow fraction above 1" 'fraction' shadow set shadow canary_backend 1.5
refused "a shadow to an unknown backend" '"ghost"' shadow set shadow ghost 0.1
refused "traffic of an unknown endpoint" '"ghost"' traffic set ghost default_backend=1
refused "a name with a space" 'name' backend create "bad name" 127.0.0.1:1
refused "a 32-character name" 'name' backend create abcdefghijabcdefghijabcdefghijab 127.0.0.1:1
refused "a duplicate backend" 'default_backend' backend create default_backend 127.0.0.1:1
refused "port 0" 'port' backend create b0 127.0.0.1:0
refused "port 70000" 'port' backend create b0 127.0.0.1:70000
refused "IPv6 without brackets" '::1' backend create b0 ::1:80
refused "a bad IPv4 address" '1\.2\.3' backend create b0 1.2.3:80
refused "17 replicas" 'limit' backend create b0 $(for i in $(seq 1 17); do echo 127.0.0.1:$((9000 + i)); done)
refused "deleting a backend in use lists its endpoints" 'canary.*fifty|fifty.*canary' backend delete default_backend
refused "a route without a leading slash" "'?/'?" endpoint create e1 --route nope --backend default_backend
refused "a duplicate route" '/fifty' endpoint create e1 --route /fifty --backend default_backend
refused "a duplicate route, trailing slash" '/fifty' endpoint create e1 --route /fifty/ --backend default_backend
refused "an endpoint on an unknown backend" '"ghost"' endpoint create e1 --route /e1 --backend ghost
refused "an unknown method" 'FETCH' endpoint create e1 --route /e1 --backend default_backend --methods GET,FETCH
refused "a duplicate endpoint" '"fifty"' endpoint create fifty --route /other --backend default_backend
sw endpoint create
eq "a usage error exits 2" "$RC" 2
sw -j traffic show ghost
eq "under -j a refusal still exits 1" "$RC" 1
eq "and is {\"error\": ...} on stdout" "$(jq -r .error "$TMP/out")" \
	'endpoint "ghost" does not exist; see "sockway endpoint list"'
eq "with nothing on stderr" "$(wc -c <"$TMP/err")" 0
sw -j frobnicate
eq "under -j a usage error still exits 2" "$RC" 2
check "and is a JSON error too" jq -e '.error | test("unknown command")' "$TMP/out"
sw frobnicate
eq "an unknown object exits 2" "$RC" 2

# --- prefix matching of commands ------------------------------------------------------------
sw -j back li
eq "prefixes select commands (back li)" "$(jq length "$TMP/out")" 3
sw s list
eq "an ambiguous prefix is a usage error" "$RC" 2

# --- export / apply --------------------------------------------------------------------------
"$SOCKWAY" export >"$TMP/policy.json"
check "export is valid JSON" jq -e .version "$TMP/policy.json"
sw apply -f "$TMP/policy.json"
check "applying the export changes nothing" grep -qx "no changes" "$TMP/out"
"$SOCKWAY" export | "$SOCKWAY" apply -f - >/dev/null
"$SOCKWAY" export >"$TMP/policy2.json"
check "export | apply -f - round-trips exactly" cmp "$TMP/policy.json" "$TMP/policy2.json"
gen_before=$("$SOCKWAY" -j status | jq .generation)
jq '.endpoints.fifty.traffic = {"default_backend": 0.75, "canary_backend": 0.25}' "$TMP/policy.json" >"$TMP/p3.json"
sw apply -f "$TMP/p3.json" --dry-run
check "dry run names the change" grep -q "endpoint fifty" "$TMP/out"
check "dry run prints the share of shard keys that move" grep -qE "shard keys moving: 25\.[0-9]+%" "$TMP/out"
eq "dry run changes nothing" "$("$SOCKWAY" export | cmp - "$TMP/policy.json" && echo same)" same
eq "dry run commits no generation" "$("$SOCKWAY" -j status | jq .generation)" "$gen_before"
sed '$d' "$TMP/out" >"$TMP/dry.txt"
sw apply -f "$TMP/p3.json"
eq "apply the change" "$RC" 0
eq "apply prints the plan the dry run printed" "$(sed '$d' "$TMP/out")" "$(cat "$TMP/dry.txt")"
eq "apply moved fifty to 0.75/0.25" "$(slots fifty canary_backend)" 4096
eq "one apply is one generation (two steps of the count)" "$("$SOCKWAY" -j status | jq .generation)" $((gen_before + 2))
jq '.endpoints.fifty.route = "/fifty2" | .endpoints.fifty.methods = ["GET"]' "$TMP/p3.json" >"$TMP/p4.json"
sw apply -f "$TMP/p4.json" --dry-run
eq "a dry run names what of an endpoint changes, and only that" "$(head -1 "$TMP/out")" \
	"~ endpoint fifty: route /fifty -> /fifty2; methods * -> GET"
fifty_id=$("$SOCKWAY" -j endpoint list | jq '.[] | select(.name == "fifty") | .id')
sw -j apply -f "$TMP/p4.json" --dry-run
eq "its JSON twin gives the change with the endpoint's id" "$(jq -c '.changes | map([.op, .endpoint, .id])' "$TMP/out")" \
	"[[\"change\",\"fifty\",$fifty_id]]"
jq '.endpoints.fifty.traffic = {"default_backend": 0.5, "canary_backend": 0.4}' "$TMP/policy.json" >"$TMP/bad.json"
refused "apply of a policy whose weights sum to 0.9" 'sum to 0\.9' apply -f "$TMP/bad.json"
echo '{"version": 1, "backends": {}, "endpoints": {}, "bogus": 1}' >"$TMP/bad.json"
refused "apply of a policy with an unknown field" 'bogus' apply -f "$TMP/bad.json"
echo '{"version": 1, "backends": {' >"$TMP/bad.json"
refused "apply of malformed JSON" 'line' apply -f "$TMP/bad.json"
jq 'del(.backends.new_backend)' "$TMP/p3.json" >"$TMP/bad.json"
refused "apply that drops a backend still in use" 'new_backend' apply -f "$TMP/bad.json"

# --- idempotent load ------------------------------------------------------------------------
"$SOCKWAY" export >"$TMP/before.json"
check "second load" "$SOCKWAY" load
"$SOCKWAY" export >"$TMP/after.json"
check "a second load keeps the policy" cmp "$TMP/before.json" "$TMP/after.json"

# --- bpftool sees everything with field names -------------------------------------------------
check "bpftool dumps the counters with field names" sh -c "bpftool -j map dump pinned $SOCKWAY_PIN_ROOT/counters | jq -e '[.[] | .formatted.value | select(.flags == 1)] | length > 0 and (.[0] | has(\"endpoint_id\") and (.shard[0] | has(\"requests\")))'"
check "bpftool shows the routes by prefix" sh -c "bpftool -j map dump pinned $SOCKWAY_PIN_ROOT/routes | jq -e '[.[] | .formatted.value.prefix] | index(\"/canary-test\") != null'"
check "bpftool resolves a backend name to its id" sh -c "bpftool -j map dump pinned $SOCKWAY_PIN_ROOT/backend_ids | jq -e '[.[] | .formatted.key] | index(\"new_backend\") != null'"
gen=$(bpftool -j map dump pinned "$SOCKWAY_PIN_ROOT"/ctl | jq '.[0].formatted.value.generation')
eq "bpftool reads the generation that status prints" "$gen" "$("$SOCKWAY" -j status | jq .generation)"

# --- stats ----------------------------------------------------------------------------------
sw -j stats canary
eq "stats has a primary cell per backend the canary ever used" "$(jq -c '[.[] | .backend] | sort' "$TMP/out")" '["canary_backend","default_backend","new_backend"]'
check "stats --reset" "$SOCKWAY" stats --reset

# --- deleting ---------------------------------------------------------------------------------
check "endpoint delete incremental" "$SOCKWAY" endpoint delete incremental
check "endpoint delete canary" "$SOCKWAY" endpoint delete canary
check "endpoint delete shadow" "$SOCKWAY" endpoint delete shadow
check "backend delete new_backend, now unused" "$SOCKWAY" backend delete new_backend
sw -j backend list
eq "two backends left" "$(jq -c '[.[].name]' "$TMP/out")" '["canary_backend","default_backend"]'
check "the canary's route is gone from the map" sh -c "bpftool -j map dump pinned $SOCKWAY_PIN_ROOT/routes | jq -e '[.[] | .formatted.value.prefix] | index(\"/canary-test\") == null'"

# --- limits -----------------------------------------------------------------------------------
jq -n '{version: 1, backends: ([range(256)] | map({key: "b\(.)", value: {replicas: ["127.0.0.1:\(1000 + .)"]}}) | from_entries), endpoints: {}}' >"$TMP/many.json"
check "256 backends apply" "$SOCKWAY" apply -f "$TMP/many.json"
refused "the 257th backend is refused with the limit" 'limit 256' backend create one-too-many 127.0.0.1:1

# --- unload ------------------------------------------------------------------------------------
check "unload" "$SOCKWAY" unload
check "unload leaves nothing pinned" test ! -e "$SOCKWAY_PIN_ROOT"
sw unload
eq "unload when nothing is loaded fails" "$RC" 1
finish
