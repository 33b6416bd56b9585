-- journal_readers_spec.lua: a runtime on a SQLite journal opens its read connections at start,
-- one per thread-pool thread (the most reads that run at once), in the background; the first
-- wave of recoveries then opens none of its own.
local lore = require "lore"
local ph = require "persist_helpers"

-- libuv's pool size, read as libuv reads it.
local POOL = math.max(1, math.min(1024, math.tointeger(tonumber(os.getenv("UV_THREADPOOL_SIZE"))) or 4))

-- How many descriptors this process holds on `path` (each SQLite connection holds one).
local function connections(path)
  local p = assert(io.popen('for f in /proc/$PPID/fd/*; do readlink "$f"; done 2>/dev/null'))
  local n = 0
  for line in p:lines() do
    if line == path then n = n + 1 end
  end
  p:close()
  return n
end

local function add(ref, v) return ref:ask({ op = "add", v = v }, 10) end
local function get(ref) return ref:ask({ op = "get" }, 10) end

describe("a SQLite journal's read connections", function()
  -- Snapshots elsewhere: by default they share the journal's file, with a connection of their own.
  local uri, path, snaps = nil, nil, "memory:"
  before_each(function()
    uri, path = ph.sqlite_journal()
    -- The journal's own path as the kernel names it (os.tmpname's directory may be a link).
    local p = io.popen("realpath -m " .. ("'%s'"):format(path))
    path = p:read("l") or path
    p:close()
  end)
  after_each(function() ph.remove_db(path) end)

  it("are open soon after the start, one per pool thread, with no read asked for", function()
    ph.run({ journal = uri, snapshots = snaps }, function()
      lore.stats() -- the runtime is up
      local n = ph.eventually(function()
        local c = connections(path)
        return c >= POOL + 1 and c
      end, 5)
      -- the writer's connection and one reader per pool thread
      assert.truthy(n, ("%d connections on the journal, expected at least %d"):format(
        connections(path), POOL + 1))
    end)
  end)

  it("serve a wave of recoveries without another being opened", function()
    local ids = {}
    for i = 1, 64 do ids[i] = "reader-wave-" .. i end
    ph.run({ journal = uri, snapshots = snaps }, function()
      for _, id in ipairs(ids) do add(lore.spawn("persist.acc", { id = id }), 2) end
    end)
    ph.run({ journal = uri, snapshots = snaps, max_concurrent_recoveries = 64 }, function()
      lore.stats()
      local before = ph.eventually(function()
        local c = connections(path)
        return c >= POOL + 1 and c
      end, 5)
      assert.truthy(before, "the read connections were not opened")
      local refs = {}
      for i, id in ipairs(ids) do refs[i] = lore.spawn("persist.acc", { id = id }) end
      for i = 1, #refs do assert.equal(2, get(refs[i]).n) end
      assert.equal(before, connections(path))
    end)
  end)
end)
