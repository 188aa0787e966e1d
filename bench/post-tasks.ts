/*
 * POST /api/v1/tasks/ against the database alone (issue 9).
 *
 * PostgreSQL: `serve` runs as its own process on a fresh database; autocannon posts tasks with 8
 * and then 32 connections; beside each run, pgbench runs the issue's transaction for one POST with
 * as many clients. Target: at least 0.85× the transactions per second of pgbench, p99 at most 2×
 * pgbench's.
 *
 * Embedded: `serve` on a fresh data folder, against a copy of that folder opened in this process
 * with PGlite, where as many concurrent callers run the same transaction (PGlite serialises them).
 * Target: at least 0.8× its throughput.
 *
 *   npx tsx bench/post-tasks.ts [--pg URL] [--quick] [--seconds 10] [--warm 2] [--worker on|off] [--profile] [--only postgres|embedded]
 *                               [--embedded-low-memory]
 *
 * `--embedded-low-memory` starts the embedded server with EMBEDDED_LOW_MEMORY=on (its WebAssembly on
 * V8's baseline compiler only): the other side of the memory trade-off in docs/benchmarks.md. Its
 * rows are labelled so; the issue's targets are on the default settings.
 *
 * The anchor ("the issue's transaction") is the work of one POST as the issue names it — key
 * lookup, type lookup, task insert, history insert — one statement per step, with the two more
 * the server does for every task (its live-update notification and its notification outbox row):
 *   1. SELECT … FROM api_keys WHERE key_hash = $1
 *   2. SELECT … FROM task_types JOIN (the schema's latest version) …
 *   3. BEGIN
 *   4. INSERT INTO tasks … RETURNING …                 (the id taken with \gset)
 *   5. INSERT INTO task_history …
 *   6. SELECT pg_notify($1, $2)
 *   7. INSERT INTO notification_events …
 *   8. COMMIT
 * pgbench sends them as prepared statements (`-M prepared`), its fastest mode.
 *
 * The server does the same work in one round trip (src/core/tasks/tasks.repo.ts): one statement
 * that checks the key, looks up the type, inserts the task, its history entry and its outbox row
 * and sends the notification. That statement, recorded from the route's own call, is run by
 * pgbench (and by PGlite in-process) as well and shown beside, as "the server's statements": the
 * database's limit for the server's own way of doing it. (The key's last-use stamp, an UPDATE,
 * runs at most once a minute per key and process; the recorded POST is a later one.)
 *
 * The server keeps running (idle) while the anchors run: its LISTEN connection hears their
 * notifications too, and with WORKER on (the default, as `serve` runs) its notification worker
 * fans out their notification events as it does the server's own, so both sides carry the same
 * background work. `--worker off` measures the request path alone.
 */
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { createApiKey, hashApiKey } from '../src/core/keys/index.js';
import { TASK_EVENTS_CHANNEL } from '../src/core/events/task-events.js';
import { installSchema } from '../src/core/schemas/index.js';
import { createTaskCheckingKey } from '../src/core/tasks/index.js';
import { migrate, openDatabase, wrapPglite, type Database } from '../src/db/index.js';
import {
  benchOptions,
  captureStatements,
  createFreshDatabase,
  numberOption,
  pgbenchScript,
  printResult,
  round,
  runPgbench,
  summarise,
  table,
  type CapturedStatement,
  type LatencySummary,
  type TargetResult,
} from './lib-db.js';
import { cpuMark, cpuPerRequest, runLoad, startServer, type HttpRun } from './lib-server.js';
import { serveCommand } from './lib.js';

const opts = benchOptions();
const SECONDS = numberOption(opts.args, 'seconds', opts.quick ? 3 : 10);
const WARM = numberOption(opts.args, 'warm', opts.quick ? 1 : 2);
const CONCURRENCIES = [8, 32];
const workerArg = opts.args.indexOf('--worker');
const WORKER = workerArg >= 0 ? opts.args[workerArg + 1]! : 'on';
const PROFILE = opts.args.includes('--profile');
const onlyArg = opts.args.indexOf('--only');
const ONLY = onlyArg >= 0 ? opts.args[onlyArg + 1] : undefined;
const LOW_MEMORY = opts.args.includes('--embedded-low-memory');
/** Added to every embedded label when the switch is on. */
const LOW_MEMORY_NOTE = LOW_MEMORY ? ' (EMBEDDED_LOW_MEMORY=on)' : '';
const SECRET_KEY = randomBytes(32).toString('base64');

