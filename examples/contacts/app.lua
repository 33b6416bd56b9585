-- app.lua: nact's contacts service on Lore, with a read side: one persistent entity per user
-- holds that user's contacts (the write side); a projection keeps the number of contacts per
-- user in a table of its own (the read side), and is rebuilt from scratch at the end. The app
-- checks its own results and exits non-zero when one is wrong.
--
--   lore run examples/contacts/app.lua [DB]
--
-- DB is the journal (an SQLite file). Without it the app uses a temporary file and removes
-- it; with it, run the app again to see the users and the read model carry on from there.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local db = ...
local temporary = db == nil
if temporary then
  db = os.tmpname()
  os.remove(db) -- the journal makes it
end

lore.configure {
  journal = "sqlite:" .. db,
  scripts = { here .. "behaviours" }, -- contacts.lua, and adapters/contacts.lua (the tags)
  log_level = "warn",
}

local function check(ok, fmt, ...)
  if not ok then error("contacts: " .. string.format(fmt, ...), 0) end
end

---------------------------------------------------------------------------
-- The write side: an entity per user, named "contacts:USER"
---------------------------------------------------------------------------

local users = lore.entities("contacts")

local function call(user, msg)
  local reply = users:ask("contacts:" .. user, msg, 5)
  check(reply.type == "success", "%s %s: %s", user, msg.type, tostring(reply.error or reply.type))
  return reply.payload
end

---------------------------------------------------------------------------
-- The read side: contacts per user, in the projection's own table
---------------------------------------------------------------------------

local handled = 0
local counts = lore.projection("contact-counts", {
  tag = "contacts",
  init = function(ctx)
    ctx:exec("CREATE TABLE IF NOT EXISTS contact_counts(user TEXT PRIMARY KEY, n INTEGER NOT NULL)")
  end,
  handle = function(evt, _, ctx)
    handled = handled + 1
    local delta = evt.type == "contact_created" and 1 or evt.type == "contact_removed" and -1 or 0
    if delta ~= 0 then
      ctx:exec("INSERT INTO contact_counts(user, n) VALUES (?1, ?2)"
        .. " ON CONFLICT(user) DO UPDATE SET n = n + ?2", evt.user, delta)
    end
  end,
  -- what lore.projection_reset clears, in the transaction that sets its offset back to 0
  reset = function(ctx) ctx:exec("DELETE FROM contact_counts") end,
})

local function read_model()
  local out = {}
  for _, row in ipairs(counts:query("SELECT user, n FROM contact_counts ORDER BY user")) do
    out[row.user] = row.n
  end
  return out
end

---------------------------------------------------------------------------
-- Some traffic
---------------------------------------------------------------------------

local made = {}
for _, c in ipairs {
  { "alice", "Ada Lovelace", "ada@example.org" }, { "alice", "Alan Turing", "alan@example.org" },
  { "alice", "Grace Hopper", "grace@example.org" }, { "bob", "Barbara Liskov", "barbara@example.org" },
  { "bob", "Brian Kernighan", "brian@example.org" }, { "carol", "Claude Shannon", "claude@example.org" },
} do
  made[#made + 1] = call(c[1], { type = "create", payload = { name = c[2], email = c[3] } })
end
local updated = call("alice", { type = "update", contact_id = made[2].id, payload = { phone = "555-0100" } })
check(updated.phone == "555-0100" and updated.name == "Alan Turing", "the update did not apply")
call("alice", { type = "remove", contact_id = made[3].id })
local missing = users:ask("contacts:bob", { type = "get", contact_id = "bob-999" }, 5)
check(missing.type == "not_found", "a missing contact was %s", tostring(missing.type))

-- What the write side itself holds.
local expected, names = {}, {}
for _, user in ipairs { "alice", "bob", "carol" } do
  expected[user] = #call(user, { type = "list" })
  names[#names + 1] = string.format("%s %d", user, expected[user])
end
print("write side: " .. table.concat(names, ", "))

---------------------------------------------------------------------------
-- The read side catches up, and agrees
---------------------------------------------------------------------------

local function agrees(model)
  for _, user in ipairs { "alice", "bob", "carol" } do
    if model[user] ~= expected[user] then return false, user end
  end
  return true
end

local offset = counts:wait(10)
local ok, user = agrees(read_model())
check(ok, "the read model counts %s for %s, the write side %s", tostring(read_model()[user]), user,
  tostring(expected[user]))
print(string.format("read side: caught up at offset %d, agrees", offset))

-- Every contact event, in the order it was written (what the projection reads).
local events = 0
for _, evt, meta in lore.query.by_tag("contacts") do
  events = events + 1
  check(meta.id == "contacts:" .. evt.user, "event %d is in the stream of %s", meta.seq, meta.id)
end

---------------------------------------------------------------------------
-- Rebuilt from scratch: its table cleared and its offset back to 0, in one transaction
---------------------------------------------------------------------------

local before = handled
lore.projection_reset("contact-counts")
counts:wait(10)
check(handled - before == events, "the rebuild handled %d events, not %d", handled - before, events)
ok, user = agrees(read_model())
check(ok, "after the rebuild the read model counts %s for %s", tostring(read_model()[user]), user)
print(string.format("rebuilt from scratch: %d events handled again, agrees", events))

if temporary then
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
end
-- The users' entities would otherwise wait to be passivated (after 120 s idle) before the run
-- ends: stop everything now, safely.
lore.shutdown()
