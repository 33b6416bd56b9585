---@meta lore
-- lore.lua: LuaLS (lua-language-server) annotations for Lore: the `lore`
-- module of application scripts, actor refs, the `ctx` of handlers, and the
-- table a behaviour module returns. Definitions only: nothing here runs.
--
-- Use: add this folder (installed as share/lore/types) to the editor's
-- workspace library, e.g. in .luarc.json:
--   { "workspace.library": ["/usr/local/share/lore/types"] }
-- and mark a behaviour module's table:
--   ---@type lore.Behaviour
--   local M = {}
--   function M.receive(state, msg, ctx) ... end  -- ctx is a lore.Ctx

---------------------------------------------------------------------------
-- Values
---------------------------------------------------------------------------

---What crosses between actors: messages, replies, events, snapshots. Copied
---(encoded) when sent, so the receiver never sees later changes. Tables may
---nest but hold no functions, userdata (except refs), threads or cycles.
---@alias lore.Value nil|boolean|integer|number|string|lore.Ref|table

---@alias lore.LogLevel "debug"|"info"|"warn"|"error"|"off"

---------------------------------------------------------------------------
-- Refs
---------------------------------------------------------------------------

---The address of an actor. A plain value: it can be stored in state and
---events and sent inside messages. A ref made from a persistence id
---(`lore.ref(id)`, or `spawn` with `opts.id`) stays valid across restarts.
---Two refs to the same actor compare equal with `==`.
---@class lore.Ref
local Ref = {} -- luacheck: ignore 241 (a class to hang methods on)

---Sends `msg` and returns at once. A message to no live actor is a dead
---letter (counted in `lore.stats()`).
---@param msg lore.Value
function Ref:tell(msg) end

---Sends `msg` and waits (the application script's coroutine only) until the
---actor answers with `ctx:reply`. Raises "timeout: ..." when no answer comes
---within `timeout` seconds, or the actor's error when its handler raises.
---Actors do not ask this way: they use `ctx:ask`, or `tell` with `ctx.self`.
---@param msg lore.Value
---@param timeout? number seconds, default 5
---@return lore.Value reply
function Ref:ask(msg, timeout) end

---Asks the actor to stop once it has handled what is already in its mailbox
---and stash (it never overtakes earlier messages).
function Ref:stop() end

---The persistence id this ref names, or nil for a ref to a plain actor.
---@return string?
function Ref:id() end

---------------------------------------------------------------------------
-- The module (application scripts; behaviour scripts see only `lore.ref`)
---------------------------------------------------------------------------

---@class lore
local lore = {}

---Settings for `lore.configure`. Unknown keys are errors.
---@class lore.Config
---`"memory:"` (default), `"memory:NAME"`, `"sqlite:PATH"` or `"postgres:CONNINFO"`
---@field journal? string
---Where snapshots go: `"memory:"`, `"sqlite:PATH"`, `"dir:PATH"`, `"postgres:..."`; default:
---the journal's store.
---@field snapshots? string
---@field workers? integer worker threads (each a Lua state and a loop); 0 (default): one per core
---@field scripts? string|string[] directories searched for behaviour modules; default `"."`
---@field hot_reload? boolean watch `scripts` and swap changed behaviours into live actors
---sqlite: `"full"` (default) syncs every commit; `"normal"` may lose the last ones on power loss
---@field synchronous? "full"|"normal"
---Lua instructions one handler call may run (0: no limit); default 100000000
---@field max_instructions? integer
---@field memory_limit? integer bytes per worker Lua state (0: none)
---actors recovering at once in the whole runtime; default 1024
---@field max_concurrent_recoveries? integer
---@field recovery_timeout? number seconds a recovery may go without progress; default 30
---seconds before actors still running at shutdown are stopped by force; default 5
---@field shutdown_timeout? number
---@field log_level? lore.LogLevel default: `$LORE_LOG`, else `"warn"`
---@field handle_signals? boolean SIGINT/SIGTERM shut the runtime down
---the journal's circuit breaker: failed commits in a row after which writes fail fast (refused
---before storage) for `breaker_reset_timeout`; 0 turns it off; default 5
---@field breaker_max_failures? integer
---@field breaker_reset_timeout? number seconds the breaker stays open after the last failure; default 10
---microseconds a worker whose only I/O in flight is one journal write, with nothing else to run,
---polls for its completion before it sleeps (CPU for latency); 0: never; default 1000
---@field io_spin_us? integer

