#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# sockway apply -f FILE --watch on real pinned maps: the first apply, an editor's save (a new
# file renamed over the old), a write in place, a Kubernetes ConfigMap volume's ..data
# symlink swap, a deleted and re-created file, documents that do not validate (refused once
# each, counted in sockwayd's /metrics, the running policy kept), SIGHUP, a watch started
# before the maps were loaded, the usage errors, and SIGTERM.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

# policy FILE WEIGHT_A: a policy of one endpoint /w split a=WEIGHT_A, b=the rest, written
# the way an editor saves (a new file renamed over FILE).
policy() {
	local wa=$1 file=$2
	cat >"$file.new" <<-EOF
		{"version": 1,
		 "backends": {"a": {"replicas": ["127.0.0.1:$(port 1)"]},
		              "b": {"replicas": ["127.0.0.1:$(port 2)"]}},
		 "endpoints": {"w": {"route": "/w",
		                     "traffic": {"a": $wa, "b": $(awk -v w="$wa" 'BEGIN { print 1 - w }')}}}}
	EOF
	mv -f "$file.new" "$file"
}

# weight_a: a's weight in the live policy ("none" without the endpoint).
weight_a() {
	"$SOCKWAY" -j export | jq -r '.endpoints.w.traffic.a // "none"'
}
weight_is() {
	[ "$(weight_a)" = "$1" ]
}
refused_is() {
	[ "$(metric sockway_policy_refused_total)" = "$1" ]
}
log_has() {
	grep -qE -- "$2" "$TMP/$1.log"
}

# --- usage errors, before anything is loaded ------------------------------------------------
sw apply -f - --watch
eq "--watch with stdin is a usage error" "$RC" 2
check "and says it needs a file" grep -q 'needs a file' "$TMP/err"
sw apply -f /etc/hostname --watch --dry-run
eq "--watch with --dry-run is a usage error" "$RC" 2
sw apply -f "$TMP/no/such/dir/policy.json" --watch
eq "--watch of a file in a directory that does not exist is refused" "$RC" 1
check "and names the directory" grep -q "cannot watch the directory $TMP/no/such/dir" "$TMP/err"

# --- a watch that starts before the maps are loaded ---------------------------------------
mkdir -p "$TMP/etc"
FILE=$TMP/etc/policy.json
policy 0.5 "$FILE"
spawn watch "$SOCKWAY" apply -f "$FILE" --watch
WATCH=$SPAWNED
check "with no maps loaded, the watch says so and keeps going" \
	wait_until "$WAIT_S" log_has watch 'trying again in 1 s'
check "sockway load" "$SOCKWAY" load
check "once the maps are there, the watch applies the file (retried, no change needed)" \
	wait_until "$WAIT_S" weight_is 0.5
check "and logs what moved, as --dry-run prints it" \
	wait_until "$WAIT_S" log_has watch '^\+ endpoint w: route /w traffic a=0.5 b=0.5'

start_backend a "$(port 1)"
start_backend b "$(port 2)"
ACCEL_MODE=off
SWD_URL=http://127.0.0.1:$(port 10)
SWD_ADMIN=$(port 11)
start_sockwayd "$(port 10)" "$SWD_ADMIN"
eq "sockwayd exports the refusal counter, 0 so far" "$(metric sockway_policy_refused_total)" 0

# --- changes -------------------------------------------------------------------------------
policy 0.25 "$FILE"
check "an editor's save (rename over the file) is applied" wait_until "$WAIT_S" weight_is 0.25
check "it is logged with the slots that move" \
	wait_until "$WAIT_S" log_has watch '^~ endpoint w: traffic a=0.5 b=0.5 -> a=0.25 b=0.75; shard keys moving'
policy 0.75 "$FILE.x"
cat "$FILE.x" >"$FILE"
check "a write in place is applied" wait_until "$WAIT_S" weight_is 0.75
# The commit comes before its log lines: wait for them too, so the counts below are whole.
applies_logged() {
	[ "$(grep -cE '^(applied|no changes)' "$TMP/watch.log")" -ge "$1" ]
}
check "the in-place write's apply is logged" wait_until "$WAIT_S" applies_logged 3
check "sockwayd sees it (its /policy follows the generation)" \
	wait_until "$WAIT_S" bash -c "curl -s 'http://127.0.0.1:$SWD_ADMIN/policy' | jq -e '.endpoints.w.traffic.a == 0.75'"
