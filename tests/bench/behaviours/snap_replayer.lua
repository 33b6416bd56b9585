-- snap_replayer.lua: snap_filler recovering by full replay (no snapshot offered).
local M = {}
for k, v in pairs(require "snap_filler") do M[k] = v end
M.recovery = { snapshot = "none" }
return M