const SCHEMA = `name: 'bench'
semver: '1'
tasktypes:
- name: review
  pending_states: ['open']
  resolved_states: ['done']
`;
/** A task as an application server posts it: a pending state and a little metadata. */
const BODY = { schema_name: 'bench', task: 'review', state: 'open', meta: { title: 'Approve invoice 4711', customer: 'ACME Ltd', amount: 1250, url: 'https://erp.example.org/invoices/4711' } };

/** Schema, API key, and the recorded statements of one POST (which also creates one task). */
async function prepare(database: Database) {
  await migrate(database);
  await installSchema(database, SCHEMA);
  const { key, id: apiKeyId } = await createApiKey(database, { name: 'bench' });
  // As the route does it without an Idempotency-Key: the key checked by the statement that writes.
  const post = async () => (await createTaskCheckingKey(database, key, BODY)).created;
  const [type] = await database.query<{ id: number; schema_id: number }>(
    "SELECT t.id, v.schema_id FROM task_types t JOIN schema_versions v ON v.id = t.version_id WHERE t.name = 'review'",
  );
  return { key, post, transaction: issueTransaction({ keyHash: hashApiKey(key), apiKeyId, ttypeId: type!.id, schemaId: type!.schema_id }) };
}

/** Stands for the new task's id in the anchor's statements: pgbench takes it with \gset, PGlite from the insert's answer. */
const NEW_TASK_ID = '00000000-0000-4000-8000-000000000000';

/** The issue's transaction for one POST, one statement per step (see the header). */
function issueTransaction(ids: { keyHash: string; apiKeyId: string; ttypeId: number; schemaId: number }): CapturedStatement[] {
  const meta = JSON.stringify(BODY.meta);
  const event = JSON.stringify({ kind: 'created', id: NEW_TASK_ID, schema: BODY.schema_name, state: BODY.state, resolved: false });
  return [
    { text: 'SELECT id, name, schema_name, revoked_at FROM api_keys WHERE key_hash = $1', values: [ids.keyHash] },
    {
      text: 'SELECT t.id, t.name, t.pending_states, t.resolved_states, l.schema_id FROM (SELECT v.id, v.schema_id FROM schema_versions v JOIN task_schemas s ON s.id = v.schema_id WHERE s.name = $1 ORDER BY v.version DESC LIMIT 1) l JOIN task_types t ON t.version_id = l.id AND t.name = $2',
      values: [BODY.schema_name, BODY.task],
    },
    { text: 'begin', values: [] },
    {
      text: 'INSERT INTO tasks (ttype_id, schema_id, state, resolved, meta) VALUES ($1, $2, $3, false, $4) RETURNING id, created, updated, ttype_id, schema_id, state, resolved, user_id, meta, cancelled_at, cancel_reason',
      values: [ids.ttypeId, ids.schemaId, BODY.state, meta],
    },
    { text: "INSERT INTO task_history (task_id, state, resolved, api_key_id, update_meta, event) VALUES ($1, $2, false, $3, $4, 'created')", values: [NEW_TASK_ID, BODY.state, ids.apiKeyId, meta] },
    { text: 'SELECT pg_notify($1, $2)', values: [TASK_EVENTS_CHANNEL, event] },
    { text: 'INSERT INTO notification_events (task_id) VALUES ($1)', values: [NEW_TASK_ID] },
    { text: 'commit', values: [] },
  ];
}

const log = (s = '') => process.stderr.write(`${s}\n`);

/**
 * What `--profile` (node --cpu-prof on the server) showed in the development runs of 2026-11-30
 * on the 2-core machine; run with --profile for a fresh one.
 */
const PROFILE_NOTES = [
  'PostgreSQL: the server process uses about 0.35-0.7 ms of CPU per POST (it was 1.6-2.3 ms with eight statements built by drizzle per POST);',
  'about a third of its busy time is writev (one socket write per statement and per HTTP answer: the system call that wakes the other side is expensive on this VM),',
  'the rest HTTP parsing, the zod body check and answer, and pg-protocol. PostgreSQL runs the server\'s one statement (key, type, task, history,',
  'notification and outbox row) for less CPU than the issue\'s eight, which is how the server can come near pgbench on the issue\'s transaction.',
  'Embedded: PGlite takes about two thirds of the server\'s busy time (WebAssembly, and its JavaScript side of the protocol: each query is six calls into',
  'the WebAssembly module); HTTP, Fastify and zod most of the rest. The server spends about 2-3.8 ms of CPU per POST against about 1.4 ms for its statements',
  'alone in-process; the overhead per request is highest at 8 clients (the event loop turns over for fewer requests at a time).',
].join('\n');

