/*
 * GET /api/v1/tasks/?resolved=un with 1,000,000 tasks stored (issue 9): the first page and a page
 * 500,000 rows deep, p95 at most 10 ms each, beside pgbench running the statements the server
 * runs for the same request.
 *
 *   npx tsx bench/list-tasks.ts [--pg URL] [--quick] [--tasks 1000000] [--depth 500000] [--requests 1000] [--clients 4] [--profile]
 *
 * The data: 1,000,000 tasks of one schema with two task types, posted over about a year, each
 * with a little metadata; 30 % are resolved, three of every ten in posting order, so that
 * 700,000 are unresolved and the unresolved ones are spread over the whole table (the partial
 * index on unresolved tasks has to skip the resolved ones, as in an inbox where tasks are handled
 * out of order). History entries are not written: the list never reads them. Then VACUUM
 * ANALYZE, as autovacuum would have done.
 *
 * Paging is a keyset cursor: `next_cursor` is the `seq` of a page's last task and the next page
 * holds the tasks after it. A client reaches row 500,000 by following 10,000 cursors; the
 * benchmark computes that cursor directly (the `seq` of the 500,000th unresolved task) and asks
 * for the page after it, as the client's 10,001st request would.
 *
 * The statements are recorded from the real code (authenticateApiKey, then listTasks, as the
 * route calls them) with node-postgres' query recorded, in the steady state: the API key lookup
 * and the page query with LIMIT 51, both named prepared statements, so pgbench runs them with
 * `-M prepared`. (A process reads a task type once and keeps it, type rows never change; the
 * key's last-use stamp runs at most once a minute. Neither is in the steady state recorded.)
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { authenticateApiKey, createApiKey } from '../src/core/keys/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { listTasks } from '../src/core/tasks/index.js';
import { migrate, openDatabase } from '../src/db/index.js';
import {
  benchOptions,
  captureStatements,
  createFreshDatabase,
  numberOption,
  pgbenchScript,
  printResult,
  round,
  runPgbench,
  table,
  wireValue,
  type TargetResult,
} from './lib-db.js';
import { cpuMark, cpuPerRequest, runLoad, startServer } from './lib-server.js';
import { serveCommand } from './lib.js';

const opts = benchOptions();
const TASKS = numberOption(opts.args, 'tasks', opts.quick ? 100_000 : 1_000_000);
const DEPTH = numberOption(opts.args, 'depth', Math.round(TASKS / 2));
const REQUESTS = numberOption(opts.args, 'requests', opts.quick ? 100 : 1000);
const CLIENTS = numberOption(opts.args, 'clients', 4);
/** Requests before the measured ones, so that the server's code is compiled and warm, as in a server in use. */
const WARM_REQUESTS = Math.max(CLIENTS * 5, opts.quick ? 50 : 500);
const TARGET_P95_MS = 10;
const SECRET_KEY = randomBytes(32).toString('base64');
const PROFILE = opts.args.includes('--profile');

const SCHEMA = `name: 'bench'
semver: '1'
tasktypes:
- name: review
  pending_states: ['open', 'waiting']
  resolved_states: ['approved', 'rejected']
- name: approve
  pending_states: ['open']
  resolved_states: ['done']
`;

const log = (s = '') => process.stderr.write(`${s}\n`);

/** What `--profile` showed in the development runs of 2026-11-30 (2 cores, shared); run with --profile for a fresh one. */
const PROFILE_NOTES = [
  'PostgreSQL answers each page query in 0.03-0.05 ms (EXPLAIN ANALYZE: an index scan of tasks_unresolved_seq_idx, 5-6 buffers, first page and deep page alike);',
  'the server process needs about 0.9-1.1 ms of CPU per request (it was 2.5-4.6 ms with three drizzle-built statements), so with 4 clients a request waits',
  'behind up to three others in its one thread. Of its busy time: ~29 % writev (the key lookup, the page, the HTTP answer), ~13 % the zod response check,',
  '~7 % turning 51 rows into API tasks (dates parsed and formatted), pg parsing rows ~6 %.',
].join('\n');

