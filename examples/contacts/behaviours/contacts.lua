-- contacts.lua: one user's contacts (nact's contacts service): a persistent entity whose
-- persistence id is "contacts:USER". Commands: create, get, update, remove, list; every reply is
-- { type = "success", payload = ... } or { type = "not_found", contact_id = ... }.
-- Events: contact_created { contact }, contact_updated { id, changes }, contact_removed { id };
-- adapters/contacts.lua tags them all "contacts", for the read side (app.lua's projection).
local M = {}

function M.init(opts) return { user = opts.id:match("^contacts:(.*)$") or opts.id, contacts = {}, next = 1 } end

local function success(ctx, payload) ctx:reply { type = "success", payload = payload } end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Only the fields a contact has: a command cannot smuggle in an id.
local function fields(payload)
  if type(payload) ~= "table" then return nil, "payload must be a table" end
  local out = {}
  for _, k in ipairs { "name", "email", "phone" } do
    local v = payload[k]
    if v ~= nil and type(v) ~= "string" then return nil, k .. " must be a string" end
    out[k] = v
  end
  return out
end

function M.receive(state, msg, ctx)
  if msg.type == "list" then
    local list = {}
    for _, c in pairs(state.contacts) do list[#list + 1] = c end
    table.sort(list, function(a, b) return a.id < b.id end)
    return success(ctx, list)
  elseif msg.type == "create" then
    local contact, err = fields(msg.payload)
    if not contact then return ctx:reply { type = "error", error = err } end
    contact.id = string.format("%s-%d", state.user, state.next)
    return ctx:persist({ type = "contact_created", user = state.user, contact = contact },
      function() success(ctx, contact) end)
  end
  local contact = state.contacts[msg.contact_id]
  if not contact then return ctx:reply { type = "not_found", contact_id = msg.contact_id } end
  if msg.type == "get" then
    success(ctx, contact)
  elseif msg.type == "update" then
    local changes, err = fields(msg.payload)
    if not changes then return ctx:reply { type = "error", error = err } end
    ctx:persist({ type = "contact_updated", user = state.user, id = contact.id, changes = changes },
      function(s) success(ctx, s.contacts[contact.id]) end)
  elseif msg.type == "remove" then
    ctx:persist({ type = "contact_removed", user = state.user, id = contact.id },
      function() success(ctx, contact) end)
  else
    ctx:reply { type = "error", error = "unknown command " .. tostring(msg.type) }
  end
end

function M.apply(state, evt)
  if evt.type == "contact_created" then
    state.contacts[evt.contact.id] = copy(evt.contact)
    state.next = state.next + 1
  elseif evt.type == "contact_updated" then
    local c = state.contacts[evt.id]
    for k, v in pairs(evt.changes) do c[k] = v end
  elseif evt.type == "contact_removed" then
    state.contacts[evt.id] = nil
  end
  return state
end

return M
