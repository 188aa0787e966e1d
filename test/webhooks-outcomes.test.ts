/*
 * How the delivery worker records outcomes and signs batches (issue 9, fewer statements per
 * delivery): several outcomes written by one statement, each with the semantics of the transaction
 * it replaced (attempt log row, attempts counted whoever holds the lease, new state only under the
 * attempt's lease, dead after the last retry, 410 pausing and disabling the endpoint); outcomes
 * that finish together sharing a statement; the keys of a claimed batch read once yet each
 * delivery signed by its own schema's key.
 */
import { afterEach, expect, test } from 'vitest';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { createTask, setTaskState } from '../src/core/tasks/index.js';
import { BatchWriter } from '../src/core/webhooks/batch-writer.js';
import * as deliveries from '../src/core/webhooks/deliveries.repo.js';
import { createWebhookKey, verifyStandard, Webhooks } from '../src/core/webhooks/index.js';
import type { Database } from '../src/db/index.js';
import { startDeliveryWorker } from '../src/worker/delivery-worker.js';
import { testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';
import { startReceiver } from './helpers/receiver.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function freshDatabase(): Promise<Database> {
  const { database } = await createTestDatabase();
  cleanups.push(() => database.close());
  return database;
}

const schemaYaml = (name: string, url: string, auth = true) => `name: '${name}'
semver: '1'
default_hook_url: '${url}'
hook_mode: async
${auth ? 'hook_auth:\n  kind: standard\n' : ''}tasktypes:
- name: review
  pending_states: ['open']
  resolved_states: ['done']
`;

/** Creates `n` tasks of a schema and resolves them: one pending async delivery each. */
async function queueDeliveries(database: Database, webhooks: Webhooks, schemaName: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = (await createTask(database, { kind: 'cli' }, { schema_name: schemaName, task: 'review', state: 'open' })).task.id;
    await setTaskState(database, { kind: 'cli' }, id, 'done', webhooks);
    ids.push(id);
  }
  return ids;
}