---Sets up the runtime; only before the first `spawn`.
---@param config lore.Config
function lore.configure(config) end

---Options of a spawn. Every field reaches the behaviour's `init(opts)`.
---@class lore.SpawnOpts
---The persistence id: required when the behaviour is persistent (defines `apply`). One live
---actor per id.
---@field id? string
---@field [string] lore.Value

---Starts an actor of `behaviour` (a module found on `scripts`) and returns
---its ref. A persistent actor recovers its state from the journal first
---(commands sent meanwhile wait). Raises when the module is missing, fails
---to load or initialise, or the id is already live. Waits: application
---script's coroutine only.
---@param behaviour string module name, e.g. "cart" for cart.lua
---@param opts? lore.SpawnOpts
---@return lore.Ref
function lore.spawn(behaviour, opts) end

---A ref to the actor with persistence id `id`, live or not (usable in
---behaviour scripts too).
---@param id string
---@return lore.Ref
function lore.ref(id) end

---Suspends the application script for `seconds` without blocking any actor.
---@param seconds number
function lore.sleep(seconds) end

---Ends the run: every actor stops safely and the journal is flushed.
function lore.shutdown() end

---@class lore.Stats
---@field alive integer actors alive on the workers
---@field dead_letters integer messages that found no actor
---@field workers integer worker threads
---@field journal_batches? integer journal writes grouped into commits (once the runtime runs)
---@field journal_writes? integer journal writes
---@field recoveries integer recoveries running now
---@field recoveries_peak integer the most recoveries that ever ran at once
---@field lua_memory integer bytes in the workers' Lua heaps (actors' state and records, garbage not yet collected)
---@field journal_breaker? "closed"|"open"|"half-open" the journal's circuit breaker (once the runtime runs)
---@field journal_breaker_trips? integer how many times it opened
---@field journal_cohort_waits? integer commits before which the writer waited for more writes
---@field journal_cohort_timeouts? integer those waits that ended at their time bound
---@field io_spins integer waits in which a worker polled for its one journal write (`io_spin_us`)
---@field io_spin_hits integer those polls that saw the write's completion come
---@field entities table<string, lore.EntityStats> per entity manager

---Counters of the running runtime.
---@return lore.Stats
function lore.stats() end

---Runs `fn(...)` as the application (what `lore run APP.lua` does): until
---it returns and no actor is alive, `lore.shutdown()` is called, or a
---signal arrives; then stops every actor safely. Raises `fn`'s error.
---@param fn fun(...)
---@param ... any arguments for fn
---@return boolean clean true, or false when actors had to be stopped by force
---@return string? why
function lore.run(fn, ...) end

---The library's version, e.g. "0.2.0".
---@return string
function lore.version() end

---Makes a native module available to behaviour scripts as `require(name)`:
---`open` (a C function, e.g. from `package.loadlib(path, "luaopen_x")`) is
---called once in each worker's Lua state and returns the module. Before the
---first spawn, inside `lore.run`.
---@param name string
---@param open function a lua_CFunction
function lore.preload(name, open) end

---@class lore.EntitiesOpts
---@field name? string the manager's name (default: the behaviour's); entity refs carry it
---@field passivate_after? number seconds without a message before an entity is stopped (120)

---@class lore.EntityStats
---@field live integer entities awake now
---@field passivated integer entities stopped for being idle, since the start
---@field woken integer entities started by a message, since the start
---@field held integer messages that waited for an entity's recovery

---An entity manager: actors named by id, spawned (and recovered) on their
---first message, passivated when idle, woken again by the next one.
---@class lore.Entities
local Entities = {} -- luacheck: ignore 241 (a class to hang methods on)

---A ref to entity `id`: valid across passivation and restarts.
---@param id string
---@return lore.Ref
function Entities:ref(id) end

