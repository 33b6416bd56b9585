-- query_spec.lua: lore.query.events, by_tag and ids: order, bounds, pages, live queries that
-- follow new writes, internal events, and misuse.
local lore = require "lore"
local helpers = require "helpers"
local ph = require "persist_helpers"

local SCRIPTS = { helpers.fixtures .. "/adapt", helpers.fixtures }

local backends = {
  { "memory", function() return ph.memory_journal(), nil end },
  { "sqlite", function() return ph.sqlite_journal() end },
}

local function run(uri, fn, extra)
  local cfg = { journal = uri, scripts = SCRIPTS, synchronous = "normal" }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return ph.run(cfg, fn)
end

-- Events of type "item" carry the tags they list.
local function tag_items()
  lore.adapter("item", { tags = function(evt) return evt.tags end })
  lore.adapter("tick", { tags = function(evt) return evt.tags end })
end

local function persist_all(ref, evts)
  local r = ref:ask({ op = "persist_all", evts = evts }, 30)
  assert(r.ok, "persist refused: " .. tostring(r.rejected))
end

local function items(n, base, tags)
  local list = {}
  for i = 1, n do list[i] = { type = "item", n = base + i, tags = tags } end
  return list
end

for _, backend in ipairs(backends) do
  local name, fresh = backend[1], backend[2]

  describe("queries on the " .. name .. " journal", function()
    local uri, path
    before_each(function() uri, path = fresh() end)
    after_each(function() if path then ph.remove_db(path) end end)

    it("events(id) yields seq, event and meta in seq order, within from and to", function()
      run(uri, function()
        local a = lore.spawn("ledger", { id = "ev-1" })
        persist_all(a, items(10, 0))
        persist_all(lore.spawn("ledger", { id = "ev-2" }), items(3, 100))
        local seqs = {}
        for seq, evt, meta in lore.query.events("ev-1") do
          seqs[#seqs + 1] = seq
          assert.equal(seq, evt.n)
          assert.equal("ev-1", meta.id)
          assert.equal(seq, meta.seq)
          assert.equal("item", meta.manifest)
          assert.is_true(meta.offset >= 1)
          assert.is_true(meta.ts > 0)
        end
        assert.same(ph.range(1, 10), seqs)
        seqs = {}
        for seq in lore.query.events("ev-1", { from = 4, to = 6 }) do seqs[#seqs + 1] = seq end
        assert.same({ 4, 5, 6 }, seqs)
        for _ in lore.query.events("nobody") do error("an unknown id has no events") end
        for _ in lore.query.events("ev-1", { from = 11 }) do error("nothing after the last seq") end
      end)
    end)

    it("reads a long stream page by page, in order, with bounded memory", function()
      run(uri, function()
        local a = lore.spawn("ledger", { id = "long-1" })
        for b = 0, 4 do persist_all(a, items(1000, b * 1000)) end
        collectgarbage()
        local base, peak = collectgarbage("count"), 0
        local n = 0
        for seq, evt in lore.query.events("long-1") do
          n = n + 1
          assert.equal(n, seq)
          assert.equal(n, evt.n)
          if n % 500 == 0 then peak = math.max(peak, collectgarbage("count") - base) end
        end
        assert.equal(5000, n)
        assert.is_true(peak < 16 * 1024, "memory grew by " .. peak .. " KB while reading")
      end)
    end)

    it("by_tag yields the events of a tag across ids in offset order, from an offset on", function()
      run(uri, function()
        tag_items()
        local a, b = lore.spawn("ledger", { id = "tg-a" }), lore.spawn("ledger", { id = "tg-b" })
        persist_all(a, items(3, 0, { "red" }))
        persist_all(b, items(3, 10, { "red", "blue" }))
        persist_all(a, items(2, 20, { "blue" }))
        persist_all(b, items(2, 30, { "red" }))
        local got, offsets = {}, {}
        for offset, evt, meta in lore.query.by_tag("red") do
          got[#got + 1] = evt.n
          offsets[#offsets + 1] = offset
          assert.equal(offset, meta.offset)
          assert.truthy(meta.id == "tg-a" or meta.id == "tg-b")
        end
        assert.same({ 1, 2, 3, 11, 12, 13, 31, 32 }, got)
        for i = 2, #offsets do assert.is_true(offsets[i] > offsets[i - 1]) end
        got = {}
        for _, evt in lore.query.by_tag("red", { from = offsets[4] }) do got[#got + 1] = evt.n end
        assert.same({ 11, 12, 13, 31, 32 }, got)
        got = {}
        for _, evt in lore.query.by_tag("blue") do got[#got + 1] = evt.n end
        assert.same({ 11, 12, 13, 21, 22 }, got)
        for _ in lore.query.by_tag("green") do error("no event has that tag") end
      end)
    end)

    it("ids lists every persistence id, sorted, with its highest seq, over several pages", function()
      run(uri, function()
        local mgr = lore.entities("ledger", { name = "ids-ledgers" })
        for i = 1, 1200 do
          mgr:ask(string.format("id-%04d", i), { op = "persist", evt = { type = "item", n = i } }, 30)
        end
        mgr:ask("id-1200", { op = "persist", evt = { type = "item", n = 0 } }, 30)
        mgr:ask("id-0001", { op = "persist", evt = { type = "item", n = 0 } }, 30)
        local n, last = 0, ""
        for id, highest in lore.query.ids() do
          n = n + 1
          assert.is_true(id > last)
          last = id
          assert.equal((id == "id-1200" or id == "id-0001") and 2 or 1, highest)
        end
        assert.equal(1200, n)
      end)
    end)

    it("follows new events as they are written, in offset order, with concurrent writers", function()
      run(uri, function()
        tag_items()
        local t1 = lore.spawn("ticker", { id = "live-1", tags = { "live" } })
        local t2 = lore.spawn("ticker", { id = "live-2", tags = { "live" } })
        t1:ask({ op = "start", n = 25, every = 0.002 })
        t2:ask({ op = "start", n = 25, every = 0.003 })
        local last_offset, next_i, count = 0, { ["live-1"] = 1, ["live-2"] = 1 }, 0
        for offset, evt, meta in lore.query.by_tag("live", { follow = true }) do
          assert.is_true(offset > last_offset, "an offset below one already seen")
          last_offset = offset
          assert.equal(next_i[meta.id], evt.i) -- each writer's events in its own order
          next_i[meta.id] = evt.i + 1
          count = count + 1
          if count == 50 then break end
        end
        assert.equal(50, count)
        -- the stream followed one id live too, and ended with break
        local seqs = {}
        for seq in lore.query.events("live-1", { follow = true }) do
          seqs[#seqs + 1] = seq
          if seq == 25 then break end
        end
        assert.same(ph.range(1, 25), seqs)
      end)
    end)

    it("a live query with a `to` ends there", function()
      run(uri, function()
        local t = lore.spawn("ticker", { id = "live-to" })
        t:ask({ op = "start", n = 10, every = 0.002 })
        local seqs = {}
        for seq in lore.query.events("live-to", { follow = true, to = 5 }) do seqs[#seqs + 1] = seq end
        assert.same(ph.range(1, 5), seqs)
      end)
    end)

    it("ids follows new ids, each once", function()
      run(uri, function()
        for i = 1, 3 do
          lore.spawn("ledger", { id = "old-" .. i }):ask({ op = "persist", evt = { type = "item" } }, 5)
        end
        local seen, spawned = {}, false
        for id in lore.query.ids({ follow = true }) do
          assert.is_nil(seen[id], "listed twice: " .. id)
          seen[id] = true
          if id == "old-3" and not spawned then
            spawned = true
            local b = lore.spawn("ledger", { id = "new-1" })
            b:ask({ op = "persist", evt = { type = "item" } }, 5)
            b:ask({ op = "persist", evt = { type = "item" } }, 5)
            lore.spawn("ledger", { id = "new-2" }):ask({ op = "persist", evt = { type = "item" } }, 5)
          end
          if seen["new-1"] and seen["new-2"] then break end
        end
        assert.truthy(seen["old-1"] and seen["old-2"] and seen["new-1"] and seen["new-2"])
      end)
    end)

    it("hides the runtime's own events unless asked for them", function()
      run(uri, function()
        tag_items()
        local a = lore.spawn("ledger", { id = "int-1" })
        persist_all(a, { { type = "item", n = 1 } })
        -- a behaviour cannot write an event of the runtime's own types
        local r = a:ask({ op = "persist", evt = { type = "lore.deliver", n = 2 } }, 10)
        assert.matches("reserved for Lore's own events", r.rejected)
        -- a delivery writes one (first in the same write), its confirmation another
        assert.truthy(a:ask({ op = "deliver_then_persist", evt = { type = "item", n = 4 } }, 10).ok)
        assert.truthy(ph.eventually(function()
          local n = 0
          for _ in lore.query.events("int-1", { internal = true }) do n = n + 1 end
          return n == 4
        end, 10), "the delivery's confirmation was not stored")
        local got = {}
        for _, evt in lore.query.events("int-1") do got[#got + 1] = evt.n end
        assert.same({ 1, 4 }, got)
        got = {}
        for _, _, meta in lore.query.events("int-1", { internal = true }) do got[#got + 1] = meta.manifest end
        assert.same({ "item", "lore.deliver", "item", "lore.confirm" }, got)
      end)
    end)
  end)
end

describe("queries", function()
  it("refuse bad arguments and unknown options", function()
    run(ph.memory_journal(), function()
      assert.matches("unknown option 'form'", helpers.error_of(lore.query.events, "x", { form = 1 }))
      assert.matches("from must be an integer", helpers.error_of(lore.query.events, "x", { from = 1.5 }))
      assert.matches("id must be", helpers.error_of(lore.query.events, ""))
      assert.matches("tag must be", helpers.error_of(lore.query.by_tag, "a\nb"))
      assert.matches("unknown option 'internal'", helpers.error_of(lore.query.ids, { internal = true }))
    end)
  end)

  it("wait in the application's own coroutine only", function()
    run(ph.memory_journal(), function()
      lore.spawn("ledger", { id = "co-1" }):ask({ op = "persist", evt = { type = "item" } }, 5)
      local err = helpers.error_of(coroutine.wrap(function()
        for _ in lore.query.events("co-1") do end
      end))
      assert.matches("application script's own coroutine", err)
      local n = 0
      for _ in lore.query.events("co-1") do n = n + 1 end
      assert.equal(1, n)
    end)
  end)

  it("a live query ends with the run: SIGTERM stops `lore run` cleanly", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    local app = helpers.app_file(string.format([[
      local lore = require "lore"
      lore.configure { journal = %q, scripts = { %q, %q } }
      lore.spawn("ledger", { id = "tail-1" }):ask({ op = "persist", evt = { type = "item", n = 1 } })
      for seq in lore.query.events("tail-1", { follow = true }) do
        print("got " .. seq)
        io.stdout:flush()
      end
      print("not reached")
    ]], uri, SCRIPTS[1], SCRIPTS[2]))
    finally(function() os.remove(app) end)
    local out = os.tmpname()
    finally(function() os.remove(out) end)
    local script = string.format([[
      %s run %s > %s 2>&1 &
      pid=$!
      for i in $(seq 1 500); do grep -q "got 1" %s && break; sleep 0.02; done
      kill -TERM $pid
      wait $pid
      echo "exit=$?"
    ]], helpers.quote(helpers.lore_bin()), helpers.quote(app), helpers.quote(out), helpers.quote(out))
    local stdout = helpers.sh("bash -c " .. helpers.quote(script))
    local f = assert(io.open(out))
    local printed = f:read("a")
    f:close()
    assert.matches("got 1", printed)
    assert.not_matches("not reached", printed)
    assert.matches("exit=0", stdout)
  end)
end)
