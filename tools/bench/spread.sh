#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/spread.sh N [run.sh options]: runs tools/bench/run.sh N times with the same
# options and prints, per workload and target, the median req/s and the lowest, median and
# highest ratio to direct. On a small shared machine the direct row alone moves by 20% or
# more between runs, so one run's ratio can land anywhere in that range; this says where.
#
#   tools/bench/spread.sh 5 --workloads small,big --targets direct,sockwayd+accel,nginx
#
# Each run's own table stays in .output/bench/ (run.sh writes it); the summary goes to
# stdout and to .output/bench/spread-DATE.md.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUTPUT=${OUTPUT:-.output}

case ${1:-} in
'' | *[!0-9]* | 0)
	echo "usage: tools/bench/spread.sh N [run.sh options]   (N: how many runs, at least 1)" >&2
	exit 2
	;;
esac
N=$1
shift

files=()
for i in $(seq 1 "$N"); do
	echo "[spread] run $i of $N: tools/bench/run.sh $*" >&2
	log=$(mktemp)
	if ! tools/bench/run.sh "$@" 2>"$log" >/dev/null; then
		tail -n 5 "$log" >&2
		rm -f "$log"
		echo "spread.sh: run $i failed" >&2
		exit 1
	fi
	f=$(sed -n 's/^\[bench\] saved to //p' "$log" | tail -n 1)
	rm -f "$log"
	[ -n "$f" ] && [ -f "$f" ] || { echo "spread.sh: run $i saved no table" >&2; exit 1; }
	files+=("$f")
done

out=$OUTPUT/bench/spread-$(date +%Y%m%d-%H%M%S).md
{
	echo "# sockway bench spread: $N runs of \`tools/bench/run.sh${*:+ $*}\`"
	echo
	echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); runs: ${files[*]}"
	echo
	echo "| workload | target | runs | req/s (median) | ×direct min | ×direct median | ×direct max |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	# The first table of each run: "| workload | target | req/s | ×direct | ...".
	awk '
		/^\| workload \| target \| req\/s / { inmain = 1; next }
		/^\| workload \|/ { inmain = 0 }
		inmain && /^\| [a-z-]+ \| [a-z+-]+ \| [0-9]+ \| [0-9.]+ \|/ {
			split($0, c, "|")
			wl = c[2]; tg = c[3]; gsub(/ /, "", wl); gsub(/ /, "", tg)
			k = wl "|" tg
			if (!(k in n)) order[++nk] = k
			n[k]++
			rps[k, n[k]] = c[4] + 0
			ratio[k, n[k]] = c[5] + 0
		}
		function median(arr, k, cnt,    i, j, t, v) {
			for (i = 1; i <= cnt; i++) v[i] = arr[k, i]
			for (i = 2; i <= cnt; i++)
				for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
			lo = v[1]; hi = v[cnt]
			return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
		}
		END {
			for (i = 1; i <= nk; i++) {
				k = order[i]; split(k, p, "|")
				mr = median(rps, k, n[k])
				mx = median(ratio, k, n[k]) # also sets lo and hi, of the ratios
				printf "| %s | %s | %d | %.0f | %.2f | %.2f | %.2f |\n", p[1], p[2], n[k], mr, lo, mx, hi
			}
		}' "${files[@]}"
} | tee "$out"
echo "[spread] saved to $out" >&2