---Fire and forget to entity `id` (woken if it sleeps).
---@param id string
---@param msg any
function Entities:tell(id, msg) end

---Asks entity `id`; waits (application script only).
---@param id string
---@param msg any
---@param timeout? number seconds (5)
---@return any reply
function Entities:ask(id, msg, timeout) end

---@return lore.EntityStats
function Entities:stats() end

---Reloads behaviour (or required module) `name` on every worker now, as an
---edited file does with `hot_reload = true`: every worker loads it first,
---and only if all could, all switch; live actors keep their state
---(`on_upgrade` when `M.version` changed). Waits (application script only).
---@param name string a behaviour or module name
---@return true|nil ok
---@return string? err the load error, with file and line
function lore.reload(name) end

---------------------------------------------------------------------------
-- Event adapters
---------------------------------------------------------------------------

---An event adapter, bound to the events whose `type` is the type given to
---`lore.adapter` (or its `type` field in an adapter file). Adapters of one
---type apply in the order they were bound: adapter files (sorted by name),
---then `lore.adapter` calls. Its functions run on every worker, in the
---sandbox, under the instruction budget. Given to `lore.adapter`, a function
---may use no local of the application (no upvalue but `_ENV`).
---@class lore.Adapter
---The form to store (it gets a copy; `apply` sees the event as made). Raising refuses the persist
---(`on_persist_rejected`).
---@field to_journal? fun(evt: table): lore.Value
---A stored event as today's code expects it: one event, a list of events (a table without a
---`type` field: a split), or nil (dropped). Raising fails the recovery (naming the adapter, the id
---and the seq) or the query.
---@field from_journal? fun(evt: lore.Value, meta: lore.EventMeta): lore.Value|lore.Value[]|nil
---Stored with every event of this type written from now on; `meta.version` on reading. The
---highest version of the type's adapters is stored (1 when none has one).
---@field version? integer
---The event's tags: non-empty strings without a newline (an empty tag refuses the persist).
---@field tags? string[]|fun(evt: table): string[]?
---@field name? string named in errors
---@field type? string in an adapter file: the event type it binds to

---Binds an adapter to the events of `type` on every worker; waits until every
---worker has it (application script only; after `lore.configure`).
---Adapter files do the same from `scripts`: `adapters/*.lua`, each returning a
---list of `lore.Adapter` with their `type`.
---@param type string the event type (its `type` field); "lore." is reserved
---@param adapter lore.Adapter
---@return true
function lore.adapter(type, adapter) end

---------------------------------------------------------------------------
-- Queries
---------------------------------------------------------------------------

---@class lore.EventsQueryOpts
---@field from? integer the first seq (default 1)
---@field to? integer the last seq (default math.maxinteger)
---@field follow? boolean go on with events written later (a live query); ends with the run
---@field internal? boolean also the runtime's own events (types beginning with "lore.")

---@class lore.TagQueryOpts
---@field from? integer the first offset (default: the first)
---@field follow? boolean go on with events written later (a live query); ends with the run
---@field internal? boolean also the runtime's own events

---@class lore.IdsQueryOpts
---@field follow? boolean go on with ids written for the first time later

---Reads of the journal from the application script. Each is an iterator for a
---generic `for`; the application's coroutine waits while a page is read (off
---the runtime's threads), and holds one page at a time. Events pass through the
---`from_journal` adapters, as in recovery. Leaving the loop early closes it.
---@class lore.query
lore.query = {}

---`for seq, evt, meta in lore.query.events(id, opts) do ... end`: the events
---of one persistence id, in seq order.
---@param id string
---@param opts? lore.EventsQueryOpts
---@return fun(): integer, lore.Value, lore.EventMeta
function lore.query.events(id, opts) end

---`for offset, evt, meta in lore.query.by_tag(tag, opts) do ... end`: the
---events carrying `tag`, across ids, in offset order (the order they were
---committed: never an offset below one already yielded).
---@param tag string
---@param opts? lore.TagQueryOpts
---@return fun(): integer, lore.Value, lore.EventMeta
function lore.query.by_tag(tag, opts) end

