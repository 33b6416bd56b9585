-- idle: does nothing; stopped by others.
local M = {}

function M.receive() end

return M
