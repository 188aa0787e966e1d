/*
 * Async webhooks (issue 9): how soon after a state change's answer its webhook arrives, and how
 * many deliveries per second the outbox worker sustains to a fast local receiver.
 *
 *   npx tsx bench/webhooks.ts [--quick] [--no-embedded] [--no-postgres] [--profile]
 *     --latency-n 200   PATCHes timed one by one (each to its own task), sent at --rate 25 per second
 *     --n 4000          deliveries queued at once for the throughput run on PostgreSQL
 *     --embedded-n 1500 the same on the embedded database
 *   DATABASE_URL       an admin connection to the PostgreSQL server where a fresh database is made
 *                      (and dropped); default postgres://postgres@127.0.0.1:5432/postgres
 *
 * The server runs as a separate process (`task-inbox serve`, see lib.serveCommand) with its
 * worker, on a schema with `hook_mode: async` and Standard Webhooks signatures whose hook is a
 * node:http server in this process that answers 200 at once.
 *
 * Latency: each PATCH /api/v1/tasks/{id}/state goes to a task of its own, at a steady rate; the
 * time is from the moment the PATCH's answer has arrived to the moment the receiver has that
 * task's webhook (matched by the task id in the body). The worker is woken when the change
 * commits, before the answer is sent, so a webhook may arrive first: such times are negative.
 *
 * Throughput: N deliveries are put in the outbox at once (one SQL statement cloning a real
 * delivery of the latency run onto N new tasks, through the server's own database), and the
 * receiver's arrival times give deliveries per second; "sustained" is over the middle 80 % of the
 * drain (from the 10 % to the 90 % arrival), without the start-up and the tail.
 *
 * Anchor: a bare Node process POSTing the same body to the same receiver with undici — one at a
 * time for the round trip, 32 at once for requests per second.
 */
import { rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { Agent, request } from 'undici';
import {
  adminPgUrl,
  anchorPostClient,
  createFreshDatabase,
  newSecretKey,
  parseArgs,
  percentiles,
  prepareDatabase,
  printResult,
  round,
  say,
  serveCommand,
  sleep,
  startServer,
  summariseCpuProfiles,
  table,
  target,
  tempDir,
  type ScenarioResult,
  type Target,
} from './lib.js';

const args = parseArgs();
const QUICK = args.quick;
const LATENCY_N = args.num('latency-n', QUICK ? 60 : 200);
const RATE = args.num('rate', 25);
const DRAIN_N = args.num('n', QUICK ? 1500 : 4000);
const EMBEDDED_DRAIN_N = args.num('embedded-n', QUICK ? 300 : 1500);
const EMBEDDED = !args.has('no-embedded');
const POSTGRES = !args.has('no-postgres');
const PROFILE = args.has('profile');
const WARMUP = 20;

const schemaYaml = (hookUrl: string) => `name: 'bench:webhooks'
semver: '1'
default_hook_url: ${hookUrl}
hook_mode: async
hook_auth:
  kind: standard
tasktypes:
- name: review
  pending_states: ['open']
  resolved_states: ['done']
`;

/** The receiver: answers 200 at once and notes when each task's webhook arrived. */
async function startReceiver() {
  const arrivals = new Map<string, number>();
  let drain: number[] = [];
  let lastBody = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      res.writeHead(200).end();
      if (req.url !== '/hook') return;
      const body = Buffer.concat(chunks).toString('utf8');
      lastBody = body;
      const id = (JSON.parse(body) as { task: { id: string } }).task.id;
      arrivals.set(id, at);
      drain.push(at);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    hookUrl: `${origin}/hook`,
    anchorUrl: `${origin}/anchor`,
    arrivals,
    lastBody: () => lastBody,
    /** Starts counting the arrivals of a throughput run afresh. */
    resetDrain: () => (drain = []),
    drain: () => drain,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

async function waitUntil(check: () => boolean, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** Deliveries per second over the middle 80 % of the arrivals, and over all of them. */
function drainRates(times: number[]) {
  const n = times.length;
  if (n < 10) return { sustained: Number.NaN, overall: Number.NaN, seconds: Number.NaN, perSecond: [] as number[] };
  const a = Math.floor(0.1 * n);
  const b = Math.ceil(0.9 * n) - 1;
  const start = times[0]!;
  const perSecond: number[] = [];
  for (const t of times) {
    const s = Math.floor((t - start) / 1000);
    perSecond[s] = (perSecond[s] ?? 0) + 1;
  }
  return {
    sustained: ((b - a) * 1000) / (times[b]! - times[a]!),
    overall: ((n - 1) * 1000) / (times[n - 1]! - start),
    seconds: (times[n - 1]! - start) / 1000,
    perSecond: Array.from(perSecond, (v) => v ?? 0),
  };
}

/** Runs the latency and the throughput measurement on one database; `sqlConnection` reaches the server's database. */
interface RunOptions {
  latencyN: number;
  drainN: number;
  profile: boolean;
}

async function measure(label: string, receiver: Receiver, env: Record<string, string>, apiKey: string, sqlConnection: () => pg.ClientConfig, opts: RunOptions) {
  const { latencyN, drainN } = opts;
  const profileDir = opts.profile ? tempDir(`ti-bench-prof-webhooks-`).dir : undefined;
  const server = await startServer({ env, nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] });
  const agent = new Agent({ connections: 16, keepAliveTimeout: 30_000 });
  const api = async (method: 'POST' | 'PATCH', path: string, body?: unknown) => {
    const res = await request(`${server.origin}${path}`, {
      method,
      dispatcher: agent,
      headers: { 'api-key': apiKey, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${method} ${path} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as { task: { id: string } };
  };
  try {
    // Tasks to change: one per timed PATCH, posted 8 at a time.
    const ids: string[] = [];
    const total = WARMUP + latencyN;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (ids.length < total) {
          ids.push('');
          const i = ids.length - 1;
          ids[i] = (await api('POST', '/api/v1/tasks/', { schema_name: 'bench:webhooks', task: 'review', state: 'open', meta: { title: `task ${i}`, customer: 'ACME', n: i } })).task.id;
        }
      }),
    );

    // Latency: a steady rate of PATCHes, each timed from its answer to its webhook's arrival.
    const answered = new Map<string, number>();
    const patchMs: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      ids.map(async (id, i) => {
        await sleep(Math.max(0, t0 + (i * 1000) / RATE - performance.now()));
        const s = performance.now();
        await api('PATCH', `/api/v1/tasks/${id}/state?state=done`);
        const at = performance.now();
        answered.set(id, at);
        if (i >= WARMUP) patchMs.push(at - s);
      }),
    );
    const allArrived = await waitUntil(() => ids.every((id) => receiver.arrivals.has(id)), 30_000);
    const lags = ids.slice(WARMUP).filter((id) => receiver.arrivals.has(id)).map((id) => receiver.arrivals.get(id)! - answered.get(id)!);
    const latency = percentiles(lags);
    const missing = ids.filter((id) => !receiver.arrivals.has(id)).length;

    // Throughput: N deliveries put in the outbox at once, cloned from the last one delivered.
    const template = ids[ids.length - 1]!;
    const client = new pg.Client(sqlConnection());
    await client.connect();
    receiver.resetDrain();
    const q0 = performance.now();
    await client.query(
      `WITH tpl AS (
         SELECT d.history_id, d.schema_id, d.version_id, d.url, d.payload, t.ttype_id, t.schema_id AS t_schema, t.state, t.resolved, t.meta
         FROM webhook_deliveries d JOIN tasks t ON t.id = d.task_id
         WHERE d.task_id = $1::uuid AND d.mode = 'async' ORDER BY d.id DESC LIMIT 1),
       fresh AS (
         INSERT INTO tasks (ttype_id, schema_id, state, resolved, meta)
         SELECT tpl.ttype_id, tpl.t_schema, tpl.state, tpl.resolved, tpl.meta FROM tpl, generate_series(1, $2::int) RETURNING id)
       INSERT INTO webhook_deliveries (webhook_id, mode, task_id, history_id, schema_id, version_id, url, payload, status)
       SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), 'async', fresh.id, tpl.history_id, tpl.schema_id, tpl.version_id, tpl.url,
              replace(tpl.payload, $3::text, fresh.id::text), 'pending'
       FROM fresh, tpl`,
      [template, drainN, template],
    );
    const queuedMs = performance.now() - q0;
    await client.end();
    const drained = await waitUntil(() => receiver.drain().length >= drainN, Math.max(60_000, drainN * 20));
    const times = [...receiver.drain()].sort((a, b) => a - b);
    const rates = drainRates(times);
    const firstAfterMs = times.length > 0 ? times[0]! - (q0 + queuedMs) : Number.NaN;
    const stopped = await server.stop();
    const profile = profileDir ? summariseCpuProfiles(profileDir) : null;
    return {
      label,
      latency,
      patchMs: percentiles(patchMs),
      missingLatency: missing,
      allArrived,
      drain: {
        queued: drainN,
        arrived: times.length,
        complete: drained,
        queueStatementMs: round(queuedMs, 1),
        firstArrivalAfterQueuedMs: round(firstAfterMs, 1),
        sustainedPerSecond: round(rates.sustained, 1),
        overallPerSecond: round(rates.overall, 1),
        drainSeconds: round(rates.seconds, 2),
        perSecond: rates.perSecond,
      },
      startMs: round(server.startMs, 0),
      stopMs: round(stopped.ms, 0),
      ...(profile ? { profile } : {}),
    };
  } catch (err) {
    await server.stop();
    throw err;
  } finally {
    await agent.close();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  }
}

/** One run on a fresh PostgreSQL database (dropped afterwards). */
async function onPostgres(receiver: Receiver, secretKey: string, opts: RunOptions) {
  const fresh = await createFreshDatabase();
  try {
    const env: Record<string, string> = { DATABASE_URL: fresh.url, SECRET_KEY: secretKey };
    const { apiKey } = await prepareDatabase(env, schemaYaml(receiver.hookUrl), { webhookKey: true });
    say(`webhooks: PostgreSQL database ${fresh.name} ready; ${opts.latencyN} PATCHes at ${RATE}/s, then ${opts.drainN} deliveries queued at once${opts.profile ? ' (under --cpu-prof)' : ''}`);
    return await measure('PostgreSQL', receiver, env, apiKey, () => ({ connectionString: fresh.url }), opts);
  } finally {
    await fresh.drop();
  }
}

/** One run on a fresh embedded data folder (removed afterwards). */
async function onEmbedded(receiver: Receiver, secretKey: string, opts: RunOptions) {
  const data = tempDir('ti-bench-webhooks-');
  try {
    const env: Record<string, string> = { TI_DATA_DIR: data.dir, SECRET_KEY: secretKey };
    const { apiKey } = await prepareDatabase(env, schemaYaml(receiver.hookUrl), { webhookKey: true });
    say(`webhooks: embedded database in ${data.dir} ready; ${opts.latencyN} PATCHes at ${RATE}/s, then ${opts.drainN} deliveries queued at once${opts.profile ? ' (under --cpu-prof)' : ''}`);
    // The running server serves its embedded database on a Unix socket in the data folder.
    return await measure('embedded', receiver, env, apiKey, () => ({ host: data.dir, port: 5432, user: 'postgres', database: 'postgres' }), opts);
  } finally {
    data.remove();
  }
}

const missed = (r: Awaited<ReturnType<typeof measure>>) => [
  ...(r.latency.p50 > 50 || !r.allArrived ? ['lag p50 > 50 ms'] : []),
  ...(r.drain.sustainedPerSecond < 500 || !r.drain.complete ? ['sustained < 500 deliveries/s'] : []),
];

async function main() {
  const started = performance.now();
  const receiver = await startReceiver();
  const runs: Awaited<ReturnType<typeof measure>>[] = [];
  const secretKey = newSecretKey();
  let anchor: { p50: number; rps: number } | undefined;
  const profiles: Record<string, unknown>[] = [];
  try {
    if (POSTGRES) runs.push(await onPostgres(receiver, secretKey, { latencyN: LATENCY_N, drainN: DRAIN_N, profile: PROFILE }));
    if (EMBEDDED) runs.push(await onEmbedded(receiver, secretKey, { latencyN: LATENCY_N, drainN: EMBEDDED_DRAIN_N, profile: PROFILE }));
    // The anchor, on the same receiver and with a real webhook body, while nothing else runs.
    anchor = await anchorPostClient(receiver.anchorUrl, receiver.lastBody(), { sequential: 200, concurrency: 32, durationMs: QUICK ? 1500 : 3000 });
    // A missed target: once more, shorter, with the server under --cpu-prof, to see where its time goes.
    for (const r of runs) {
      const why = missed(r);
      if (QUICK || PROFILE || why.length === 0) continue;
      const opts = { latencyN: 40, drainN: Math.min(r.drain.queued, 1200), profile: true };
      const again = r.label === 'PostgreSQL' ? await onPostgres(receiver, secretKey, opts) : await onEmbedded(receiver, secretKey, opts);
      profiles.push({ label: r.label, why: why.join(', '), run: `${opts.latencyN} PATCHes, ${opts.drainN} deliveries, under --cpu-prof`, lagP50Ms: again.latency.p50, sustainedPerSecond: again.drain.sustainedPerSecond, ...again.profile });
    }
  } finally {
    await receiver.close();
  }

  say('');
  say(
    table(
      ['database', 'lag p50 ms', 'p95', 'p99', 'max', 'PATCH p50 ms', 'queued', 'sustained/s', 'overall/s', 'drain s'],
      runs.map((r) => [r.label, r.latency.p50, r.latency.p95, r.latency.p99, r.latency.max, r.patchMs.p50, r.drain.queued, r.drain.sustainedPerSecond, r.drain.overallPerSecond, r.drain.drainSeconds]),
    ),
  );
  say(`anchor (bare Node + undici to the same receiver): round trip p50 ${round(anchor!.p50, 2)} ms, ${round(anchor!.rps, 0)} req/s at 32 concurrent`);

  const targets: Target[] = [];
  for (const r of runs) {
    targets.push(
      target({
        name: `Async webhook lag p50, PATCH answer → receiver (${r.label})`,
        measured: r.latency.p50,
        unit: 'ms',
        anchor: anchor!.p50,
        anchorLabel: 'bare undici POST round trip p50 to the same receiver',
        target: '≤ 50 ms',
        met: r.latency.p50 <= 50 && r.allArrived,
      }),
      target({
        name: `Async deliveries sustained (${r.label})`,
        measured: r.drain.sustainedPerSecond,
        unit: 'deliveries/s',
        anchor: anchor!.rps,
        anchorLabel: 'bare undici POSTs/s to the same receiver, 32 concurrent',
        target: '≥ 500 /s',
        met: r.drain.sustainedPerSecond >= 500 && r.drain.complete,
      }),
    );
  }
  const result: ScenarioResult = {
    scenario: 'webhooks',
    targets,
    details: {
      server: serveCommand().via,
      postgres: adminPgUrl().replace(/\/\/[^@]*@/, '//…@'),
      method: `${LATENCY_N} PATCH …/state (after ${WARMUP} warm-up) at ${RATE}/s, each to its own task; lag = receiver arrival − PATCH answer. Then N deliveries queued in one statement; sustained = middle 80 % of the drain. Receiver: node:http in the bench process, 200 at once. Standard Webhooks signatures.`,
      quick: QUICK,
      anchor: { roundTripP50Ms: round(anchor!.p50, 2), requestsPerSecond32: round(anchor!.rps, 0) },
      runs,
      ...(profiles.length > 0 ? { profile: profiles } : {}),
      seconds: round((performance.now() - started) / 1000, 1),
    },
  };
  printResult(result);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