test('one statement records six outcomes, each as its own transaction did', async () => {
  const database = await freshDatabase();
  const config = testConfig();
  const webhooks = new Webhooks({ database, config, secrets: loadSecretBox(config) });
  await installSchema(database, schemaYaml('acme:outcomes', 'http://127.0.0.1:9/hook', false));
  await queueDeliveries(database, webhooks, 'acme:outcomes', 6);
  const claimed = await deliveries.claimDueDeliveries(database.db, 10, 60_000);
  expect(claimed).toHaveLength(6);
  const [delivered, retried, last, gone, stale, overtaken] = claimed as [deliveries.ClaimedRow, ...deliveries.ClaimedRow[]];
  // Two attempts were made before: the third is the last of a two-retry schedule.
  await database.query('UPDATE webhook_deliveries SET attempts = 2 WHERE id = $1', [last!.id]);
  // Another worker took this one over after its lease ran out, and delivered it.
  await database.query(`UPDATE webhook_deliveries SET status = 'delivered', attempts = 1, last_status = 200, lease_until = NULL, delivered_at = now() WHERE id = $1`, [overtaken!.id]);

  const base = { latencyMs: 3, responseBody: null, error: null, reason: null, retryDelaysMs: [] as number[] };
  await deliveries.recordOutcomes(database.background, [
    { ...base, id: delivered.id, lease: delivered.leaseUntil, url: delivered.url, outcome: 'delivered', statusCode: 200, responseBody: 'ok\u0000then' },
    { ...base, id: retried!.id, lease: retried!.leaseUntil, url: retried!.url, outcome: 'failed', statusCode: 500, responseBody: 'busy', retryDelaysMs: [60_000, 120_000] },
    { ...base, id: last!.id, lease: last!.leaseUntil, url: last!.url, outcome: 'failed', statusCode: null, error: 'connection refused', retryDelaysMs: [60_000, 120_000] },
    { ...base, id: gone!.id, lease: gone!.leaseUntil, url: gone!.url, outcome: 'gone', statusCode: 410, reason: 'answered 410 Gone to delivery x' },
    // Its lease ran out and another worker took the row: the attempt counts, the state is the other's.
    { ...base, id: stale!.id, lease: new Date(stale!.leaseUntil!.getTime() - 1), url: stale!.url, outcome: 'delivered', statusCode: 200 },
    // The late failure of the lost lease must not make the other worker's delivery dead.
    { ...base, id: overtaken!.id, lease: overtaken!.leaseUntil, url: overtaken!.url, outcome: 'failed', statusCode: 500, retryDelaysMs: [60_000] },
  ]);

  type Row = { id: number; status: string; attempts: number; last_status: number | null; last_error: string | null; leased: boolean; delivered: boolean; retry_in_s: number | null };
  const rows = await database.query<Row>(
    `SELECT id::int AS id, status, attempts, last_status, last_error, lease_until IS NOT NULL AS leased, delivered_at IS NOT NULL AS delivered,
            round(extract(epoch FROM next_attempt_at - now()))::int AS retry_in_s
     FROM webhook_deliveries ORDER BY id`,
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  expect(byId.get(delivered.id)).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200, leased: false, delivered: true });
  expect(byId.get(retried!.id)).toMatchObject({ status: 'pending', attempts: 1, last_status: 500, leased: false, delivered: false });
  // The first retry's delay (attempt 1 → element 1), not the second's.
  expect(byId.get(retried!.id)!.retry_in_s).toBeGreaterThanOrEqual(58);
  expect(byId.get(retried!.id)!.retry_in_s).toBeLessThanOrEqual(61);
  expect(byId.get(last!.id)).toMatchObject({ status: 'dead', attempts: 3, last_status: null, last_error: 'connection refused', leased: false });
  expect(byId.get(gone!.id)).toMatchObject({ status: 'paused', attempts: 1, last_status: 410, leased: false });
  expect(byId.get(stale!.id)).toMatchObject({ status: 'pending', attempts: 1, last_status: null, leased: true, delivered: false });
  expect(byId.get(overtaken!.id)).toMatchObject({ status: 'delivered', attempts: 2, last_status: 200, leased: false, delivered: true });

  const attempts = await database.query<{ delivery_id: number; status_code: number | null; response_body: string | null; error: string | null }>(
    'SELECT delivery_id::int AS delivery_id, status_code, response_body, error FROM webhook_attempts ORDER BY id',
  );
  expect(attempts).toEqual([
    { delivery_id: delivered.id, status_code: 200, response_body: 'okthen', error: null },
    { delivery_id: retried!.id, status_code: 500, response_body: 'busy', error: null },
    { delivery_id: last!.id, status_code: null, response_body: null, error: 'connection refused' },
    { delivery_id: gone!.id, status_code: 410, response_body: null, error: null },
    { delivery_id: stale!.id, status_code: 200, response_body: null, error: null },
    { delivery_id: overtaken!.id, status_code: 500, response_body: null, error: null },
  ]);
  expect(await database.query('SELECT url, reason FROM webhook_disabled_endpoints')).toEqual([{ url: gone!.url, reason: 'answered 410 Gone to delivery x' }]);
});

