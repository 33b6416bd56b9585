-- waker: spawns many actors with ctx:spawn and asks each a first question
-- ({ type = "get", reply_to = waker }); an actor answers once it has recovered.
--
--   { cmd = "wake", behaviour = B, prefix = P, from = I, to = J, expect = K, done = ref }
--       spawns B with ids P..I .. P..J (no id when prefix is nil: plain actors,
--       placed on this worker), 500 per message so answers are taken in between;
--       tells done { done = true } when every one has answered
--   { cmd = "status" }    replies { answered = N, wrong = W } (W: answers whose count
--                         was not K)
local M = {}

local CHUNK = 500

function M.init() return { answered = 0, wrong = 0 } end

local function spawn_more(st, ctx)
  local job = st.job
  local last = math.min(job.next + CHUNK - 1, job.to)
  local hello = { type = "get", reply_to = ctx.self }
  for i = job.next, last do
    local opts = job.prefix and { id = job.prefix .. i } or {}
    ctx:spawn(job.behaviour, opts):tell(hello)
  end
  job.next = last + 1
  if job.next <= job.to then ctx.self:tell { cmd = "more" } end
end

function M.receive(st, msg, ctx)
  if msg.count then -- an answer
    st.answered = st.answered + 1
    if msg.count ~= st.job.expect then st.wrong = st.wrong + 1 end
    if st.answered == st.job.to - st.job.from + 1 then st.job.done:tell { done = true } end
  elseif msg.cmd == "wake" then
    st.job = { behaviour = msg.behaviour, prefix = msg.prefix, next = msg.from, from = msg.from,
               to = msg.to, expect = msg.expect, done = msg.done }
    spawn_more(st, ctx)
  elseif msg.cmd == "more" then
    spawn_more(st, ctx)
  elseif msg.cmd == "status" then
    ctx:reply { answered = st.answered, wrong = st.wrong }
  end
end

return M
