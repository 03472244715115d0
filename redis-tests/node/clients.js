// clients.js - drives one Node.js Redis client against raftconf-server, as an application
// would: connect (with the client's default handshake: HELLO 3 for ioredis 6 and
// node-redis 6), ready check, GET/SET/MGET, a pipeline, MULTI/EXEC, SUBSCRIBE/PSUBSCRIBE,
// CFG.SET/CFG.GET/CFG.WATCH through the generic command call, and reconnection after the
// server restarts. Optionally the same against a 3-node cluster (write on one node, read on
// the others, Pub/Sub on one node).
//
//   node clients.js CLIENT PORT RESTART_DIR [CLUSTER_PORTS]
//     CLIENT         ioredis5 | ioredis6 | redis4 | redis5 | redis5-resp3 | redis6
//     RESTART_DIR    passed to `bash ../lib.sh restart DIR` to restart the server on PORT
//     CLUSTER_PORTS  comma-separated client ports of a cluster (optional)
// Prints "ok NAME" / "FAIL NAME: why" per check and exits 1 when any failed.
'use strict';
const path = require('path');
const { execFileSync } = require('child_process');

const [clientName, portArg, restartDir, clusterArg] = process.argv.slice(2);
const port = Number(portArg);
const clusterPorts = clusterArg ? clusterArg.split(',').map(Number) : [];
const family = clientName.startsWith('ioredis') ? 'ioredis' : 'node-redis';
const moduleName = clientName.replace('-resp3', '');
const mod = require(path.join(__dirname, '..', 'node_modules', moduleName));
const tag = `${clientName}-${process.pid}`;
let failures = 0;

