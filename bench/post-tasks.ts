/*
 * POST /api/v1/tasks/ against the database alone (issue 9).
 *
 * PostgreSQL: `serve` runs as its own process on a fresh database; autocannon posts tasks with 8
 * and then 32 connections; beside each run, pgbench runs the statements the server runs for one
 * POST (captured from the real code, see below) with as many clients. Target: at least 0.85× the
 * transactions per second of pgbench, p99 at most 2× pgbench's.
 *
 * Embedded: `serve` on a fresh data folder, against a copy of that folder opened in this process
 * with PGlite, where as many concurrent callers run the same statements (PGlite serialises them).
 * Target: at least 0.8× its throughput.
 *
 *   npx tsx bench/post-tasks.ts [--pg URL] [--quick] [--seconds 10] [--warm 2] [--worker on|off] [--profile]
 *
 * The statements of one POST are recorded by running the route's own two calls
 * (authenticateApiKey, then createTask) once in this process with node-postgres' query
 * recorded. They are, in order:
 *   1. SELECT … FROM api_keys WHERE key_hash = $1                    (the api-key auth hook)
 *   2. SELECT … FROM (latest schema version) JOIN task_types …       (the type lookup)
 *   3. begin
 *   4. INSERT INTO tasks … RETURNING …
 *   5. INSERT INTO task_history … RETURNING …
 *   6. SELECT pg_notify($1, $2)                                      (live updates, sent at commit)
 *   7. INSERT INTO notification_events …                             (the notification outbox)
 *   8. commit
 * (The key's last-use stamp, an UPDATE of api_keys, runs at most once a minute per key and
 * process; the recorded POST is the second one, as in the steady state, so it is not among them.)
 * Statements 1–2 run outside the transaction, each on whichever pooled connection is free, as the
 * server runs them. pgbench sends them with `-M extended` (unnamed statements with parameters,
 * as node-postgres does); the new task's id returned by 4 is taken with \gset for 5 and 7. The
 * pg_notify payload (JSON naming the task) is the recorded one, of the same length.
 *
 * The server keeps running (idle) while pgbench runs: its LISTEN connection hears pgbench's
 * notifications too, and with WORKER on (the default, as `serve` runs) its notification worker
 * fans out pgbench's notification events as it does the server's own, so both sides carry the
 * same background work. `--worker off` measures the request path alone.
 */
import { PGlite } from '@electric-sql/pglite';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { authenticateApiKey, createApiKey } from '../src/core/keys/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { createTask } from '../src/core/tasks/index.js';
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
import { cpuMark, cpuPerRequest, runLoad, serverEntry, startServer, type HttpRun } from './lib-server.js';

const opts = benchOptions();
const SECONDS = numberOption(opts.args, 'seconds', opts.quick ? 3 : 10);
const WARM = numberOption(opts.args, 'warm', opts.quick ? 1 : 2);
const CONCURRENCIES = [8, 32];
const workerArg = opts.args.indexOf('--worker');
const WORKER = workerArg >= 0 ? opts.args[workerArg + 1]! : 'on';
const PROFILE = opts.args.includes('--profile');
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
  const { key } = await createApiKey(database, { name: 'bench' });
  const post = async () => {
    const principal = await authenticateApiKey(database, key);
    return createTask(database, principal, BODY);
  };
  return { key, post };
}

const log = (s = '') => process.stderr.write(`${s}\n`);

/**
 * What `--profile` (node --cpu-prof on the server) showed in the development runs of 2026-11-30
 * on the 2-core machine, shared with other benchmarks; run with --profile for a fresh one.
 */
const PROFILE_NOTES = [
  'PostgreSQL: the server process used about 1.6-2.3 ms of CPU per POST; pgbench plus PostgreSQL about 2.1-3 ms per transaction, with 2 cores for all of it.',
  'Of the server busy time: ~37 % in writev to the PostgreSQL sockets (8 statements per POST, each a round trip: the system call that wakes the backend is expensive on this VM),',
  '~15 % pg-protocol parsing answers, ~10 % drizzle building SQL text per query (entity.is, buildQueryFromSourceParams), the rest Fastify/HTTP and zod.',
  'Embedded: ~64 % of the server busy time is PGlite itself (wasm and its protocol JS), ~11 % drizzle, ~5 % Fastify/HTTP; the server used 5-7 ms CPU per POST',
  'against 2.4 ms per POST for the same statements on PGlite in-process.',
  'The server, its load generator and PostgreSQL share 2 cores, so the server CPU per request lowers the ceiling: on this machine the PostgreSQL ratio cannot',
  'approach 0.85x unless the server needs well under 0.5 ms CPU per POST.',
].join('\n');

