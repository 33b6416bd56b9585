-- crash_actor.lua: a persistent actor that persists continuously until the
-- process is killed (writer.lua), and checks every event it recovers against
-- what the writer meant to write (verify.lua asks it "get").
--
-- opts: { id =, kind = "one" | "batch" | "async", collector = ref }
-- Each acknowledged event (its persist callback ran) is told to the collector
-- as "id seq value"; the writer app drains the collector into the ack file.
local ids = require "crash_ids"

local M = {}

-- persist_async actors keep their own count of events issued (the ones in
-- flight are not in ctx.seq yet); per worker state, keyed by id.
local issued = {}

function M.init(opts)
  return { id = opts.id, kind = opts.kind, collector = opts.collector, n = 0, bad = nil }
end

-- During recovery: each stored event must be exactly the next one the writer
-- wrote (no gap, no duplicate, no invented value). The first violation is kept.
function M.apply(state, evt)
  state.n = state.n + 1
  if not state.bad then state.bad = ids.check(state.id, state.kind, state.n, evt) end
  return state
end

function M.on_recovery_completed(_, ctx)
  issued[ctx.id] = ctx.seq
end

local function ack(state, ctx, evt)
  if state.collector then state.collector:tell(ctx.id .. " " .. evt.s .. " " .. evt.v) end
end

local function issue_async(state, ctx)
  local s = issued[ctx.id] + 1
  issued[ctx.id] = s
  ctx:persist_async(ids.event(ctx.id, state.kind, s), function(st, evt)
    ack(st, ctx, evt)
    ctx.self:tell { type = "more" }
  end)
end

function M.receive(state, msg, ctx)
  local t = msg.type
  if t == "go" then
    if state.kind == "one" then
      ctx:persist(ids.event(ctx.id, "one", ctx.seq + 1), function(st, evt)
        ack(st, ctx, evt)
        ctx.self:tell { type = "go" }
      end)
    elseif state.kind == "batch" then
      local list = {}
      for k = 1, ids.BATCH do list[k] = ids.event(ctx.id, "batch", ctx.seq + k) end
      ctx:persist_all(list, function(st, evt)
        ack(st, ctx, evt)
        if evt.k == ids.BATCH then ctx.self:tell { type = "go" } end
      end)
    else
      for _ = 1, ids.WINDOW do issue_async(state, ctx) end
    end
  elseif t == "more" then
    issue_async(state, ctx)
  elseif t == "get" then
    local bad = state.bad
    if not bad and state.n ~= ctx.seq then
      bad = ("replayed %d events but the highest seq is %d"):format(state.n, ctx.seq)
    end
    if not bad and state.kind == "batch" and state.n % ids.BATCH ~= 0 then
      bad = ("a torn persist_all batch: %d events, not a multiple of %d (batch %d has %d of %d)")
        :format(state.n, ids.BATCH, state.n // ids.BATCH + 1, state.n % ids.BATCH, ids.BATCH)
    end
    ctx:reply { n = state.n, seq = ctx.seq, bad = bad }
  end
end

return M