---`for id, highest in lore.query.ids(opts) do ... end`: every persistence id,
---sorted by its bytes, with its highest seq; live: then each new id, once.
---@param opts? lore.IdsQueryOpts
---@return fun(): string, integer
function lore.query.ids(opts) end

---------------------------------------------------------------------------
-- Projections
---------------------------------------------------------------------------

---What a projection's `handle`, `init` and `reset` write through.
---@class lore.ProjectionCtx
---@field name string the projection's name
local ProjectionCtx = {} -- luacheck: ignore 241 (a class to hang methods on)

---Queues one SQL statement with bound parameters (`?1`, `?2`, ...: nil,
---booleans, numbers, strings) into the projection's own tables, in the
---journal's SQLite file. It runs when the batch commits, in the same
---transaction as the projection's offset.
---@param sql string
---@param ... nil|boolean|number|string
function ProjectionCtx:exec(sql, ...) end

---@class lore.ProjectionSpec
---@field tag string the events it reads
---Called once per event, in offset order; what it writes through `ctx:exec` commits with the
---offset (exactly once); anything else it does may happen again after a crash (at least once).
---Raising stops the projection (its offset stays before the batch).
---@field handle fun(evt: lore.Value, meta: lore.EventMeta, ctx: lore.ProjectionCtx)
---Before the first event of each run, in a transaction of its own: create tables here.
---@field init? fun(ctx: lore.ProjectionCtx)
---What a reset clears (e.g. `DELETE FROM t`), in the transaction that sets the offset to 0.
---@field reset? fun(ctx: lore.ProjectionCtx)
---@field from? integer the first offset to read when nothing is stored (default: the first)
---@field batch? integer events per transaction (default 100)
---@field rebuild? boolean reset when it starts, then handle every event again

---@class lore.ProjectionStatus
---@field name string
---@field tag string
---@field state "starting"|"running"|"failed"|"stopped"
---@field offset integer the offset stored with its last commit
---@field scanned integer every event of its tag up to here has been handled
---@field error? string why it stopped

---A projection: started by `lore.projection`, it runs in the background.
---@class lore.Projection
local Projection = {} -- luacheck: ignore 241 (a class to hang methods on)

---Waits (application script only) until every event of its tag written
---before the call has been handled and committed; returns its offset. Raises
---when it stopped, or after `timeout` seconds.
---@param timeout? number seconds (default 60)
---@return integer offset
function Projection:wait(timeout) end

---@return lore.ProjectionStatus
function Projection:status() end

---Reads its tables (application script only): a list of rows, each a table
---of column = value (NULL columns absent).
---@param sql string
---@param ... nil|boolean|number|string
---@return table[] rows
function Projection:query(sql, ...) end

---Stops it after the batch in progress.
function Projection:stop() end

---Back to the start: `reset(ctx)` and offset 0 in one transaction, then every
---event again (also restarts a projection that failed). Waits until the reset
---is committed.
---@return true
function Projection:reset() end

---Starts a projection: a consumer of the events of `spec.tag` that resumes
---from its stored offset after a restart. Needs a journal with SQL
---(`sqlite:`) for `ctx:exec`; on `memory:` only its offset is kept.
---@param name string unique while it runs; its offset is stored under it
---@param spec lore.ProjectionSpec
---@return lore.Projection
function lore.projection(name, spec) end

