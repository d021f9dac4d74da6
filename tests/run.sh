#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Runs the test suites and ends with one line: "N passed, M failed".
#   tests/run.sh [style|unit|fuzz|integration]...     (default: all of them)
# Unit tests are cmocka binaries; integration tests are cmocka binaries and bash scripts
# (tests/integration/*.sh, which print their own "N passed, M failed"). Integration tests
# need root and real BPF: without root they fail, loudly, rather than skip. A script that
# calls accel_mode_enter (lib.sh) runs twice, with the kernel fast path on and off
# ("[accel on]", "[accel off]"); SOCKWAY_TEST_ACCEL=on or off runs only that mode. The
# "[accel off]" pass runs sockwayd built with ASan and UBSan ($OUTPUT/asan/sockwayd, make
# asan), with its reports written to files: a report is one failure more, shown whole.
set -u
cd "$(dirname "$0")/.."
# The tests run the Debian packages the Makefile installs, before whatever a user's PATH puts
# first: a pyenv shim for python3 costs 0.4 s per start (the suite starts python hundreds of
# times) and has not got Debian's python3-yaml.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
OUTPUT=${OUTPUT:-.output}
export OUTPUT SOCKWAY=${SOCKWAY:-$OUTPUT/sockway}
suites=${*:-style unit fuzz integration}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
ACCEL_MODES=${SOCKWAY_TEST_ACCEL:-on off}
passed=0
failed=0
failures=()

# Adds the counts that one test program printed; a crash or a non-zero exit with no
# failure counted is one failure.
count() {
	local name=$1 log=$2 rc=$3 secs=$4 p f
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if grep -qE '^[0-9]+ passed, [0-9]+ failed' "$log"; then
		p=$((p + $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | awk '{print $1}')))
		f=$((f + $(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | awk '{print $3}')))
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	# A program that passed but counts no cases of its own (a fuzzer) is one test.
	if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		p=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		failures+=("$name")
		echo "FAILED: $name (exit $rc, ${secs}s); its output:"
		sed 's/^/    /' "$log"
	else
		echo "ok: $name ($p passed, ${secs}s)"
	fi
}

run_one() {
	local name=$1 log rc start=$SECONDS
	shift
	log=$(mktemp)
	"$@" >"$log" 2>&1
	rc=$?
	count "$name" "$log" "$rc" $((SECONDS - start))
	rm -f "$log"
}

# run_sanitized NAME CMD...: run_one with the sanitized sockwayd, then one check more: no
# report from it (a report also aborts that sockwayd, which the suite sees too).
run_sanitized() {
	local name=$1 dir f
	shift
	if [ ! -x "$OUTPUT/asan/sockwayd" ]; then
		echo "FAILED: $name: $OUTPUT/asan/sockwayd is missing (make asan)"
		failed=$((failed + 1))
		failures+=("$name: no sanitized sockwayd")
		return
	fi
	dir=$(mktemp -d)
	run_one "$name" env SOCKWAYD="$OUTPUT/asan/sockwayd" \
		ASAN_OPTIONS="log_path=$dir/asan" UBSAN_OPTIONS="log_path=$dir/ubsan:print_stacktrace=1" "$@"
	if [ -n "$(ls -A "$dir")" ]; then
		echo "FAILED: $name: sockwayd's sanitizer reports:"
		for f in "$dir"/*; do
			sed 's/^/    /' "$f"
		done
		failed=$((failed + 1))
		failures+=("$name: sanitizer report")
	else
		echo "ok: $name: no sanitizer report"
		passed=$((passed + 1))
	fi
	rm -rf "$dir"
}

for suite in $suites; do
	case $suite in
	style)
		# Every C source and header as .clang-format has it (one check for them all).
		run_one "style/clang-format" clang-format --dry-run --Werror \
			$(find bpf include user tests tools -name '*.[ch]' | sort)
		;;
	unit)
		for t in "$OUTPUT"/tests/unit/test_*; do
			[ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
		done
		;;
	fuzz)
		# Each harness runs briefly from its seed corpus, so regressions show in CI: one per
		# core at once (each is one process), counted in order once all have ended.
		fuzz_dir=$(mktemp -d)
		fuzzers=()
		for t in "$OUTPUT"/tests/fuzz/fuzz_*; do
			[ -x "$t" ] || continue
			name=$(basename "$t")
			fuzzers+=("$name")
			mkdir "$fuzz_dir/$name.corpus"
			dict=()
			[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
			while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do
				wait -n
			done
			(
				start=$SECONDS
				"$t" -max_total_time="$FUZZ_SECONDS" "${dict[@]}" "$fuzz_dir/$name.corpus" \
					"tests/fuzz/corpus_${name#fuzz_}" >"$fuzz_dir/$name.log" 2>&1
				echo "$? $((SECONDS - start))" >"$fuzz_dir/$name.rc"
			) &
		done
		wait
		for name in "${fuzzers[@]}"; do
			read -r rc secs <"$fuzz_dir/$name.rc" || { rc=1; secs=0; }
			count "fuzz/$name (${FUZZ_SECONDS}s)" "$fuzz_dir/$name.log" "$rc" "$secs"
		done
		rm -rf "$fuzz_dir"
		;;
	integration)
		if [ "$(id -u)" != 0 ]; then
			echo "FAILED: integration tests need root (BPF, bpffs, namespaces); run as root"
			failed=$((failed + 1))
			failures+=("integration: not root")
			continue
		fi
		for t in "$OUTPUT"/tests/integration/test_*; do
			[ -x "$t" ] && run_one "integration/$(basename "$t")" "$t"
		done
		for t in tests/integration/test_*.sh; do
			[ -f "$t" ] || continue
			if grep -q '^accel_mode_enter' "$t"; then
				for mode in $ACCEL_MODES; do
					runner=run_one
					[ "$mode" = off ] && runner=run_sanitized
					$runner "integration/$(basename "$t") [accel $mode]" \
						env SOCKWAY_TEST_ACCEL="$mode" bash "$t"
				done
			else
				run_one "integration/$(basename "$t")" bash "$t"
			fi
		done
		;;
	*)
		echo "unknown suite $suite" >&2
		exit 2
		;;
	esac
done

if [ ${#failures[@]} -ne 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