interface Pair {
  clients: number;
  server: HttpRun;
  anchor: LatencySummary & { tps: number };
  /** CPU ms per request during the server's run, and per transaction during the anchor's. */
  cpu: { server: ReturnType<typeof cpuPerRequest>; anchor: ReturnType<typeof cpuPerRequest> };
}

async function postgresPart(): Promise<{ pairs: Pair[]; statements: string[]; script: string; profile?: string; database: string }> {
  const fresh = await createFreshDatabase(opts.pgAdminUrl);
  try {
    const config = loadConfig({ DATABASE_URL: fresh.url, SECRET_KEY, LOG_LEVEL: 'silent' }, { stdoutIsTty: false });
    const database = await openDatabase(config, 'cli');
    let captured: { statements: CapturedStatement[]; taskId: string };
    let key: string;
    try {
      const prepared = await prepare(database);
      key = prepared.key;
      await prepared.post(); // the first use of a key also stamps last_used_at; record a later one
      const { result, statements } = await captureStatements(prepared.post);
      captured = { statements, taskId: result.task.id };
    } finally {
      await database.close();
    }
    const insertTask = captured.statements.findIndex((s) => /^insert into "tasks"/i.test(s.text));
    if (insertTask < 0) throw new Error('no INSERT INTO tasks among the recorded statements');
    const { script, defines } = pgbenchScript(captured.statements, {
      fromReturning: { id: captured.taskId },
      gsetAfter: insertTask,
      comment: 'The statements the server ran for one POST /api/v1/tasks/ (recorded by bench/post-tasks.ts).',
    });

    const server = await startServer({ DATABASE_URL: fresh.url, SECRET_KEY, WORKER }, { profile: PROFILE });
    const pairs: Pair[] = [];
    let profile: string | undefined;
    try {
      for (const clients of CONCURRENCIES) {
        const { http, m0, m1 } = await loadServer(server, key, clients);
        const anchor = await runPgbench({ url: fresh.url, script, defines, clients, seconds: SECONDS, warmSeconds: WARM });
        const m2 = cpuMark(server.pid);
        if (anchor.failed > 0) log(`pgbench: ${anchor.failed} transactions failed`);
        pairs.push({ clients, server: http, anchor, cpu: { server: cpuPerRequest(m0, m1, http.count), anchor: cpuPerRequest(m1, m2, anchor.total) } });
        log(`PostgreSQL, ${clients} clients: server ${round(http.rps, 0)} req/s p99 ${round(http.p99)} ms; pgbench ${round(anchor.tps, 0)} tps p99 ${round(anchor.p99)} ms`);
      }
    } finally {
      profile = await server.stop();
    }
    return { pairs, statements: captured.statements.map((s) => s.text.replace(/\s+/g, ' ').slice(0, 160)), script, profile, database: fresh.url.replace(/\/\/[^@]*@/, '//') };
  } finally {
    await fresh.drop();
  }
}

/**
 * The recorded statements through an in-process PGlite, as drizzle's PGlite driver runs them:
 * outside a transaction with `query`, inside with `transaction` (which has the instance to itself).
 * The new task's id replaces the recorded one in later parameters.
 */