---Rebuilds projection `name` from scratch: the running one as `p:reset()`;
---one that does not run here gets its stored offset set to 0 (its tables are
---then the caller's to clear, or `rebuild = true` when it starts). Waits.
---@param name string
---@return true
function lore.projection_reset(name) end

---Creates (or finds again) the entity manager for `behaviour`.
---@param behaviour string a behaviour module name
---@param opts? lore.EntitiesOpts
---@return lore.Entities
function lore.entities(behaviour, opts) end

---------------------------------------------------------------------------
-- ctx: the third argument of `receive`, also passed to hooks and callbacks
---------------------------------------------------------------------------

---An actor's view of itself while it handles a message. Read-only: keep
---state in `state`. Only valid during the actor's own turns.
---@class lore.Ctx
---@field self lore.Ref this actor
---@field sender lore.Ref? who sent the message being handled (nil when unknown, e.g. a timer)
---@field id string? the persistence id (nil for a plain actor without one)
---@field seq integer sequence number of the last persisted event (0 before the first)
---@field recovering boolean true while events are being replayed
local Ctx = {} -- luacheck: ignore 241 (a class to hang methods on)

---Answers the `ask` that sent the current message (nothing happens for a
---`tell`). Once per message.
---@param value lore.Value
function Ctx:reply(value) end

---Stores one event. Until it is durable, new commands wait in the stash;
---then `apply(state, evt)` runs, then `fn(state, evt)`, before the next
---command.
---@param evt lore.Value
---@param fn? fun(state: any, evt: lore.Value)
function Ctx:persist(evt, fn) end

---Stores several events as one write: after a crash all of them are there
---or none. `fn` runs once per event, in order.
---@param events lore.Value[]
---@param fn? fun(state: any, evt: lore.Value)
function Ctx:persist_all(events, fn) end

---Like `persist`, but commands keep flowing while the write is in flight;
---events and callbacks keep their order.
---@param evt lore.Value
---@param fn? fun(state: any, evt: lore.Value)
function Ctx:persist_async(evt, fn) end

---Runs `fn(state)` once every persist issued before it has completed,
---holding commands like `persist` does.
---@param fn fun(state: any)
function Ctx:defer(fn) end

---Runs `fn(state)` once every persist issued before it has completed,
---without holding commands.
---@param fn fun(state: any)
function Ctx:defer_async(fn) end

---Snapshots the current state (through `M.snapshot` when defined); the
---result arrives in `M.on_snapshot`.
function Ctx:save_snapshot() end

---Deletes this actor's events up to `to_seq` (the highest sequence number
---is always kept); the result arrives in `M.on_events_deleted`.
---@param to_seq integer
function Ctx:delete_events(to_seq) end

---Snapshot timestamps are milliseconds since the epoch (`lore.SnapshotMeta.ts`).
---@class lore.SnapshotCriteria
---@field max_seq? integer
---@field min_seq? integer
---@field max_ts? integer milliseconds since the epoch
---@field min_ts? integer milliseconds since the epoch

---Deletes this actor's snapshots that match; the result arrives in
---`M.on_snapshots_deleted`.
---@param criteria lore.SnapshotCriteria
function Ctx:delete_snapshots(criteria) end

---Puts the current command aside (the user stash).
function Ctx:stash() end

---Puts every stashed command back in front of the mailbox, in order.
function Ctx:unstash_all() end

---An entity's address: the manager's name and the entity's id.
---@class lore.EntityAddress
---@field manager string
---@field id string

---Where a delivery goes: a ref (by persistence id or entity to outlive restarts), or an entity's
---address.
---@alias lore.Destination lore.Ref|lore.EntityAddress

---At-least-once delivery (persistent actors only): journals the intent with this turn's first
---write (or alone at the end of the turn), then sends `make(delivery_id)` to `dest`, and again
---every `M.delivery.redeliver_interval` until `confirm_delivery(delivery_id)`, also after a
---crash. `make` runs once, now; every send is that message. Raises beyond
---`M.delivery.max_unconfirmed`.
---@param dest lore.Destination
---@param make fun(delivery_id: integer): lore.Value
---@return integer delivery_id strictly increasing per actor, without gaps
function Ctx:deliver(dest, make) end

---Marks a delivery as confirmed.
---@param delivery_id integer
---@return boolean was_outstanding
function Ctx:confirm_delivery(delivery_id) end

---How many deliveries still wait for confirmation.
---@return integer
function Ctx:unconfirmed() end

---@class lore.ScheduleOpts
---@field every? number repeat every this many seconds
---persistent actors: journal the timer so that it survives restarts and crashes (fires once after
---recovery if due)
---@field durable? boolean
---a name: a timer scheduled with the same key replaces this one; `ctx:cancel_timer(key)` cancels it
---(a durable one also after a restart)
---@field key? string|integer

