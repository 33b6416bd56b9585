// postgres_nact_round.js: one nact round of tests/bench/postgres_bench.lua (figures only).
// scripts/bench-nact.sh installs nact and nact-persistence-postgres from the npm registry into
// a temporary folder and runs this file from there.
//
//   node postgres_nact_round.js MODE CONNINFO SCHEMA ARGS...
//     chain  N M  N persistent actors cart-1..cart-N, woken first (spawned, recovered, not timed);
//                 then each is sent M "add" messages at once. The handler awaits ctx.persist
//                 before returning, as nact's documentation says it must, so each actor has one
//                 persist in flight, as Lore's carts do. Timed from the first message until every
//                 actor has persisted M events. Prints: NACT chain events=E seconds=S
//     fill   M    (setup, not timed) M events of cart-1 inserted with SQL, rows as nact writes them
//     replay M    spawns cart-1 and asks it; timed until it answers (recovery of M events).
//                 Prints: NACT replay events=M seconds=S
// CONNINFO is a libpq key=value conninfo (host, port, user, dbname); SCHEMA holds nact's tables
// (nact-persistence-postgres's `schema` option), made fresh by the caller.
'use strict';
const { start, configurePersistence, spawnPersistent, dispatch, query, stop } = require('nact');
const { PostgresPersistenceEngine } = require('nact-persistence-postgres');
const pgp = require('pg-promise')();

const [mode, conninfo, schema, ...rest] = process.argv.slice(2);
const SKUS = ['apple', 'pear', 'banana', 'cherry'];

function pgConfig (info) {
  const cfg = {};
  for (const pair of info.trim().split(/\s+/)) {
    const [k, v] = pair.split('=');
    cfg[k === 'dbname' ? 'database' : k] = k === 'port' ? Number(v) : v;
  }
  return cfg;
}

const db = pgp(pgConfig(conninfo));
const seconds = t0 => Number(process.hrtime.bigint() - t0) / 1e9;

// The cart of tests/bench/behaviours/cart.lua: one event per item added.
function spawnCart (system, id, onPersisted) {
  return spawnPersistent(system, async (state = { count: 0 }, msg, ctx) => {
    if (msg.type === 'add') {
      if (!ctx.recovering) await ctx.persist(msg);
      const next = { count: state.count + 1 };
      if (!ctx.recovering && onPersisted) onPersisted(next.count);
      return next;
    } else if (msg.type === 'get') {
      dispatch(ctx.sender, { count: state.count });
    }
    return state;
  }, id, id);
}

async function chain (n, m) {
  const system = start(configurePersistence(new PostgresPersistenceEngine(db, { schema })));
  let left = n;
  let finish;
  const done = new Promise(resolve => { finish = resolve; });
  const carts = [];
  for (let i = 1; i <= n; i++) {
    carts.push(spawnCart(system, `cart-${i}`, count => { if (count === m && --left === 0) finish(); }));
  }
  for (const c of carts) await query(c, sender => ({ type: 'get', sender }), 60000);
  const t0 = process.hrtime.bigint();
  for (let k = 1; k <= m; k++) {
    for (const c of carts) dispatch(c, { type: 'add', sku: SKUS[k % 4], qty: k % 9 + 1 });
  }
  await done;
  const secs = seconds(t0);
  const got = await query(carts[0], sender => ({ type: 'get', sender }), 60000);
  if (got.count !== m) throw new Error(`cart-1 holds ${got.count} events, expected ${m}`);
  console.log(`NACT chain events=${n * m} seconds=${secs.toFixed(6)}`);
  stop(system);
}

async function fill (m) {
  // The engine makes its tables; the rows are what its persist() inserts.
  const engine = new PostgresPersistenceEngine(db, { schema });
  await engine.db;
  await db.none(`INSERT INTO ${schema}.event_journal (persistence_key, sequence_nr, created_at, data, tags)
    SELECT 'cart-1', g, (extract(epoch from now()) * 1000)::bigint,
           jsonb_build_object('type', 'add', 'sku', (ARRAY['apple','pear','banana','cherry'])[g % 4 + 1],
                              'qty', g % 9 + 1), ARRAY[]::text[]
    FROM generate_series(1, $1) AS g`, [m]);
  await db.none(`ANALYZE ${schema}.event_journal`);
  console.log(`NACT fill events=${m}`);
}

async function replay (m) {
  const system = start(configurePersistence(new PostgresPersistenceEngine(db, { schema })));
  await query(spawnCart(system, 'warm-up'), sender => ({ type: 'get', sender }), 60000);
  const t0 = process.hrtime.bigint();
  const cart = spawnCart(system, 'cart-1');
  const got = await query(cart, sender => ({ type: 'get', sender }), 600000);
  const secs = seconds(t0);
  if (got.count !== m) throw new Error(`recovered ${got.count} events, expected ${m}`);
  console.log(`NACT replay events=${m} seconds=${secs.toFixed(6)}`);
  stop(system);
}

(async () => {
  const nums = rest.map(Number);
  if (mode === 'chain') await chain(nums[0], nums[1]);
  else if (mode === 'fill') await fill(nums[0]);
  else if (mode === 'replay') await replay(nums[0]);
  else throw new Error(`unknown mode ${mode}`);
})().then(() => pgp.end(), e => { console.error(e); pgp.end(); process.exit(1); });