interface Pair {
  clients: number;
  server: HttpRun;
  /** The issue's transaction (the target's anchor). */
  anchor: LatencySummary & { tps: number };
  /** The server's own statements, run by the anchor's tool (shown beside, no target). */
  own: LatencySummary & { tps: number };
  /** CPU ms per request during the server's run, and per transaction during the anchor's. */
  cpu: { server: ReturnType<typeof cpuPerRequest>; anchor: ReturnType<typeof cpuPerRequest> };
}

async function postgresPart(): Promise<{ pairs: Pair[]; statements: string[]; script: string; ownScript: string; profile?: string; database: string }> {
  const fresh = await createFreshDatabase(opts.pgAdminUrl);
  try {
    const config = loadConfig({ DATABASE_URL: fresh.url, SECRET_KEY, LOG_LEVEL: 'silent' }, { stdoutIsTty: false });
    const database = await openDatabase(config, 'cli');
    let own: CapturedStatement[];
    let prepared: Awaited<ReturnType<typeof prepare>>;
    try {
      prepared = await prepare(database);
      await prepared.post(); // the first use of a key also stamps last_used_at; record a later one
      own = (await captureStatements(prepared.post)).statements;
    } finally {
      await database.close();
    }
    const insertTask = prepared.transaction.findIndex((s) => /^insert into tasks/i.test(s.text));
    const { script, defines } = pgbenchScript(prepared.transaction, {
      fromReturning: { id: NEW_TASK_ID },
      gsetAfter: insertTask,
      comment: "The issue's transaction for one POST /api/v1/tasks/, one statement per step (bench/post-tasks.ts).",
    });
    const ownScript = pgbenchScript(own, { comment: 'The statements the server ran for one POST /api/v1/tasks/ (recorded by bench/post-tasks.ts).' });

    const server = await startServer({ DATABASE_URL: fresh.url, SECRET_KEY, WORKER }, { profile: PROFILE });
    const pairs: Pair[] = [];
    let profile: string | undefined;
    try {
      for (const clients of CONCURRENCIES) {
        await drained({ connectionString: fresh.url }, { checkpoint: true });
        const { http, m0, m1 } = await loadServer(server, prepared.key, clients);
        await drained({ connectionString: fresh.url }, { checkpoint: true });
        const a0 = cpuMark(server.pid);
        const anchor = await runPgbench({ url: fresh.url, script, defines, clients, seconds: SECONDS, warmSeconds: WARM, mode: 'prepared' });
        const m2 = cpuMark(server.pid);
        await drained({ connectionString: fresh.url }, { checkpoint: true });
        const ownRun = await runPgbench({ url: fresh.url, script: ownScript.script, defines: ownScript.defines, clients, seconds: SECONDS, warmSeconds: WARM, mode: 'prepared' });
        for (const [name, run] of [['the issue', anchor], ["the server's statements", ownRun]] as const) if (run.failed > 0) log(`pgbench (${name}): ${run.failed} transactions failed`);
        pairs.push({ clients, server: http, anchor, own: ownRun, cpu: { server: cpuPerRequest(m0, m1, http.count), anchor: cpuPerRequest(a0, m2, anchor.total) } });
        log(`PostgreSQL, ${clients} clients: server ${round(http.rps, 0)} req/s p99 ${round(http.p99)} ms; pgbench ${round(anchor.tps, 0)} tps p99 ${round(anchor.p99)} ms (the server's statements: ${round(ownRun.tps, 0)} tps p99 ${round(ownRun.p99)} ms)`);
      }
    } finally {
      profile = await server.stop();
    }
    const oneLine = (list: CapturedStatement[]) => list.map((s) => s.text.replace(/\s+/g, ' ').slice(0, 160));
    return { pairs, statements: oneLine(own), script, ownScript: ownScript.script, profile, database: fresh.url.replace(/\/\/[^@]*@/, '//') };
  } finally {
    await fresh.drop();
  }
}