---A timer from `ctx:schedule`.
---@class lore.Timer
local Timer = {} -- luacheck: ignore 241 (a class to hang methods on)

---Stops the timer if it has not fired yet (a durable one: journalled).
---@return boolean was_pending
function Timer:cancel() end

---Sends `msg` to this actor after `seconds`.
---@param seconds number
---@param msg lore.Value
---@param opts? lore.ScheduleOpts
---@return lore.Timer
function Ctx:schedule(seconds, msg, opts) end

---Cancels the timer scheduled with `opts.key = key` (a durable one also after a restart).
---@param key string|integer
---@return boolean was_pending
function Ctx:cancel_timer(key) end

---Asks another actor; `fn(reply, err)` runs later, as a turn of this actor
---(`err` is set on a timeout or a failure, `reply` is nil then).
---@param ref lore.Ref
---@param msg lore.Value
---@param timeout number seconds
---@param fn fun(reply: lore.Value, err: string?)
function Ctx:ask(ref, msg, timeout, fn) end

---The asker of the current command, to answer later.
---@class lore.ReplyHandle
local ReplyHandle = {} -- luacheck: ignore 241 (a class to hang methods on)

---Answers the ask this handle was made for (once).
---@param value lore.Value
function ReplyHandle:reply(value) end

---Keeps the current command's asker waiting past this turn.
---@return lore.ReplyHandle
function Ctx:reply_later() end

---`M.on_terminated` runs when the actor at `ref` stops.
---@param ref lore.Ref
function Ctx:watch(ref) end

---Stops watching `ref`.
---@param ref lore.Ref
function Ctx:unwatch(ref) end

---Wall-clock time in seconds (millisecond resolution).
---@return number
function Ctx:now() end

---Writes a line to the runtime's log; `fmt` and the arguments as in
---`string.format`.
---@param level "debug"|"info"|"warn"|"error"
---@param fmt string
---@param ... any
function Ctx:log(level, fmt, ...) end

---Starts a child actor: it stops when this actor stops, and its failures
---are handled by this actor's `M.supervision`.
---@param behaviour string
---@param opts? lore.SpawnOpts
---@return lore.Ref
function Ctx:spawn(behaviour, opts) end

---Stops this actor after the current message (a persistent actor first
---finishes the writes it has in flight).
function Ctx:stop() end

---------------------------------------------------------------------------
-- A behaviour module: the table a behaviour script returns
---------------------------------------------------------------------------

---What `apply` gets with each event (when it takes a third parameter).
---@class lore.EventMeta
---@field seq integer the event's sequence number
---@field ts integer when it was stored (milliseconds since the epoch)
---@field id string the persistence id
---@field version integer the version it was stored with (adapters; 1 where none is bound)
---@field tags string[] the tags it was stored with (adapters), in order
---@field manifest? string the type it was stored under (recovery, queries)
---@field offset? integer its place in the whole journal, in commit order (queries)

---@class lore.SnapshotMeta
---@field seq integer the last event the snapshot covers
---@field ts integer when it was taken (milliseconds since the epoch)
---@field timestamp? integer `on_snapshot` only: the same as `ts` (its older name)

---@class lore.RecoverySnapshotLimit
---@field max_seq? integer
---@field max_ts? integer milliseconds since the epoch

---@class lore.RecoveryConfig
---which snapshot to start from (default "latest")
---@field snapshot? "latest"|"none"|lore.RecoverySnapshotLimit
---@field to_seq? integer replay events up to this one only
---@field replay_max? integer replay at most this many events
---fail recovery rather than replay everything when no snapshot loads
---@field snapshot_required? boolean

---One entry of `on_unconfirmed`'s list.
---@class lore.UnconfirmedDelivery
---@field id integer the delivery id
---@field dest lore.Ref
---@field msg lore.Value
---@field attempts integer sends so far

---@class lore.DeliveryConfig
---@field redeliver_interval? number seconds between redeliveries (default 5)
---@field burst_limit? integer most redeliveries sent at once (default 10000)
---@field warn_after? integer attempts before `on_unconfirmed` (default 5)
---@field max_unconfirmed? integer most deliveries outstanding (default 100000)

