-- idle: an actor that does nothing; what an idle actor costs is its record
-- (ctx table, state table, C struct, map entries).
local M = {}

function M.receive() end

return M