/**
 * Statements through an in-process PGlite, as drizzle's PGlite driver runs them: outside a
 * transaction with `query`, between `begin` and `commit` with `transaction` (which has the instance
 * to itself). The new task's id replaces NEW_TASK_ID in later parameters.
 */
function pgliteRunner(client: PGlite, statements: CapturedStatement[]) {
  const begin = statements.findIndex((s) => /^begin/i.test(s.text));
  const commit = statements.findIndex((s) => /^commit/i.test(s.text));
  if (begin >= 0 && commit < begin) throw new Error('the statements open a transaction they do not commit');
  const before = begin < 0 ? statements : statements.slice(0, begin);
  const inside = begin < 0 ? [] : statements.slice(begin + 1, commit);
  const after = begin < 0 ? [] : statements.slice(commit + 1);
  const bind = (values: unknown[], taskId: string) => values.map((v) => (typeof v === 'string' && v.includes(NEW_TASK_ID) ? v.replaceAll(NEW_TASK_ID, taskId) : v));
  return async () => {
    for (const s of before) await client.query(s.text, s.values);
    if (begin < 0) return;
    let taskId = NEW_TASK_ID;
    await client.transaction(async (tx) => {
      for (const s of inside) {
        const res = await tx.query<{ id: string }>(s.text, bind(s.values, taskId));
        if (/^insert into tasks/i.test(s.text)) taskId = res.rows[0]!.id;
      }
    });
    for (const s of after) await client.query(s.text, bind(s.values, taskId));
  };
}

/**
 * Before each run: waits until the server's notification worker has fanned out every new-task
 * event, so that the backlog of one run is not worked off during the next (which would slow that
 * one down); on PostgreSQL then a CHECKPOINT, so that no run pays for the dirty pages of the one
 * before it (a checkpoint falling inside one run and not another skewed their ratio).
 */
async function drained(connection: pg.ClientConfig, opts: { checkpoint?: boolean } = {}) {
  const client = new pg.Client(connection);
  await client.connect();
  try {
    if (WORKER !== 'off') await waitForFanOut(client); // with the worker off nobody fans them out: they stay
    if (opts.checkpoint) await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
}

async function waitForFanOut(client: pg.Client) {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM notification_events');
    if (rows[0]!.n === 0) return;
    if (performance.now() > deadline) throw new Error(`the notification worker left ${rows[0]!.n} events after 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** POSTs to the server from `clients` connections: a warm-up, then the measured run, with the server's CPU before and after. */
async function loadServer(server: { origin: string; pid: number }, key: string, clients: number) {
  const load = { url: `${server.origin}/api/v1/tasks/`, connections: clients, method: 'POST' as const, headers: { 'api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(BODY) };
  await runLoad({ ...load, seconds: WARM });
  const m0 = cpuMark(server.pid);
  const http = await runLoad({ ...load, seconds: SECONDS });
  const m1 = cpuMark(server.pid);
  return { http, m0, m1 };
}

/** `callers` concurrent loops of `run` for `seconds`; latency of each whole POST's statements. */
async function runInProcess(run: () => Promise<void>, callers: number, seconds: number): Promise<LatencySummary & { tps: number }> {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await run();
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { ...summarise(latencies), tps: latencies.length / seconds };
}

async function embeddedPart(): Promise<{ pairs: Pair[]; profile?: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-bench-post-'));
  const anchorDir = mkdtempSync(path.join(os.tmpdir(), 'ti-bench-post-anchor-'));
  try {
    // Set up in this process, then hand the folder to the server (which takes the folder's lock).
    const recording: CapturedStatement[] = [];
    let recordingOn = false;
    const setupClient = await PGlite.create(path.join(dir, 'pgdata'));
    const recorded = recordingProxy(setupClient, recording, () => recordingOn);
    const database = wrapPglite(recorded);
    let prepared: Awaited<ReturnType<typeof prepare>>;
    try {
      prepared = await prepare(database);
      await prepared.post();
      recordingOn = true;
      await prepared.post();
      recordingOn = false;
    } finally {
      await database.close();
    }
    cpSync(path.join(dir, 'pgdata'), path.join(anchorDir, 'pgdata'), { recursive: true });

    const anchorClient = await PGlite.create(path.join(anchorDir, 'pgdata'));
    const run = pgliteRunner(anchorClient, prepared.transaction);
    const runOwn = pgliteRunner(anchorClient, recording);
    const server = await startServer({ TI_DATA_DIR: dir, SECRET_KEY, WORKER, ...(LOW_MEMORY ? { EMBEDDED_LOW_MEMORY: 'on' } : {}) }, { profile: PROFILE });
    const pairs: Pair[] = [];
    let profile: string | undefined;
    try {
      for (const clients of CONCURRENCIES) {
        const socket = { host: dir, port: 5432, user: 'postgres', database: 'postgres' };
        await drained(socket);
        const { http, m0, m1 } = await loadServer(server, prepared.key, clients);
        await drained(socket);
        await runInProcess(run, clients, WARM);
        const m2 = cpuMark(server.pid);
        const anchor = await runInProcess(run, clients, SECONDS);
        const m3 = cpuMark(server.pid);
        await runInProcess(runOwn, clients, WARM);
        const own = await runInProcess(runOwn, clients, SECONDS);
        pairs.push({ clients, server: http, anchor, own, cpu: { server: cpuPerRequest(m0, m1, http.count), anchor: cpuPerRequest(m2, m3, anchor.count) } });
        log(`embedded${LOW_MEMORY_NOTE}, ${clients} clients: server ${round(http.rps, 0)} req/s p99 ${round(http.p99)} ms; PGlite in-process ${round(anchor.tps, 0)} tps p99 ${round(anchor.p99)} ms (the server's statements: ${round(own.tps, 0)} tps)`);
      }
    } finally {
      profile = await server.stop();
      await anchorClient.close();
    }
    return { pairs, profile };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(anchorDir, { recursive: true, force: true });
  }
}

