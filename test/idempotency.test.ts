import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { stableStringify } from '../src/core/tasks/index.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';

// Issue 2: Idempotency-Key on POST /api/v1/tasks/.
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ poolSize: 20 });
});
afterAll(() => t.close());

const body = { schema_name: 'acme:moderation', task: 'flag-content', meta: { post: 1 } };
const post = (key: string, payload: object = body, apiKey?: string) =>
  t.call({ method: 'POST', url: '/api/v1/tasks/', payload, headers: { 'idempotency-key': key }, key: apiKey });
const countTasks = async () => (await t.database.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks'))[0]!.n;

test('50 concurrent POSTs with one key create exactly one task; every answer has its id or is a 409', async () => {
  const before = await countTasks();
  const answers = await Promise.all(Array.from({ length: 50 }, () => post('k-concurrent')));
  expect(await countTasks()).toBe(before + 1);
  const ids = new Set<string>();
  for (const res of answers) {
    if (res.statusCode === 409) {
      expect(res.json().type).toBe('urn:task-inbox:problem:idempotency-in-flight');
      continue;
    }
    expect(res.statusCode).toBe(200);
    ids.add(res.json().task.id);
  }
  expect(ids.size).toBe(1);
  // Once the first has finished, a retry gets the same answer.
  const again = await post('k-concurrent');
  expect(again.statusCode).toBe(200);
  expect(again.json().task.id).toBe([...ids][0]);
  expect(again.headers['idempotent-replayed']).toBe('true');
});

test('a retry with the same key and body returns the first response; key order does not matter', async () => {
  const first = await post('k-retry', { task: 'flag-content', meta: { b: 2, a: 1 }, schema_name: 'acme:moderation' });
  const second = await post('k-retry', { schema_name: 'acme:moderation', meta: { a: 1, b: 2 }, task: 'flag-content' });
  expect(second.statusCode).toBe(200);
  expect(second.json()).toEqual(first.json());
});

test('the same key with a different body → 422 and nothing created', async () => {
  await post('k-diff');
  const before = await countTasks();
  const res = await post('k-diff', { ...body, meta: { post: 2 } });
  expect(res.statusCode).toBe(422);
  expect(res.json().type).toBe('urn:task-inbox:problem:idempotency-key-reused');
  expect(await countTasks()).toBe(before);
});

test('keys are scoped to the API key', async () => {
  const other = await createApiKey(t.database, { name: 'second' });
  const a = await post('k-scope');
  const b = await post('k-scope', body, other.key);
  expect(b.statusCode).toBe(200);
  expect(b.json().task.id).not.toBe(a.json().task.id);
});

test('a refused first request leaves the key free for a corrected retry', async () => {
  const bad = await post('k-fix', { ...body, task: 'nope' });
  expect(bad.statusCode).toBe(404);
  const good = await post('k-fix');
  expect(good.statusCode).toBe(200);
});

test('a key whose first request died long ago (stale in flight) is taken over by a retry', async () => {
  const hash = createHash('sha256').update(stableStringify(body)).digest('hex');
  await t.database.query(
    "INSERT INTO idempotency_keys (api_key_id, key, request_hash, status, created) SELECT id, 'k-stale', $1, 'in_flight', now() - $2::interval FROM api_keys WHERE name = 'test'",
    [hash, '10 seconds'],
  );
  expect((await post('k-stale')).statusCode).toBe(409); // recent: the first request may still be running
  await t.database.query("UPDATE idempotency_keys SET created = now() - interval '10 minutes' WHERE key = 'k-stale'");
  const res = await post('k-stale');
  expect(res.statusCode).toBe(200);
  expect((await post('k-stale')).json().task.id).toBe(res.json().task.id);
});

test('a key is remembered for 24 hours, then forgotten', async () => {
  const first = await post('k-old');
  await t.database.query("UPDATE idempotency_keys SET created = now() - interval '23 hours' WHERE key = 'k-old'");
  expect((await post('k-old')).json().task.id).toBe(first.json().task.id);
  await t.database.query("UPDATE idempotency_keys SET created = now() - interval '25 hours' WHERE key = 'k-old'");
  const later = await post('k-old');
  expect(later.statusCode).toBe(200);
  expect(later.json().task.id).not.toBe(first.json().task.id);
});

test('an invalid Idempotency-Key header → 400', async () => {
  expect((await post('x'.repeat(300))).statusCode).toBe(400);
});

test('an answer remembered by an earlier release (without fields added since) is replayed with them', async () => {
  const t = await createTestApp();
  try {
    const send = () => t.call({ method: 'POST', url: '/api/v1/tasks/', key: t.key, headers: { 'idempotency-key': 'from-before-the-upgrade' }, payload: { schema_name: 'acme:moderation', task: 'flag-content' } });
    const first = await send();
    expect(first.statusCode).toBe(200);
    // What the release before `cancelled` existed stored.
    await t.database.query(`UPDATE idempotency_keys SET response_body = response_body #- '{task,cancelled}'`);
    const again = await send();
    expect(again.statusCode, again.body).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().task).toEqual({ ...first.json().task, cancelled: null });
  } finally {
    await t.close();
  }
});