async function fill(client: pg.Client, tasks: number) {
  const types = (await client.query<{ id: number; name: string; schema_id: number }>(`SELECT t.id, t.name, v.schema_id FROM task_types t JOIN schema_versions v ON v.id = t.version_id ORDER BY t.id`)).rows;
  const review = types.find((t) => t.name === 'review')!;
  const approve = types.find((t) => t.name === 'approve')!;
  // One task every 30 s over the last year or so; ids, seq and defaults as a POST would get them.
  await client.query(
    `INSERT INTO tasks (created, updated, ttype_id, schema_id, state, resolved, meta)
     SELECT c, CASE WHEN r THEN c + interval '2 hours' ELSE c END,
            CASE WHEN g % 4 = 0 THEN $2::int ELSE $1::int END, $3::int,
            CASE WHEN r THEN (CASE WHEN g % 4 = 0 THEN 'done' WHEN g % 3 = 0 THEN 'rejected' ELSE 'approved' END)
                 ELSE (CASE WHEN g % 7 = 0 AND g % 4 <> 0 THEN 'waiting' ELSE 'open' END) END,
            r,
            jsonb_build_object('title', 'Approve invoice ' || g, 'customer', 'Customer ' || (g % 997), 'amount', (g * 37) % 10000,
                               'url', 'https://erp.example.org/invoices/' || g)
     FROM (SELECT g, g % 10 < 3 AS r, now() - ($4::int - g) * interval '30 seconds' AS c FROM generate_series(1, $4::int) AS g) AS s`,
    [review.id, approve.id, review.schema_id, tasks],
  );
  await client.query('VACUUM (ANALYZE) tasks');
}

