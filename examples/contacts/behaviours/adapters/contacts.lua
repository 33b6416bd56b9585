-- adapters/contacts.lua: every contact event is tagged "contacts", so the read side can follow
-- them all in the order they were written, whichever user they belong to.
local function contacts() return { "contacts" } end

return {
  { type = "contact_created", tags = contacts },
  { type = "contact_updated", tags = contacts },
  { type = "contact_removed", tags = contacts },
}
