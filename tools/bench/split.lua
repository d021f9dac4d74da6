-- SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
--
-- tools/bench/split.lua: for the direct-split targets of tools/bench/run.sh, every second
-- wrk thread connects to the port in SWBENCH_SPLIT_PORT instead of the URL's, so that wrk
-- loads both backends of a 50/50 split with the same threads and connections a router
-- gives them: a reference for the routers that does not leave half the backends idle.
local split_port = os.getenv("SWBENCH_SPLIT_PORT")
local split_threads = 0

function setup(thread)
	split_threads = split_threads + 1
	if split_port and split_threads % 2 == 0 then
		thread.addr = wrk.lookup(wrk.host, split_port)[1]
	end
end
