-- types_cover.lua DIR_OF_LORE_SO TYPES_FILE: the annotations in TYPES_FILE
-- (lua/types/lore.lua) and the library agree: every function of the `lore`
-- module and every ref method has its annotation, and every annotated one
-- exists. Exits 1 naming each mismatch. Run with lua5.4.
local so_dir, types_file = ...
if not so_dir or not types_file then
  io.stderr:write("usage: lua5.4 types_cover.lua DIR_OF_LORE_SO TYPES_FILE\n")
  os.exit(2)
end
package.cpath = so_dir .. "/?.so;" .. package.cpath
local lore = require "lore"

local f = assert(io.open(types_file, "r"))
local text = "\n" .. f:read("a")
f:close()

local function annotated(prefix)
  local names = {}
  for name in text:gmatch("\nfunction " .. prefix .. "([%w_]+)%(") do names[name] = true end
  return names
end

local problems = 0
local function compare(what, have, declared)
  for name in pairs(have) do
    if not declared[name] then
      print(("%s.%s exists in the library but is not annotated"):format(what, name))
      problems = problems + 1
    end
  end
  for name in pairs(declared) do
    if not have[name] then
      print(("%s.%s is annotated but the library has no such function"):format(what, name))
      problems = problems + 1
    end
  end
end

local module_fns = {}
for k, v in pairs(lore) do
  if type(v) == "function" then module_fns[k] = true end
end
compare("lore", module_fns, annotated("lore%."))

local methods = {}
for k, v in pairs(debug.getmetatable(lore.ref("types-cover")).__index) do
  if type(v) == "function" then methods[k] = true end
end
compare("ref", methods, annotated("Ref:"))

if problems > 0 then os.exit(1) end
print("types_cover: the lore module and ref methods match " .. types_file)