async function main() {
  log(`GET /api/v1/tasks/?resolved=un with ${TASKS.toLocaleString('en')} tasks: ${REQUESTS} requests per page by ${CLIENTS} clients (after ${WARM_REQUESTS} to warm up), server: ${serveCommand().via}`);
  const targets: TargetResult[] = [];
  const details: Record<string, unknown> = { profile: PROFILE_NOTES, tasks: TASKS, depth: DEPTH, requests: REQUESTS, clients: CLIENTS, server: serveCommand().via, cpus: os.cpus().length };
  const fresh = await createFreshDatabase(opts.pgAdminUrl);
  let exit = 0;
  try {
    const config = loadConfig({ DATABASE_URL: fresh.url, SECRET_KEY, LOG_LEVEL: 'silent' }, { stdoutIsTty: false });
    const database = await openDatabase(config, 'cli');
    const admin = new pg.Client({ connectionString: fresh.url });
    await admin.connect();
    let key: string;
    const pages: { name: string; cursor?: string; script: string; defines: string[]; statements: string[]; plan: string }[] = [];
    try {
      await migrate(database);
      await installSchema(database, SCHEMA);
      key = (await createApiKey(database, { name: 'bench' })).key;
      const t0 = performance.now();
      await fill(admin, TASKS);
      details.fillSeconds = round((performance.now() - t0) / 1000, 1);
      log(`inserted ${TASKS.toLocaleString('en')} tasks and analysed them in ${details.fillSeconds} s`);
      const deep = await admin.query<{ seq: string }>('SELECT seq::text FROM tasks WHERE NOT resolved ORDER BY seq OFFSET $1 LIMIT 1', [DEPTH - 1]);
      if (!deep.rows[0]) throw new Error(`fewer than ${DEPTH} unresolved tasks`);
      details.unresolved = Number((await admin.query<{ n: string }>('SELECT count(*) AS n FROM tasks WHERE NOT resolved')).rows[0]!.n);
      await authenticateApiKey(database, key); // the first use stamps last_used_at; record a later one
      for (const page of [{ name: 'first page' }, { name: `page ${DEPTH.toLocaleString('en')} rows deep`, cursor: deep.rows[0].seq }]) {
        const query = { resolved: 'un' as const, limit: 50, order: 'oldest' as const, ...(page.cursor ? { cursor: page.cursor } : {}) };
        const list = async () => listTasks(database, await authenticateApiKey(database, key), query);
        await list(); // the first page also reads its task types, which the process then keeps; record a later request
        const { result, statements } = await captureStatements(list);
        if (result.tasks.length !== 50) throw new Error(`the ${page.name} has ${result.tasks.length} tasks, not 50`);
        const { script, defines } = pgbenchScript(statements, { comment: `The statements the server ran for GET /api/v1/tasks/?resolved=un (${page.name}), recorded by bench/list-tasks.ts.` });
        const listing = statements.find((s) => /from "?tasks"?\s/i.test(s.text) && /limit/i.test(s.text))!;
        const plan = (await admin.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) ${listing.text}`, listing.values.map(wireValue))).rows.map((r) => r['QUERY PLAN']).join('\n');
        pages.push({ ...page, script, defines, statements: statements.map((s) => s.text.replace(/\s+/g, ' ').slice(0, 200)), plan });
      }
    } finally {
      await admin.end();
      await database.close();
    }

    const server = await startServer({ DATABASE_URL: fresh.url, SECRET_KEY, WORKER: 'on' }, { profile: PROFILE });
    const rows: (string | number)[][] = [];
    const runs: Record<string, unknown>[] = [];
    try {
      for (const page of pages) {
        const url = `${server.origin}/api/v1/tasks/?resolved=un${page.cursor ? `&cursor=${page.cursor}` : ''}`;
        const load = { url, connections: CLIENTS, headers: { 'api-key': key } };
        await runLoad({ ...load, amount: WARM_REQUESTS });
        const m0 = cpuMark(server.pid);
        const http = await runLoad({ ...load, amount: REQUESTS });
        const cpu = cpuPerRequest(m0, cpuMark(server.pid), http.count);
        const perClient = Math.ceil(REQUESTS / CLIENTS);
        await runPgbench({ url: fresh.url, script: page.script, defines: page.defines, clients: CLIENTS, seconds: 0, warmSeconds: 0, transactionsPerClient: Math.ceil(WARM_REQUESTS / CLIENTS), mode: 'prepared' });
        const anchor = await runPgbench({ url: fresh.url, script: page.script, defines: page.defines, clients: CLIENTS, seconds: 0, warmSeconds: 0, transactionsPerClient: perClient, mode: 'prepared' });
        rows.push([page.name, http.count, http.p50.toFixed(2), http.p95.toFixed(2), http.p99.toFixed(2), http.rps, String(http.bad), anchor.p50.toFixed(2), anchor.p95.toFixed(2), anchor.tps, `${(http.p95 / anchor.p95).toFixed(2)}×`, cpu.serverMs.toFixed(2), cpu.machineBusyPct]);
        runs.push({ page: page.name, cursor: page.cursor ?? null, server: http, cpuPerRequest: cpu, pgbench: anchor, statements: page.statements, plan: page.plan, pgbenchScript: page.script });
        targets.push({
          name: `GET /api/v1/tasks/?resolved=un, ${page.name}, ${TASKS.toLocaleString('en')} tasks: p95 latency`,
          measured: round(http.p95, 2),
          unit: 'ms',
          anchor: round(anchor.p95, 2),
          anchorLabel: 'pgbench p95 (same statements)',
          ratio: round(http.p95 / anchor.p95, 2),
          target: `≤ ${TARGET_P95_MS} ms p95`,
          met: http.p95 <= TARGET_P95_MS && http.bad === 0,
        });
      }
    } finally {
      const profile = await server.stop();
      if (profile) {
        details.profile = profile;
        details.profileNotes = PROFILE_NOTES;
        log(`\nprofile of the server:\n${profile}`);
      }
    }
    log(`\nGET /api/v1/tasks/?resolved=un, ${TASKS.toLocaleString('en')} tasks (${details.unresolved} unresolved), ${CLIENTS} clients`);
    log(table(['page', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'req/s', 'errors', 'pgbench p50', 'pgbench p95', 'pgbench tps', 'p95 ratio', 'server CPU ms/req', 'machine busy %'], rows));
    details.runs = runs;
    log('');
    for (const t of targets) log(`${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.measured} ms (pgbench ${t.anchor} ms; target ${t.target})`);
  } catch (err) {
    exit = 1;
    log(`failed: ${(err as Error).stack}`);
    details.error = String((err as Error).message);
  } finally {
    await fresh.drop();
  }
  printResult('list-tasks', targets, details);
  process.exitCode = exit;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
