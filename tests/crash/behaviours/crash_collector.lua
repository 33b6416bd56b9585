-- crash_collector.lua: gathers "id seq value" acknowledgements from the crash
-- actors' persist callbacks until the writer app drains them ("drain" ask).
local M = {}

function M.init() return { acks = {} } end

function M.receive(state, msg, ctx)
  if msg == "drain" then
    ctx:reply(state.acks)
    state.acks = {}
  else
    state.acks[#state.acks + 1] = msg
  end
end

return M
