-- delivery_verify.lua: after a kill -9 of delivery_writer.lua, recovers everyone, lets the
-- unconfirmed deliveries and the durable timers due meanwhile play out, and checks:
--   every acknowledged send is in its sender's journal;
--   every send stored (acknowledged or not) reached its receiver exactly once, with
--   delivery ids 1..N without a gap, and left nothing unconfirmed;
--   every stored send's durable timer fired exactly once (relative to the journal).
--
--   lore run tests/crash/delivery_verify.lua DB ACKFILE
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local db, ackpath = ...
lore.configure { journal = "sqlite:" .. db, workers = 2, scripts = { here .. "behaviours" }, log_level = "warn" }

local SENDERS, RECEIVERS = 12, 4
local problems = 0
local function bad(fmt, ...)
  problems = problems + 1
  io.stderr:write("verify: ", fmt:format(...), "\n")
end

local acked = {}
for line in io.lines(ackpath) do
  local id, k = line:match("^(%S+) (%d+)$")
  if id then acked[id] = math.max(acked[id] or 0, tonumber(k)) end
end

local receivers, senders = {}, {}
for j = 1, RECEIVERS do receivers[j] = lore.spawn("dl_receiver", { id = "dl-receiver-" .. j }) end
for i = 1, SENDERS do
  senders[i] = lore.spawn("dl_sender", { id = "dl-sender-" .. i, to = lore.ref("dl-receiver-" .. (i % RECEIVERS + 1)) })
end

local states
local deadline = os.time() + 60
repeat
  lore.sleep(0.1)
  states = {}
  local settled = true
  for i, s in ipairs(senders) do
    states[i] = s:ask({ type = "get" }, 30)
    if states[i].unconfirmed > 0 or states[i].ticks < states[i].sent then settled = false end
  end
until settled or os.time() > deadline

local total, redelivered = 0, 0
for i, st in ipairs(states) do
  local id = "dl-sender-" .. i
  local ref = "ref(" .. id .. ")"
  local r = receivers[i % RECEIVERS + 1]:ask({ type = "get" }, 30)
  local got = r.senders[ref] or { n = 0, maxk = 0, maxid = 0 }
  total = total + st.sent
  if (acked[id] or 0) > st.sent then bad("%s: send %d was acknowledged, the journal has %d", id, acked[id], st.sent) end
  if st.unconfirmed > 0 then bad("%s: %d deliveries still unconfirmed", id, st.unconfirmed) end
  if got.n ~= st.sent or got.maxk ~= st.sent or got.hole_k then
    bad("%s: sent %d, its receiver stored %d (highest %d, first missing %s)", id, st.sent, got.n, got.maxk,
      tostring(got.hole_k))
  end
  if got.maxid ~= st.sent or got.hole_id then
    bad("%s: delivery ids reached %d with a hole at %s (sent %d)", id, got.maxid, tostring(got.hole_id), st.sent)
  end
  if st.ticks ~= st.sent or st.missing_tick then
    bad("%s: %d timers fired for %d sends (first missing %s)", id, st.ticks, st.sent, tostring(st.missing_tick))
  end
  if st.dup_ticks > 0 then bad("%s: %d timers fired twice", id, st.dup_ticks) end
  if r.dups > 0 then bad("receiver of %s stored %d deliveries twice", id, r.dups) end
  redelivered = redelivered + (st.sent - (acked[id] or 0))
end
print(("verify: %d sends by %d senders, each received once, each timer fired once (%d stored but unacknowledged)")
  :format(total, SENDERS, redelivered))
lore.shutdown()
if problems > 0 then error(problems .. " problem(s)", 0) end