function pgliteRunner(client: PGlite, statements: CapturedStatement[], recordedTaskId: string) {
  const begin = statements.findIndex((s) => /^begin/i.test(s.text));
  const commit = statements.findIndex((s) => /^commit/i.test(s.text));
  if (begin < 0 || commit < begin) throw new Error('the recorded statements have no transaction');
  const before = statements.slice(0, begin);
  const inside = statements.slice(begin + 1, commit);
  const after = statements.slice(commit + 1);
  const bind = (values: unknown[], taskId: string) => values.map((v) => (typeof v === 'string' && v.includes(recordedTaskId) ? v.replaceAll(recordedTaskId, taskId) : v));
  return async () => {
    for (const s of before) await client.query(s.text, s.values);
    let taskId = recordedTaskId;
    await client.transaction(async (tx) => {
      for (const s of inside) {
        const res = await tx.query<{ id: string }>(s.text, bind(s.values, taskId));
        if (/^insert into "tasks"/i.test(s.text)) taskId = res.rows[0]!.id;
      }
    });
    for (const s of after) await client.query(s.text, bind(s.values, taskId));
  };
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
    let key: string;
    let taskId: string;
    try {
      const prepared = await prepare(database);
      key = prepared.key;
      await prepared.post();
      recordingOn = true;
      taskId = (await prepared.post()).task.id;
      recordingOn = false;
    } finally {
      await database.close();
    }
    cpSync(path.join(dir, 'pgdata'), path.join(anchorDir, 'pgdata'), { recursive: true });

    const server = await startServer({ TI_DATA_DIR: dir, SECRET_KEY, WORKER }, { profile: PROFILE });
    const anchorClient = await PGlite.create(path.join(anchorDir, 'pgdata'));
    const run = pgliteRunner(anchorClient, recording, taskId);
    const pairs: Pair[] = [];
    let profile: string | undefined;
    try {
      for (const clients of CONCURRENCIES) {
        const { http, m0, m1 } = await loadServer(server, key, clients);
        await runInProcess(run, clients, WARM);
        const m2 = cpuMark(server.pid);
        const anchor = await runInProcess(run, clients, SECONDS);
        const m3 = cpuMark(server.pid);
        pairs.push({ clients, server: http, anchor, cpu: { server: cpuPerRequest(m0, m1, http.count), anchor: cpuPerRequest(m2, m3, anchor.count) } });
        log(`embedded, ${clients} clients: server ${round(http.rps, 0)} req/s p99 ${round(http.p99)} ms; PGlite in-process ${round(anchor.tps, 0)} tps p99 ${round(anchor.p99)} ms`);
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
      ['clients', 'server req/s', 'p50 ms', 'p99 ms', 'errors', `${anchorLabel} tps`, 'p50 ms', 'p99 ms', 'throughput ratio', 'p99 ratio'],
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
  log(`POST /api/v1/tasks/: ${SECONDS} s per run after ${WARM} s of warm-up, WORKER=${WORKER}, server: ${serverEntry().label}${PROFILE ? ', with --cpu-prof' : ''}`);
  const targets: TargetResult[] = [];
  const details: Record<string, unknown> = { seconds: SECONDS, warmSeconds: WARM, worker: WORKER, server: serverEntry().label, dbPoolSize: 10, cpus: os.cpus().length, profiled: PROFILE, profile: PROFILE_NOTES };
  let failed = false;
  try {
    const pgRun = await postgresPart();
    printTable('PostgreSQL: server vs pgbench (same statements, same number of clients)', pgRun.pairs, 'pgbench');
    targets.push(...targetsOf('on PostgreSQL', pgRun.pairs, 'pgbench', 0.85, 2));
    details.postgres = { database: pgRun.database, runs: pgRun.pairs, statements: pgRun.statements, pgbenchScript: pgRun.script };
    if (pgRun.profile) details.profilePostgres = pgRun.profile;
  } catch (err) {
    failed = true;
    log(`PostgreSQL part failed: ${(err as Error).stack}`);
    details.postgresError = String((err as Error).message);
  }
  try {
    const emb = await embeddedPart();
    printTable('Embedded: server vs the same statements on PGlite in-process', emb.pairs, 'PGlite');
    targets.push(...targetsOf('on the embedded database', emb.pairs, 'PGlite in-process', 0.8));
    details.embedded = { runs: emb.pairs };
    if (emb.profile) details.profileEmbedded = emb.profile;
  } catch (err) {
    failed = true;
    log(`embedded part failed: ${(err as Error).stack}`);
    details.embeddedError = String((err as Error).message);
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
