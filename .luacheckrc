-- .luacheckrc: luacheck settings for lua/, tests/ and examples/ (`luacheck lua tests/lua examples`).
std = "lua54"
max_line_length = 120

-- Callbacks (receive, apply, on_stop, ...) take arguments they may not use,
-- and a multiple assignment from a call may leave its trailing values unused.
unused_args = false
unused_secondaries = false

-- The runtime names every log level, whether a file uses it or not.
files["lua/lore/*.lua"] = { ignore = { "211/LOG_[%u]+" } }

-- Application scripts (run by `lore run`) may read `arg`, as with `lua`.
files["examples/*/app.lua"] = { read_globals = { "arg" } }
files["tests/bench/*.lua"] = { read_globals = { "arg" } }

-- Behaviour scripts see `lore` (refs) in their sandbox.
files["tests/lua/fixtures/**/*.lua"] = { read_globals = { "lore" } }
-- This one poisons its own copy of the standard library on purpose.
files["tests/lua/fixtures/hostile/poisoner.lua"] = { read_globals = { "lore" }, ignore = { "121", "122" } }

-- Specs run under busted.
files["tests/lua/**/*_spec.lua"] = { std = "+busted" }

-- A behaviour with a syntax error on purpose (spawn_spec checks the message).
exclude_files = { "tests/lua/fixtures/broken.lua" }
