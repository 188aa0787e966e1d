/*
 * Does web push slow task creation down? (issue 7, acceptance 5)
 *
 * Starts a server in this process the way `serve` does (migrated database, HTTP server on
 * 127.0.0.1, the webhook and notification workers), then measures POST /api/v1/tasks/: first
 * with no push subscription, then with 100 subscriptions to a local push service that answers
 * each message only after 2 s. Sending is the worker's job, so the second run should be about as
 * fast as the first.
 *
 *   npx tsx bench/notify-push.ts                  embedded database (PGlite) in a temp folder
 *   npx tsx bench/notify-push.ts --pg [URL]       a fresh database on that PostgreSQL server
 *   DATABASE_URL=postgres://… npx tsx bench/notify-push.ts   (same: a fresh database is made there, and dropped)
 *   options: --n 500 --concurrency 8 --subs 100 --delay-ms 2000 --rate 10
 *
 * Two comparisons: as many POSTs as 8 clients can make (the database is saturated, so the
 * fan-out's own writes compete with task creation), and a steady RATE of POSTs per second (how
 * applications post tasks), where latency is measured from each request's scheduled time.
 */
import type { FastifyBaseLogger } from 'fastify';
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { Notifications } from '../src/core/notify/index.js';
import { createUser, signIn } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { Webhooks } from '../src/core/webhooks/index.js';
import { migrate, openDatabase } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { startWorkers } from '../src/worker/workers.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const N = opt('n', 500);
const CONCURRENCY = opt('concurrency', 8);
const SUBS = opt('subs', 100);
const DELAY_MS = opt('delay-ms', 2000);
/** The steady arrival rate of the second comparison (tasks per second), as an application server posts them. */
const RATE = opt('rate', 10);
const pgIndex = args.indexOf('--pg');
const pgAdminUrl =
  pgIndex >= 0 ? (args[pgIndex + 1] && !args[pgIndex + 1]!.startsWith('--') ? args[pgIndex + 1]! : (process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres')) : process.env.DATABASE_URL;

const SCHEMA = `name: 'bench:push'
semver: '1'
tasktypes:
- name: review
  pending_states: ['open']
  resolved_states: ['done']
`;

/** A push service that takes DELAY_MS per message and counts what it holds. */
async function startPushService() {
  let received = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      open.add(res);
      setTimeout(() => {
        inFlight--;
        open.delete(res);
        if (!res.destroyed) res.writeHead(201).end();
      }, DELAY_MS);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats: () => ({ received, inFlight, maxInFlight }),
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function main() {
  // The database: a fresh one on PostgreSQL, or the embedded one in a temp folder.
  let dropDatabase = async () => {};
  const env: Record<string, string> = { LOG_LEVEL: 'silent', SECRET_KEY: randomBytes(32).toString('base64'), VAPID_SUBJECT: 'mailto:bench@example.org', DB_POOL_SIZE: '20' };
  let where: string;
  if (pgAdminUrl) {
    const name = `ti_bench_${randomBytes(5).toString('hex')}`;
    const admin = new pg.Client({ connectionString: pgAdminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(pgAdminUrl);
    url.pathname = `/${name}`;
    env.DATABASE_URL = url.toString();
    dropDatabase = async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    };
    where = `PostgreSQL (${url.host}, database ${name}, dropped afterwards)`;
  } else {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-bench-'));
    env.TI_DATA_DIR = dir;
    dropDatabase = async () => rmSync(dir, { recursive: true, force: true });
    where = `embedded PGlite in ${dir} (removed afterwards)`;
  }
  const config = loadConfig(env, { stdoutIsTty: false });
  const database = await openDatabase(config, 'server');
  await migrate(database);
  await installSchema(database, SCHEMA);
  const { key } = await createApiKey(database, { name: 'bench' });
  await createUser(database, cliActor, { username: 'bench', name: 'Bench', role: 'admin', password: 'bench-password-1' });
  const cookie = `ti_session=${(await signIn(database, config, { username: 'bench', password: 'bench-password-1', ip: '127.0.0.1' })).token}`;
  const secrets = loadSecretBox(config);
  const webhooks = new Webhooks({ database, config, secrets });
  const notifications = new Notifications({ database, config, secrets, baseUrl: () => 'http://127.0.0.1' });
  await notifications.vapidKeys();
  const app = await buildApp({ config, database, webhooks, notifications });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = app.listeningOrigin;
  // The workers' errors are counted and the first one shown: a worker that cannot claim sends nothing.
  const workerErrors: string[] = [];
  const log = {
    error: (o: unknown, msg?: string) => {
      const err = (o as { err?: Error & { cause?: Error } }).err;
      workerErrors.push(`${msg}: ${String(err?.cause?.message ?? err?.message).slice(0, 300)}`);
    },
  } as unknown as Pick<FastifyBaseLogger, 'error'>;
  const workers = [startWorkers(webhooks, notifications, { log })];
  const push = await startPushService();

  const postTask = async () => {
    const t0 = performance.now();
    const res = await fetch(`${base}/api/v1/tasks/`, {
      method: 'POST',
      headers: { 'api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ schema_name: 'bench:push', task: 'review', state: 'open', meta: { title__notify: 'a task' } }),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`POST /api/v1/tasks/ answered ${res.status}`);
    return performance.now() - t0;
  };
  const run = async (n: number) => {
    const latencies: number[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < n) {
          next++;
          latencies.push(await postTask());
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    return { n, p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies[latencies.length - 1]!, rps: n / seconds };
  };

  /** Open loop: one POST every 1/rate s whatever the answers; latency from the scheduled start. */
  const runAtRate = async (n: number, rate: number) => {
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const at = t0 + (i * 1000) / rate;
        await new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));
        await postTask();
        latencies.push(performance.now() - at);
      }),
    );
    latencies.sort((a, b) => a - b);
    return { n, p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies[latencies.length - 1]!, rps: n / ((performance.now() - t0) / 1000) };
  };
  const rateN = Math.max(50, Math.round(RATE * 20));

  try {
    await run(Math.min(50, N)); // warm-up, not counted
    // Steady rate first, each from a quiet start: the saturating run leaves a backlog behind.
    const withoutAtRate = await runAtRate(rateN, RATE);
    const without = await run(N);

    for (let i = 0; i < SUBS; i++) {
      const ecdh = createECDH('prime256v1');
      const sub = { endpoint: `${push.origin}/push/${i}`, keys: { p256dh: ecdh.generateKeys().toString('base64url'), auth: randomBytes(16).toString('base64url') } };
      const res = await fetch(`${base}/push/register`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ sub }) });
      if (res.status !== 200) throw new Error(`POST /push/register answered ${res.status}: ${await res.text()}`);
    }
    // Earlier tasks were created before any subscription: they notify no one.
    const withPushAtRate = await runAtRate(rateN, RATE);
    const before = push.stats().received;
    const withPush = await run(N);
    const during = push.stats();

    const row = (label: string, r: typeof without) =>
      `${label.padEnd(26)}${String(r.n).padStart(6)}${[r.p50, r.p95, r.p99, r.max].map((v) => v.toFixed(1).padStart(10)).join('')}${r.rps.toFixed(1).padStart(10)}`;
    const ratio = (a: number, b: number) => `${(b / a).toFixed(2)}x`.padStart(10);
    console.log(`\nPOST /api/v1/tasks/ on ${where}; concurrency ${CONCURRENCY}; push service answers after ${DELAY_MS} ms\n`);
    console.log(`${'run'.padEnd(26)}${'n'.padStart(6)}${'p50 ms'.padStart(10)}${'p95 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'max ms'.padStart(10)}${'req/s'.padStart(10)}`);
    console.log(row('0 push subscriptions', without));
    console.log(row(`${SUBS} push subscriptions`, withPush));
    console.log(
      `${`ratio (${SUBS} / 0)`.padEnd(32)}${ratio(without.p50, withPush.p50)}${ratio(without.p95, withPush.p95)}${ratio(without.p99, withPush.p99)}${ratio(without.max, withPush.max)}${ratio(without.rps, withPush.rps)}`,
    );
    console.log(`\nThe same at a steady ${RATE} POSTs per second (${rateN} each over ${Math.round(rateN / RATE)} s, latency from the scheduled time; measured first)\n`);
    console.log(row('0 push subscriptions', withoutAtRate));
    console.log(row(`${SUBS} push subscriptions`, withPushAtRate));
    console.log(
      `${`ratio (${SUBS} / 0)`.padEnd(32)}${ratio(withoutAtRate.p50, withPushAtRate.p50)}${ratio(withoutAtRate.p95, withPushAtRate.p95)}${ratio(withoutAtRate.p99, withPushAtRate.p99)}${ratio(withoutAtRate.max, withPushAtRate.max)}${ratio(withoutAtRate.rps, withPushAtRate.rps)}`,
    );
    console.log(
      `\nDuring the saturating run with subscriptions the push service received ${during.received - before} messages and held up to ${during.maxInFlight} at once ` +
        `(${during.inFlight} in flight at its end); ${(N + rateN) * SUBS} messages were queued by the two runs, sent by the worker at its own pace.\n`,
    );
    console.log(workerErrors.length === 0 ? 'The workers logged no error.' : `The workers logged ${workerErrors.length} error(s); the first: ${workerErrors[0]}`);
  } finally {
    await push.close();
    await Promise.all(workers.map((w) => w.stop()));
    await app.close();
    notifications.close();
    await database.close();
    await dropDatabase();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
