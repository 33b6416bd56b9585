-- dl_receiver.lua: the delivery crash test's receiver (delivery.sh): stores each delivery
-- (from, k) once ("got") and confirms every copy. It keeps, per sender, the delivery ids
-- and the k it stored, for verify to check (nothing lost, nothing twice, ids without gaps).
local M = {}

function M.init() return { got = {}, dups = 0 } end

function M.apply(state, evt)
  if evt.type == "got" then
    local per = state.got[evt.from]
    if not per then
      per = { ks = {}, ids = {} }
      state.got[evt.from] = per
    end
    if per.ks[evt.k] then state.dups = state.dups + 1 end
    per.ks[evt.k] = true
    per.ids[evt.id] = true
  end
  return state
end

function M.receive(state, msg, ctx)
  if msg.type == "deliver" then
    local from = tostring(msg.from)
    local per = state.got[from]
    local function confirm() msg.from:tell { type = "confirm", id = msg.id } end
    if per and per.ks[msg.k] then return confirm() end
    ctx:persist({ type = "got", from = from, k = msg.k, id = msg.id }, confirm)
  elseif msg.type == "get" then
    -- per sender: how many stored, the highest k, the first k missing below it, and the
    -- same for delivery ids
    local out = { dups = state.dups, senders = {} }
    for from, per in pairs(state.got) do
      local n, maxk, maxid = 0, 0, 0
      for k in pairs(per.ks) do
        n = n + 1
        if k > maxk then maxk = k end
      end
      for id in pairs(per.ids) do if id > maxid then maxid = id end end
      local hole_k, hole_id
      for k = 1, maxk do if not per.ks[k] then hole_k = k break end end
      for id = 1, maxid do if not per.ids[id] then hole_id = id break end end
      out.senders[from] = { n = n, maxk = maxk, maxid = maxid, hole_k = hole_k, hole_id = hole_id }
    end
    ctx:reply(out)
  end
end

return M
