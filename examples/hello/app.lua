-- app.lua: the smallest Lore application: one counter actor, a few tells and asks.
--   lore run examples/hello/app.lua [NAME]
local lore = require "lore"

-- Behaviours live beside this script, wherever it is run from.
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
lore.configure { scripts = { here .. "behaviours" } }

local name = ... or "world"
print("hello, " .. name)

local counter = lore.spawn("counter", { start = 10 })
for _ = 1, 3 do
  counter:tell { type = "add", by = 1 }
end
print("count: " .. counter:ask({ type = "get" }, 2.0))

counter:tell { type = "add", by = 5 }
print("count: " .. counter:ask({ type = "get" }, 2.0))

-- The app ends when the script returns and no actor is alive.
counter:stop()