/**
 * The PGlite instance with `query` (and the queries of `transaction`) recorded while `on()`, in
 * the same shape as node-postgres' recording: `begin` and `commit` around a transaction.
 */
function recordingProxy(client: PGlite, into: CapturedStatement[], on: () => boolean): PGlite {
  const recordQuery = (target: { query: (...a: never[]) => unknown }) =>
    ((text: string, params?: unknown[], ...rest: unknown[]) => {
      if (on()) into.push({ text, values: params ?? [] });
      return (target.query as (...a: unknown[]) => unknown).call(target, text, params, ...rest);
    }) as never;
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'query') return recordQuery(target as never);
      if (prop === 'transaction') {
        return async (fn: (tx: unknown) => Promise<unknown>) => {
          if (on()) into.push({ text: 'begin', values: [] });
          const result = await target.transaction((tx) => fn(new Proxy(tx, { get: (t, p) => (p === 'query' ? recordQuery(t as never) : Reflect.get(t, p, t)) })));
          if (on()) into.push({ text: 'commit', values: [] });
          return result;
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function targetsOf(label: string, pairs: Pair[], anchorLabel: string, minRatio: number, maxP99Ratio?: number): TargetResult[] {
  const out: TargetResult[] = [];
  for (const p of pairs) {
    const ratio = p.server.rps / p.anchor.tps;
    out.push({
      name: `POST /api/v1/tasks/ ${label}, ${p.clients} clients: throughput`,
      measured: round(p.server.rps, 1),
      unit: 'req/s',
      anchor: round(p.anchor.tps, 1),
      anchorLabel,
      ratio: round(ratio, 3),
      target: `≥ ${minRatio}× ${anchorLabel}`,
      met: ratio >= minRatio && p.server.bad === 0,
    });
    if (maxP99Ratio !== undefined) {
      const r = p.server.p99 / p.anchor.p99;
      out.push({
        name: `POST /api/v1/tasks/ ${label}, ${p.clients} clients: p99 latency`,
        measured: round(p.server.p99, 2),
        unit: 'ms',
        anchor: round(p.anchor.p99, 2),
        anchorLabel: `${anchorLabel} p99`,
        ratio: round(r, 3),
        target: `≤ ${maxP99Ratio}× ${anchorLabel} p99`,
        met: r <= maxP99Ratio && p.server.bad === 0,
      });
    }
  }
  return out;
}

function printTable(title: string, pairs: Pair[], anchorLabel: string) {
  log(`\n${title}`);
  printCpu(pairs, anchorLabel);
  log(
    table(
      ['clients', 'server req/s', 'p50 ms', 'p99 ms', 'errors', `${anchorLabel} tps`, 'p50 ms', 'p99 ms', 'throughput ratio', 'p99 ratio', "server's statements tps", 'ratio'],
      pairs.map((p) => [
        String(p.clients),
        p.server.rps,
        round(p.server.p50, 2).toFixed(2),
        round(p.server.p99, 2).toFixed(2),
        String(p.server.bad),
        p.anchor.tps,
        round(p.anchor.p50, 2).toFixed(2),
        round(p.anchor.p99, 2).toFixed(2),
        `${(p.server.rps / p.anchor.tps).toFixed(2)}×`,
        `${(p.server.p99 / p.anchor.p99).toFixed(2)}×`,
        p.own.tps,
        `${(p.server.rps / p.own.tps).toFixed(2)}×`,
      ]),
    ),
  );
}

/** Where the machine's CPU went, per request: the server process, this process (load generator, or the in-process anchor), everything else (PostgreSQL, pgbench, other load). */
function printCpu(pairs: Pair[], anchorLabel: string) {
  log(
    table(
      ['clients', 'machine busy %', 'server ms/req', 'load gen ms/req', 'rest ms/req', `${anchorLabel}: busy %`, 'this process ms/tx', 'rest ms/tx'],
      pairs.map((p) => [String(p.clients), p.cpu.server.machineBusyPct, p.cpu.server.serverMs.toFixed(2), p.cpu.server.loadGeneratorMs.toFixed(2), p.cpu.server.restMs.toFixed(2), p.cpu.anchor.machineBusyPct, p.cpu.anchor.loadGeneratorMs.toFixed(2), p.cpu.anchor.restMs.toFixed(2)]),
    ),
  );
}

async function main() {
  log(`POST /api/v1/tasks/: ${SECONDS} s per run after ${WARM} s of warm-up, WORKER=${WORKER}${LOW_MEMORY ? ', embedded with EMBEDDED_LOW_MEMORY=on' : ''}, server: ${serveCommand().via}${PROFILE ? ', with --cpu-prof' : ''}`);
  const targets: TargetResult[] = [];
  const details: Record<string, unknown> = { seconds: SECONDS, warmSeconds: WARM, worker: WORKER, server: serveCommand().via, dbPoolSize: 10, cpus: os.cpus().length, profiled: PROFILE, profile: PROFILE_NOTES };
  let failed = false;
  if (ONLY !== 'embedded') {
    try {
      const pgRun = await postgresPart();
      printTable("PostgreSQL: server vs pgbench running the issue's transaction (same number of clients)", pgRun.pairs, 'pgbench');
      targets.push(...targetsOf('on PostgreSQL', pgRun.pairs, 'pgbench', 0.85, 2));
      details.postgres = { database: pgRun.database, runs: pgRun.pairs, serverStatements: pgRun.statements, pgbenchScript: pgRun.script, serverStatementsScript: pgRun.ownScript };
      if (pgRun.profile) details.profilePostgres = pgRun.profile;
    } catch (err) {
      failed = true;
      log(`PostgreSQL part failed: ${(err as Error).stack}`);
      details.postgresError = String((err as Error).message);
    }
  }
  if (ONLY !== 'postgres') {
    try {
      const emb = await embeddedPart();
      printTable(`Embedded${LOW_MEMORY_NOTE}: server vs the issue's transaction on PGlite in-process`, emb.pairs, 'PGlite');
      targets.push(...targetsOf(`on the embedded database${LOW_MEMORY_NOTE}`, emb.pairs, 'PGlite in-process', 0.8));
      details.embedded = { runs: emb.pairs, embeddedLowMemory: LOW_MEMORY };
      if (emb.profile) details.profileEmbedded = emb.profile;
    } catch (err) {
      failed = true;
      log(`embedded part failed: ${(err as Error).stack}`);
      details.embeddedError = String((err as Error).message);
    }
  }
  for (const k of ['profilePostgres', 'profileEmbedded'] as const) if (details[k]) log(`\n${k}:\n${details[k] as string}`);
  log('');
  for (const t of targets) log(`${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.measured} ${t.unit} vs ${t.anchor} (${t.ratio}×; target ${t.target})`);
  printResult('post-tasks', targets, details);
  if (failed) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