test('outcomes that come in together share a statement; one the database refuses does not fail the others', async () => {
  const batches: number[][] = [];
  let release: () => void = () => {};
  let gate: Promise<void> | undefined;
  const writer = new BatchWriter<number>(
    async (items) => {
      batches.push(items);
      if (gate) await gate;
      if (items.includes(13)) throw new Error('refused 13');
    },
    { maxBatch: 3, keyOf: (n) => n % 10 },
  );

  // Written in one turn of the event loop: one statement, but at most 3 per statement, and never
  // two items with the same key in one.
  await Promise.all([1, 2, 11, 3, 4].map((n) => writer.write(n)));
  expect(batches).toEqual([[1, 2, 3], [11, 4]]);

  // Items that come in while a statement runs go together in the next.
  batches.length = 0;
  gate = new Promise<void>((r) => (release = r));
  const first = writer.write(5);
  for (let i = 0; i < 100 && batches.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(batches).toEqual([[5]]);
  const later = [6, 7].map((n) => writer.write(n));
  await new Promise((r) => setTimeout(r, 20));
  expect(batches).toEqual([[5]]);
  gate = undefined;
  release();
  await Promise.all([first, ...later]);
  expect(batches).toEqual([[5], [6, 7]]);

  // A refused batch is retried item by item: only the refused item fails.
  batches.length = 0;
  const results = await Promise.allSettled([12, 13, 14].map((n) => writer.write(n)));
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect(batches).toEqual([[12, 13, 14], [12], [13], [14]]);
});

/** A fresh database, its Webhooks and a receiver that answers 200 (closed after the test). */
async function webhooksWithReceiver() {
  const database = await freshDatabase();
  const config = testConfig();
  const secrets = loadSecretBox(config);
  const webhooks = new Webhooks({ database, config, secrets });
  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  return { database, secrets, webhooks, receiver };
}

test("a claimed batch of two schemas' deliveries: each signed by its own schema's key only", async () => {
  const { database, secrets, webhooks, receiver } = await webhooksWithReceiver();
  await installSchema(database, schemaYaml('acme:one', receiver.url));
  await installSchema(database, schemaYaml('acme:two', receiver.url));
  const keyOne = (await createWebhookKey(database, secrets, { schemaName: 'acme:one', graceMs: 0 })).key;
  const keyTwo = (await createWebhookKey(database, secrets, { schemaName: 'acme:two', graceMs: 0 })).key;
  const one = await queueDeliveries(database, webhooks, 'acme:one', 2);
  const two = await queueDeliveries(database, webhooks, 'acme:two', 2);

  expect(await webhooks.runDue(10)).toBe(4);
  expect(receiver.received).toHaveLength(4);
  for (const r of receiver.received) {
    const taskId = (JSON.parse(r.body) as { task: { id: string } }).task.id;
    const own = one.includes(taskId) ? keyOne : keyTwo;
    const other = own === keyOne ? keyTwo : keyOne;
    expect(one.includes(taskId) || two.includes(taskId)).toBe(true);
    const args = [String(r.headers['webhook-id']), Number(r.headers['webhook-timestamp']), r.body, String(r.headers['webhook-signature'])] as const;
    expect(String(r.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(verifyStandard([own], ...args)).toBe(true);
    expect(verifyStandard([other], ...args)).toBe(false);
  }
});

test('a worker draining 150 deliveries: each arrives once and is recorded delivered after one attempt', async () => {
  const { database, secrets, webhooks, receiver } = await webhooksWithReceiver();
  await installSchema(database, schemaYaml('acme:many', receiver.url));
  await createWebhookKey(database, secrets, { schemaName: 'acme:many', graceMs: 0 });
  const ids = await queueDeliveries(database, webhooks, 'acme:many', 150);

  const worker = startDeliveryWorker(webhooks, { pollMs: 50, concurrency: 64 });
  try {
    await receiver.waitFor(150);
  } finally {
    await worker.stop();
  }
  const arrived = receiver.received.map((r) => (JSON.parse(r.body) as { task: { id: string } }).task.id);
  expect(arrived.sort()).toEqual([...ids].sort());
  const summary = await database.query<{ status: string; attempts: number; n: number; logged: number }>(
    `SELECT d.status, d.attempts, count(*)::int AS n, sum((SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id = d.id))::int AS logged
     FROM webhook_deliveries d GROUP BY d.status, d.attempts`,
  );
  expect(summary).toEqual([{ status: 'delivered', attempts: 1, n: 150, logged: 150 }]);
  expect(await database.query('SELECT id FROM webhook_deliveries WHERE lease_until IS NOT NULL')).toEqual([]);
});