# A slow writer in place: half the document, a pause with another file of the directory
# changed meanwhile (which makes the watch look), then the rest. The half is never read.
policy 0.65 "$TMP/half.json"
spawn slow-writer python3 -c "
import os, sys, time
text = open(sys.argv[1], 'rb').read()
with open(sys.argv[2], 'wb') as f:
    f.write(text[:len(text) // 2]); f.flush()
    open(sys.argv[3], 'w').write('x')
    while not os.path.exists(sys.argv[4]):
        time.sleep(0.05)
    f.write(text[len(text) // 2:])
" "$TMP/half.json" "$FILE" "$TMP/etc/other" "$TMP/go-on"
wait_until "$WAIT_S" test -e "$TMP/etc/other"
sleep 0.5 # the look the other file scheduled is due 50 ms after it: let it come, and go
touch "$TMP/go-on"
check "a document written in place slowly is applied once whole" wait_until "$WAIT_S" weight_is 0.65
eq "and its first half was never refused" "$(metric sockway_policy_refused_total)" 0
check "its apply is logged" wait_until "$WAIT_S" applies_logged 4

applied=$(grep -cE '^(applied|no changes)' "$TMP/watch.log")
touch "$FILE"
cp "$FILE" "$FILE.same" && mv -f "$FILE.same" "$FILE"
# Then a real change, applied after those events were seen: one apply more, not two or three.
policy 0.7 "$FILE"
check "a change after events that left the bytes alone is applied" wait_until "$WAIT_S" weight_is 0.7
wait_until "$WAIT_S" applies_logged $((applied + 1))
eq "those events applied nothing" "$(grep -cE '^(applied|no changes)' "$TMP/watch.log")" "$((applied + 1))"

# --- refusals -------------------------------------------------------------------------------
gen=$("$SOCKWAY" -j status | jq -r .generation)
echo '{"version": 1, "backends": {' >"$FILE"
check "a file that is not JSON is refused with its reason" \
	wait_until "$WAIT_S" log_has watch "^sockway: $FILE: policy is not valid JSON"
check "and counted in /metrics" wait_until "$WAIT_S" refused_is 1
eq "the running policy stays" "$(weight_a)" 0.7
policy 0.6 "$FILE.bad" && sed -i 's/"b": 0.4/"b": 0.5/' "$FILE.bad" && mv -f "$FILE.bad" "$FILE"
check "a split that does not add up to 1 is refused with its reason" \
	wait_until "$WAIT_S" log_has watch 'weights of endpoint "w" sum to 1.1'
check "and counted" wait_until "$WAIT_S" refused_is 2
cp "$FILE" "$FILE.same" && mv -f "$FILE.same" "$FILE"
eq "the running policy still stays" "$(weight_a)" 0.7
eq "no generation was committed by a refused file" "$("$SOCKWAY" -j status | jq -r .generation)" "$gen"
policy 0.4 "$FILE"
check "a fixed file is applied" wait_until "$WAIT_S" weight_is 0.4
eq "the same refused bytes saved again before it were not refused (or counted) twice" \
	"$(metric sockway_policy_refused_total)" 2

# --- gone and back, SIGHUP -----------------------------------------------------------------
rm -f "$FILE"
check "a deleted file is noticed and the running policy stays" \
	wait_until "$WAIT_S" log_has watch "$FILE is gone; the running policy stays"
eq "the policy is still the last one applied" "$(weight_a)" 0.4
mkfifo "$FILE"
check "a FIFO in its place is not read (it would block the watch)" \
	wait_until "$WAIT_S" log_has watch "$FILE is not a regular file; the running policy stays"
rm -f "$FILE"
policy 0.3 "$FILE"
check "the re-created file is applied" wait_until "$WAIT_S" weight_is 0.3
check "sockway traffic set (an edit outside the file)" "$SOCKWAY" traffic set w a=0.9 b=0.1
kill -HUP "$WATCH"
check "SIGHUP applies the unchanged file again" wait_until "$WAIT_S" weight_is 0.3

# --- a ConfigMap volume: policy.json -> ..data/policy.json, ..data -> ..<timestamp> ---------
CM=$TMP/configmap
mkdir -p "$CM/..2026_01_01_00_00_00.1"
policy 0.2 "$CM/..2026_01_01_00_00_00.1/policy.json"
ln -s ..2026_01_01_00_00_00.1 "$CM/..data"
ln -s ..data/policy.json "$CM/policy.json"
stop_pid "$WATCH"
eq "SIGTERM ends the watch with exit 0" "$STOP_RC" 0
check "it ends with a summary of what it did" log_has watch 'ended: 8 applied, 2 refused, [0-9]+ failed'
spawn watch-cm "$SOCKWAY" apply -f "$CM/policy.json" --watch
WATCH=$SPAWNED
check "a ConfigMap's file is applied" wait_until "$WAIT_S" weight_is 0.2
# What kubelet does on an update: a new timestamped directory, a ..data_tmp symlink to it
# renamed over ..data (atomic), the old directory removed. policy.json itself never changes.
mkdir "$CM/..2026_01_01_00_01_00.2"
policy 0.1 "$CM/..2026_01_01_00_01_00.2/policy.json"
ln -s ..2026_01_01_00_01_00.2 "$CM/..data_tmp"
mv -T "$CM/..data_tmp" "$CM/..data"
rm -rf "$CM/..2026_01_01_00_00_00.1"
check "the ..data swap of a ConfigMap update is applied" wait_until "$WAIT_S" weight_is 0.1
stop_pid "$WATCH" INT
eq "SIGINT ends the watch with exit 0" "$STOP_RC" 0

# --- a symlink to a file in another directory: that directory is watched too ---------------
mkdir -p "$TMP/srv"
policy 0.35 "$TMP/srv/real.json"
ln -s ../srv/real.json "$TMP/etc/link.json"
spawn watch-link "$SOCKWAY" apply -f "$TMP/etc/link.json" --watch
WATCH=$SPAWNED
check "a symlinked file is applied" wait_until "$WAIT_S" weight_is 0.35
policy 0.45 "$TMP/srv/real.json"
check "a save of the file it points to, in its own directory, is applied" \
	wait_until "$WAIT_S" weight_is 0.45
stop_pid "$WATCH"

# --- a directory replaced under its name: renamed away, or a symlink pointed elsewhere ------
mkdir -p "$TMP/d"
policy 0.15 "$TMP/d/policy.json"
spawn watch-dir "$SOCKWAY" apply -f "$TMP/d/policy.json" --watch
WATCH=$SPAWNED
check "a file in a directory of its own is applied" wait_until "$WAIT_S" weight_is 0.15
mv "$TMP/d" "$TMP/d.old"
mkdir "$TMP/d"
policy 0.55 "$TMP/d/policy.json"
check "after the directory was renamed away and a new one made, the new file is applied" \
	wait_until "$WAIT_S" weight_is 0.55
policy 0.65 "$TMP/d.old/policy.json"
policy 0.85 "$TMP/d/policy.json"
check "the new directory is the one watched" wait_until "$WAIT_S" weight_is 0.85
stop_pid "$WATCH"
mkdir -p "$TMP/rel/v1" "$TMP/rel/v2"
policy 0.15 "$TMP/rel/v1/policy.json"
policy 0.95 "$TMP/rel/v2/policy.json"
ln -s v1 "$TMP/rel/current"
spawn watch-rel "$SOCKWAY" apply -f "$TMP/rel/current/policy.json" --watch
WATCH=$SPAWNED
check "a file under a symlinked directory is applied" wait_until "$WAIT_S" weight_is 0.15
ln -s v2 "$TMP/rel/current.tmp" && mv -T "$TMP/rel/current.tmp" "$TMP/rel/current"
check "the symlinked directory pointed at another release (the old one kept) is seen" \
	wait_until "$WAIT_S" weight_is 0.95
policy 0.05 "$TMP/rel/v2/policy.json.x" && chmod o+w "$TMP/rel/v2/policy.json.x" &&
	mv -f "$TMP/rel/v2/policy.json.x" "$TMP/rel/v2/policy.json"
check "a file anyone may write is not applied, and said so" \
	wait_until "$WAIT_S" log_has watch-rel "policy.json is writable by anyone; not applied"
eq "the running policy stays" "$(weight_a)" 0.95
stop_pid "$WATCH"

# --- -j: one JSON object per line ------------------------------------------------------------
spawn watch-json "$SOCKWAY" -j apply -f "$FILE" --watch
WATCH=$SPAWNED
# (grep first: jq -e on an empty file succeeds.)
check "under -j the first apply is a JSON line" \
	wait_until "$WAIT_S" bash -c "grep -q '\"changes\"' '$TMP/watch-json.log' &&
		jq -e 'select(.changes) | .dry_run == false' '$TMP/watch-json.log'"
echo '[' >"$FILE"
check "a refusal is a JSON error line" \
	wait_until "$WAIT_S" bash -c "grep -q '\"error\"' '$TMP/watch-json.log' &&
		jq -e 'select(.error) | .error | test(\"not valid JSON\")' '$TMP/watch-json.log'"
stop_pid "$WATCH"
check "the summary is JSON" grep -q '"watch"' "$TMP/watch-json.log"
check "and counts what the watch did" jq -e 'select(.watch) | .watch.refused == 1 and .watch.applied == 1' "$TMP/watch-json.log"
check "every line of the output is JSON" jq -e . "$TMP/watch-json.log"
check "sockwayd counted that refusal too" wait_until "$WAIT_S" refused_is 3

sw apply -f "$FILE" --dry-run
eq "a dry run of a bad file is refused" "$RC" 1
eq "but not counted (it only asks)" "$(metric sockway_policy_refused_total)" 3
sw apply -f "$FILE"
eq "a plain apply of a bad file is refused" "$RC" 1
check "and counted" wait_until "$WAIT_S" refused_is 4

finish