function ok(name) { console.log(`ok   ${clientName} ${name}`); }
function fail(name, why) { failures++; console.log(`FAIL ${clientName} ${name}: ${why}`); }
function eq(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
function check(name, got, want) {
  if (eq(got, want)) ok(name);
  else fail(name, `expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}
async function step(name, fn) {
  try { await withTimeout(fn(), 15000, name); } catch (e) { fail(name, e && e.message); }
}
// Flatten a reply (arrays, maps as objects or Maps, Buffers) into a list of strings.
function flat(x, out = []) {
  if (x === null || x === undefined) return out;
  if (Buffer.isBuffer(x)) out.push(x.toString());
  else if (Array.isArray(x)) x.forEach((e) => flat(e, out));
  else if (x instanceof Map) for (const [k, v] of x) { flat(k, out); flat(v, out); }
  else if (typeof x === 'object') for (const k of Object.keys(x)) { out.push(k); flat(x[k], out); }
  else out.push(String(x));
  return out;
}
// A RESP2 flat array or RESP3 map of field/value pairs -> plain object.
function fields(x) {
  if (x instanceof Map) return Object.fromEntries([...x].map(([k, v]) => [String(k), v]));
  if (Array.isArray(x)) {
    const o = {};
    for (let i = 0; i + 1 < x.length; i += 2) o[String(x[i])] = x[i + 1];
    return o;
  }
  return x;
}

// ---------------------------------------------------------------- client adapters
// Each adapter gives the same small API over one client library.
function makeIoredis(p) {
  const Redis = mod.Redis || mod.default || mod;
  const c = new Redis({ host: '127.0.0.1', port: p, lazyConnect: true,
    maxRetriesPerRequest: 50, retryStrategy: () => 100 });
  c.on('error', () => {}); // reconnection is tested; the errors meanwhile are expected
  return {
    raw: c,
    connect: () => c.connect(),
    ready: () => c.status === 'ready',
    cmd: (...args) => c.call(...args),
    set: (k, v) => c.set(k, v),
    get: (k) => c.get(k),
    mget: (...ks) => c.mget(...ks),
    pipeline: async (ops) => (await ops.reduce((pl, op) => pl.call(...op), c.pipeline())
      .exec()).map(([err, r]) => (err ? `ERR ${err.message}` : r)),
    multi: async (ops) => {
      const r = await ops.reduce((m, op) => m.call(...op), c.multi()).exec();
      return r === null ? null : r.map(([err, v]) => (err ? `ERR ${err.message}` : v));
    },
    subscribe: async (ch, cb) => {
      c.on('message', (chan, msg) => { if (chan === ch) cb(msg, chan); });
      await c.subscribe(ch);
    },
    psubscribe: async (pat, cb) => {
      c.on('pmessage', (pt, chan, msg) => { if (pt === pat) cb(msg, chan); });
      await c.psubscribe(pat);
    },
    publish: (ch, m) => c.publish(ch, m),
    close: async () => { try { await c.quit(); } catch (e) { c.disconnect(); } },
  };
}

function makeNodeRedis(p) {
  const opts = { socket: { host: '127.0.0.1', port: p, reconnectStrategy: () => 100 } };
  if (clientName === 'redis5-resp3') opts.RESP = 3;
  const c = mod.createClient(opts);
  c.on('error', () => {});
  const adapter = (cl) => ({
    raw: cl,
    connect: () => cl.connect(),
    ready: () => cl.isReady,
    cmd: (...args) => cl.sendCommand(args.map(String)),
    set: (k, v) => cl.set(k, v),
    get: (k) => cl.get(k),
    mget: (...ks) => cl.mGet(ks),
    pipeline: async (ops) => {
      const m = ops.reduce((mm, [n, ...a]) => mm.addCommand([n.toUpperCase(), ...a.map(String)]),
        cl.multi());
      return m.execAsPipeline();
    },
    multi: async (ops) => {
      const m = ops.reduce((mm, [n, ...a]) => mm.addCommand([n.toUpperCase(), ...a.map(String)]),
        cl.multi());
      return m.exec();
    },
    subscribe: (ch, cb) => cl.subscribe(ch, (msg, chan) => cb(String(msg), String(chan))),
    psubscribe: (pat, cb) => cl.pSubscribe(pat, (msg, chan) => cb(String(msg), String(chan))),
    publish: (ch, m) => cl.publish(ch, m),
    close: async () => {
      try { if (cl.close) await cl.close(); else await cl.quit(); } catch (e) {
        try { cl.destroy ? cl.destroy() : cl.disconnect(); } catch (e2) { /* gone */ }
      }
    },
  });
  return adapter(c);
}

const make = family === 'ioredis' ? makeIoredis : makeNodeRedis;

// ---------------------------------------------------------------- the checks
async function basics(c, label) {
  await step(`${label} get/set`, async () => {
    check(`${label} set`, await c.set(`${tag}:k`, 'v1'), 'OK');
    check(`${label} get`, await c.get(`${tag}:k`), 'v1');
    check(`${label} get-missing`, await c.get(`${tag}:nosuch`), null);
    await c.set(`${tag}:k2`, 'v2');
    check(`${label} mget`, await c.mget(`${tag}:k`, `${tag}:nosuch`, `${tag}:k2`),
      ['v1', null, 'v2']);
  });
  await step(`${label} pipeline`, async () => {
    const ops = [];
    for (let i = 0; i < 50; i++) ops.push(['set', `${tag}:p${i}`, `${i}`]);
    ops.push(['get', `${tag}:p49`]);
    const r = await c.pipeline(ops);
    check(`${label} pipeline`, [r.length, r[0], r[49], r[50]], [51, 'OK', 'OK', '49']);
  });
  await step(`${label} many in flight`, async () => {
    const ps = [];
    for (let i = 0; i < 200; i++) ps.push(c.set(`${tag}:f${i}`, `${i}`));
    const r = await Promise.all(ps);
    check(`${label} many in flight`, r.every((x) => x === 'OK'), true);
  });
  await step(`${label} cfg.set/cfg.get`, async () => {
    const s = fields(await c.cmd('CFG.SET', `/${tag}/a`, 'x1'));
    check(`${label} cfg.set version`, Number(s.version), 1);
    const g = fields(await c.cmd('CFG.GET', `/${tag}/a`));
    check(`${label} cfg.get`, [String(g.value), Number(g.version)], ['x1', 1]);
    let err = '';
    try { await c.cmd('CFG.SET', `/${tag}/a`, 'x2', 'IFVERSION', '0'); } catch (e) {
      err = e.message;
    }
    check(`${label} cfg.set ifversion`, err.startsWith('VERSION'), true);
  });
}

async function multiAndWatch(c, label) {
  await step(`${label} multi/exec`, async () => {
    const r = await c.multi([['set', `${tag}:m`, 'mv'], ['get', `${tag}:m`],
      ['cfg.set', `/${tag}/m`, 'mv']]);
    check(`${label} multi/exec`, [r[0], r[1], r.length], ['OK', 'mv', 3]);
  });
  await step(`${label} cfg.watch`, async () => {
    const s = fields(await c.cmd('CFG.SET', `/${tag}/w/a`, 'w1'));
    const rev = Number(s.revision);
    await c.cmd('CFG.SET', `/${tag}/w/b`, 'w2');
    const r = flat(await c.cmd('CFG.WATCH', `/${tag}/w/`, 'FROM', String(rev - 1), 'COUNT',
      '10'));
    check(`${label} cfg.watch`, [r.includes(`/${tag}/w/a`), r.includes('w1'),
      r.includes(`/${tag}/w/b`)], [true, true, true]);
  });
}

async function pubsub(mk, label) {
  await step(`${label} subscribe/psubscribe`, async () => {
    const sub = mk();
    const pub = mk();
    await sub.connect();
    await pub.connect();
    const got = [];
    await sub.subscribe(`${tag}:ch`, (m, ch) => got.push(`m:${ch}:${m}`));
    // node-redis and ioredis 6 multiplex RESP3 pushes; ioredis 5 needs subscriber mode
    await sub.psubscribe(`${tag}:p*`, (m, ch) => got.push(`p:${ch}:${m}`));
    const n1 = await pub.publish(`${tag}:ch`, 'hello');
    const n2 = await pub.publish(`${tag}:pq`, 'world');
    for (let i = 0; i < 50 && got.length < 2; i++) await sleep(20);
    check(`${label} publish counts`, [Number(n1), Number(n2)], [1, 1]);
    check(`${label} messages`, got.sort(), [`m:${tag}:ch:hello`, `p:${tag}:pq:world`]);
    await sub.close();
    await pub.close();
  });
}

async function reconnect(c, label) {
  await step(`${label} reconnect after restart`, async () => {
    await c.set(`${tag}:r`, 'before');
    execFileSync('bash', [path.join(__dirname, '..', 'lib.sh'), 'restart', restartDir],
      { stdio: 'ignore', timeout: 30000 });
    let v;
    let lastErr = '';
    for (let i = 0; i < 100; i++) { // the client reconnects by itself; commands may fail
      try { v = await c.get(`${tag}:r`); break; } catch (e) { lastErr = e.message; }
      await sleep(100);
    }
    check(`${label} reconnect: value kept`, v, 'before');
    if (v === undefined) fail(`${label} reconnect`, lastErr);
    check(`${label} reconnect: ready again`, c.ready(), true);
    check(`${label} reconnect: set after`, await c.set(`${tag}:r`, 'after'), 'OK');
  });
}

async function cluster(label) {
  const cs = clusterPorts.map((p) => make(p));
  await step(`${label} connect`, async () => { for (const c of cs) await c.connect(); });
  await step(`${label} write one, read all`, async () => {
    for (let i = 0; i < cs.length; i++) {
      check(`${label} set via node ${i + 1}`, await cs[i].set(`${tag}:c${i}`, `n${i}`), 'OK');
      // reads are linearizable on every node: the write is visible everywhere at once
      for (let j = 0; j < cs.length; j++)
        check(`${label} get via node ${j + 1}`, await cs[j].get(`${tag}:c${i}`), `n${i}`);
    }
    const s = fields(await cs[1].cmd('CFG.SET', `/${tag}/c`, 'cv'));
    const g = fields(await cs[2].cmd('CFG.GET', `/${tag}/c`));
    check(`${label} cfg via two nodes`, [String(g.value), Number(g.mod_revision)],
      ['cv', Number(s.revision)]);
  });
  await pubsub(() => make(clusterPorts[1]), `${label} node2`);
  for (const c of cs) await c.close();
}

async function main() {
  const c = make(port);
  await step('connect + ready', async () => {
    await c.connect();
    for (let i = 0; i < 50 && !c.ready(); i++) await sleep(20);
    check('ready', c.ready(), true);
  });
  await step('hello/protocol', async () => {
    const info = String(await c.cmd('CLIENT', 'INFO'));
    const want3 = clientName === 'ioredis6' || clientName === 'redis6' ||
      clientName === 'redis5-resp3';
    check('protocol (CLIENT INFO resp=)', /resp=(\d)/.exec(info)[1], want3 ? '3' : '2');
  });
  await basics(c, 'single');
  await multiAndWatch(c, 'single');
  await pubsub(() => make(port), 'single');
  await reconnect(c, 'single');
  await c.close();
  if (clusterPorts.length) await cluster('cluster');
  console.log(`${clientName}: ${failures === 0 ? 'all passed' : `${failures} failed`}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL ${clientName} crashed: ${e && e.stack}`);
  process.exit(1);
});
