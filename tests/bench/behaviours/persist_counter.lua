-- persist_counter.lua: the persistent actor of persist_bench.lua.
--
--   { cmd = "run", n = N, latch = ref }     persist N events with ctx:persist, one at a
--                                           time (each the next command, sent to itself
--                                           from the previous one's callback), then
--                                           tell the latch { done = true }
--   { cmd = "one" }                         persist one event; reply its seq (from the callback)
--   { cmd = "async", n = N, window = W, latch = ref }
--                                           persist N events with ctx:persist_async, W in
--                                           flight at first, topped up as callbacks run
--   { cmd = "fill", count = C }             persist C events in one persist_all; reply the seq
--   { cmd = "get" }                         reply { n =, seq = } (after recovery)
-- Each event is { type = "tick", v = I, pad = PAD }: a fixed-size payload.
local M = {}
M.recovery = { snapshot = "none" } -- recovery is a full replay: what case (d) measures

local PAD = string.rep("p", 64)

function M.init() return { n = 0, sum = 0 } end

function M.apply(state, evt)
  state.n = state.n + 1
  state.sum = state.sum + evt.v
  return state
end

local function tick(v) return { type = "tick", v = v, pad = PAD } end

-- Per actor (keyed by id): the async run in progress.
local runs = {}

local function async_more(ctx, count)
  local r = runs[ctx.id]
  for _ = 1, count do
    if r.issued >= r.n then return end
    r.issued = r.issued + 1
    ctx:persist_async(tick(r.issued), function()
      r.done = r.done + 1
      if r.done == r.n then
        runs[ctx.id] = nil
        r.latch:tell { done = true }
      elseif r.done % r.step == 0 then
        ctx.self:tell { cmd = "more", count = r.step }
      end
    end)
  end
end

function M.receive(state, msg, ctx)
  local cmd = msg.cmd
  if cmd == "run" then
    local left = msg.n
    if left <= 0 then return msg.latch:tell { done = true } end
    ctx:persist(tick(left), function()
      if left > 1 then
        ctx.self:tell { cmd = "run", n = left - 1, latch = msg.latch }
      else
        msg.latch:tell { done = true }
      end
    end)
  elseif cmd == "one" then
    ctx:persist(tick(1), function() ctx:reply(ctx.seq) end)
  elseif cmd == "async" then
    local window = msg.window or 1000
    runs[ctx.id] = { n = msg.n, issued = 0, done = 0, latch = msg.latch, step = math.max(1, window // 2) }
    async_more(ctx, window)
  elseif cmd == "more" then
    async_more(ctx, msg.count)
  elseif cmd == "fill" then
    local batch = {}
    for i = 1, msg.count do batch[i] = tick(i) end
    ctx:persist_all(batch)
    ctx:defer(function() ctx:reply(ctx.seq) end)
  elseif cmd == "get" then
    ctx:reply { n = state.n, seq = ctx.seq }
  end
end

return M
