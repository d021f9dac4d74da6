-- SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
--
-- tools/bench/report.lua: wrk's summary as one machine-readable line for tools/bench/run.sh.
-- Only done() is defined here, so wrk keeps its fast path (no Lua per request).
-- Latencies are in microseconds; errors.status counts responses with status > 399.
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"SWBENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d " ..
		"connect=%d read=%d write=%d status=%d timeout=%d\n",
		summary.requests, summary.duration, summary.bytes,
		latency:percentile(50), latency:percentile(99),
		e.connect, e.read, e.write, e.status, e.timeout))
end