---@class lore.Backoff
---@field min? number seconds (default 0.05)
---@field max? number seconds (default 10)
---@field random? number jitter fraction (default 0.2)

---How this actor's children are treated when they fail.
---@class lore.Supervision
---@field strategy? "restart"|"stop"|"escalate"
---@field max_restarts? integer within `within` seconds (default 10)
---@field within? number seconds (default 60)
---@field backoff? lore.Backoff

---Only `receive` is required. A behaviour that defines `apply` is
---persistent: it needs `opts.id`, and its state is rebuilt from its events.
---@class lore.Behaviour
---Handles each command: validates it, answers, persists events.
---@field receive fun(state: any, msg: lore.Value, ctx: lore.Ctx)
---The state before any event (default `{}`).
---@field init? fun(opts: lore.SpawnOpts): any
---Folds one event into the state and returns the new state, after each persist and during
---recovery. No side effects (no sends) here.
---@field apply? fun(state: any, evt: lore.Value, meta: lore.EventMeta): any
---Compared on hot reload: a change calls `on_upgrade`.
---@field version? integer
---What a snapshot stores (default: the state itself).
---@field snapshot? fun(state: any): lore.Value
---The state from what `snapshot` stored.
---@field restore? fun(snap: lore.Value, meta: lore.SnapshotMeta): any
---Take a snapshot every this many events.
---@field snapshot_every? integer
---Keep only the newest this many snapshots.
---@field keep_snapshots? integer
---Delete the events the oldest kept snapshot covers.
---@field delete_events_on_snapshot? boolean
---How to recover; `false`: start from `init` and replay nothing.
---@field recovery? lore.RecoveryConfig|false
---The most commands the internal stash holds while persists are in flight.
---@field stash_capacity? integer
---When the stash is full: fail the actor (default), drop the command to dead letters, or answer
---its sender with an error.
---@field stash_overflow? "fail"|"drop"|"reply"
---At-least-once delivery settings (`ctx:deliver`).
---@field delivery? lore.DeliveryConfig
---How this actor's children are treated when they fail.
---@field supervision? lore.Supervision
---After the replay, before the first command that waited.
---@field on_recovery_completed? fun(state: any, ctx: lore.Ctx)
---The journal failed a write: the actor then stops and restarts with back-off.
---@field on_persist_failure? fun(state: any, err: string, evt: lore.Value, ctx: lore.Ctx)
---An event was refused before storage (e.g. it cannot be encoded): the actor goes on. Returning
---true leaves out the warning in the log.
---@field on_persist_rejected? fun(state: any, err: string, evt: lore.Value, ctx: lore.Ctx): boolean?
---Recovery failed: the actor stops.
---@field on_recovery_failure? fun(err: string, ctx: lore.Ctx)
---The outcome of `ctx:save_snapshot` or of an automatic snapshot.
---@field on_snapshot? fun(ok: boolean, meta_or_err: lore.SnapshotMeta|string, ctx: lore.Ctx)
---The outcome of `ctx:delete_snapshots`: the criteria, or the error.
---@field on_snapshots_deleted? fun(ok: boolean, done: lore.SnapshotCriteria|string, ctx: lore.Ctx)
---The outcome of `ctx:delete_events` (refused above the last persisted seq).
---@field on_events_deleted? fun(ok: boolean, seq_or_err: integer|string, ctx: lore.Ctx)
---Deliveries still unconfirmed after `delivery.warn_after` sends (once each).
---@field on_unconfirmed? fun(list: lore.UnconfirmedDelivery[], ctx: lore.Ctx)
---Hot reload changed `version`: returns the live state converted.
---@field on_upgrade? fun(state: any, old_version: integer?): any
---The actor is stopping.
---@field on_stop? fun(state: any, ctx: lore.Ctx)
---An actor this one watches (`ctx:watch`) stopped.
---@field on_terminated? fun(state: any, ref: lore.Ref, reason: "stopped"|"failed", ctx: lore.Ctx)

return lore
