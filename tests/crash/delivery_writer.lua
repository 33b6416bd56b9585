-- delivery_writer.lua: the delivery crash test's writer (delivery.sh): 12 senders deliver
-- to 4 receivers at least once, each delivery with a durable timer, until the process is
-- killed.
--
--   lore run tests/crash/delivery_writer.lua DB ACKFILE [MAX_SECONDS]
--
-- Each send answered (its delivery, its timer and its "sent" event are durable) is
-- appended to ACKFILE as "sender k": a promise delivery_verify.lua checks.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local db, ackpath, max_seconds = ...
assert(db and ackpath, "usage: lore run delivery_writer.lua DB ACKFILE [MAX_SECONDS]")
max_seconds = tonumber(max_seconds) or 20

lore.configure {
  journal = "sqlite:" .. db,
  workers = 2,
  scripts = { here .. "behaviours" },
  log_level = "warn",
}

local SENDERS, RECEIVERS = 12, 4
local ack = assert(io.open(ackpath, "a"))
ack:setvbuf("line")

local senders = {}
for j = 1, RECEIVERS do lore.spawn("dl_receiver", { id = "dl-receiver-" .. j }) end
for i = 1, SENDERS do
  senders[i] = lore.spawn("dl_sender", { id = "dl-sender-" .. i, to = lore.ref("dl-receiver-" .. (i % RECEIVERS + 1)) })
end
for _, s in ipairs(senders) do s:ask({ type = "get" }, 120) end -- recovered
io.stdout:write("writer: delivering\n")
io.stdout:flush()

local t0 = os.time()
while os.time() - t0 < max_seconds do
  for i, s in ipairs(senders) do
    local k = s:ask({ type = "send" }, 30)
    ack:write(("dl-sender-%d %d\n"):format(i, k))
  end
end
print("writer: not killed; stopping")
lore.shutdown()
