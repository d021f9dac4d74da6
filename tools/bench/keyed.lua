-- SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
--
-- tools/bench/keyed.lua: shard-keyed GETs over 1,000 keys. Request n of each wrk thread
-- carries "X-SERVE-SHARD-KEY: key-(n % 1000)". The 1,000 requests are formatted once in
-- init() so that the per-request Lua cost is a table lookup. run.sh appends report.lua.
local reqs = {}
local n = 0

function init(args)
	for i = 0, 999 do
		reqs[i] = wrk.format(nil, nil, { ["X-SERVE-SHARD-KEY"] = "key-" .. i })
	end
end

function request()
	local r = reqs[n % 1000]
	n = n + 1
	return r
end
