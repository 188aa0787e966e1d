/*
 * The TypeScript client (src/client, `task-inbox/client`) end to end: a real server listening on a
 * port, called over HTTP by the client, and real webhooks of both kinds checked by verifyWebhook.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createClient,
  TaskInboxConnectionError,
  TaskInboxError,
  TaskWaitTimeoutError,
  verifyWebhook,
  WebhookVerificationError,
  type TaskInboxClient,
  type WebhookPayload,
} from '../src/client/index.js';
import type { Config } from '../src/config.js';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createUser, signIn } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { createWebhookKey, Webhooks } from '../src/core/webhooks/index.js';
import type { Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { startDeliveryWorker, type DeliveryWorker } from '../src/worker/delivery-worker.js';
import { sampleSchema, testConfig } from './helpers/app.js';
import { createTestDatabase, dbKind } from './helpers/db.js';
import { deadPort, startReceiver, type Receiver } from './helpers/receiver.js';

const SCHEMA = 'acme:moderation';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let database: Database;
let config: Config;
let app: FastifyInstance;
let worker: DeliveryWorker;
let receiver: Receiver;
let base: string;
let apiKey: string;
/** A signed-in member's Cookie header: a person working the inbox. */
let memberCookie: string;
let inbox: TaskInboxClient;

beforeAll(async () => {
  ({ database } = await createTestDatabase());
  config = testConfig({ WEBHOOK_RETRY_SCHEDULE: '100ms,100ms,100ms' });
  const webhooks = new Webhooks({ database, config, secrets: loadSecretBox(config) });
  await installSchema(database, sampleSchema);
  ({ key: apiKey } = await createApiKey(database, { name: 'client-test' }));
  await createUser(database, cliActor, { username: 'mia', name: 'Mia Member', role: 'member', password: 'member-password-1' });
  const { token } = await signIn(database, config, { username: 'mia', password: 'member-password-1', ip: '127.0.0.1' });
  memberCookie = `ti_session=${token}`;
  receiver = await startReceiver();
  app = await buildApp({ config, database, webhooks });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  // The async deliveries go out from a worker, as in `task-inbox serve`.
  worker = startDeliveryWorker(webhooks, { pollMs: 50 });
  inbox = createClient({ baseUrl: base, apiKey, timeoutMs: 10_000 });
});

afterAll(async () => {
  await worker?.stop();
  await app?.close();
  await receiver?.close();
  await database?.close();
});

/** A person's state change, made as the inbox makes it (session cookie, no API key). */
async function personSetsState(id: string, state: string) {
  const res = await fetch(`${base}/api/v1/tasks/${id}/state?state=${encodeURIComponent(state)}`, { method: 'PATCH', headers: { cookie: memberCookie } });
  expect(res.status, await res.clone().text()).toBe(200);
  return res;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('tasks', () => {
  test('createTask creates a task; getTask and getHistory read it back', async () => {
    const created = await inbox.createTask({ schema: SCHEMA, type: 'flag-content', state: 'level1', meta: { post: 'https://example.org/p/1' } });
    expect(created.replayed).toBe(false);
    expect(created.ttype).toBe('flag-content');
    expect(created.task).toMatchObject({ state: 'level1', resolved: false, meta: { post: 'https://example.org/p/1' }, cancelled: null });
    const read = await inbox.getTask(created.task.id);
    expect(read.task).toEqual(created.task);
    expect(read.type).toMatchObject({ name: 'flag-content', schema_name: SCHEMA, pending_states: ['level1', 'level2'] });
    const history = await inbox.getHistory(created.task.id);
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ state: 'level1', event: 'created' });
  });

  test('an idempotency key makes a retry return the same task (replayed); another body with it is refused', async () => {
    const key = `flag-post-${Math.random()}`;
    const input = { schema: SCHEMA, type: 'flag-content', meta: { post: 2 } };
    const first = await inbox.createTask(input, { idempotencyKey: key });
    const again = await inbox.createTask(input, { idempotencyKey: key });
    expect(again.task.id).toBe(first.task.id);
    expect([first.replayed, again.replayed]).toEqual([false, true]);

    const err = await rejection(inbox.createTask({ ...input, meta: { post: 3 } }, { idempotencyKey: key }));
    expect(err).toBeInstanceOf(TaskInboxError);
    expect(err).toMatchObject({ status: 422, code: 'idempotency-key-reused' });
  });

  test('with an idempotency key, a lost answer is retried by the client and the task is created once', async () => {
    let calls = 0;
    // The first request reaches the server and creates the task, but its answer is lost.
    const lossy: typeof fetch = async (input, init) => {
      calls++;
      const res = await fetch(input, init);
      if (calls === 1) {
        await res.text();
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
      }
      return res;
    };
    const client = createClient({ baseUrl: base, apiKey, fetch: lossy });
    const key = `lost-answer-${Math.random()}`;
    const created = await client.createTask({ schema: SCHEMA, type: 'delete-acct', meta: { account: key } }, { idempotencyKey: key });
    expect(calls).toBe(2);
    expect(created.replayed).toBe(true);
    const matching = [];
    for await (const t of inbox.listTasks({ schema: SCHEMA, q: key })) matching.push(t.id);
    expect(matching).toEqual([created.task.id]);

    // Without a key nothing is retried: the caller learns that the outcome is unknown.
    calls = 0;
    const err = await rejection(client.createTask({ schema: SCHEMA, type: 'delete-acct', meta: { account: `${key}-2` } }));
    expect(err).toBeInstanceOf(TaskInboxConnectionError);
    expect((err as TaskInboxConnectionError).message).toContain('ECONNRESET');
    expect(calls).toBe(1);
  });

  test('errors: problem documents become TaskInboxError with code and detail; no server, a TaskInboxConnectionError', async () => {
    const missing = await rejection(inbox.getTask('00000000-0000-4000-8000-000000000000'));
    expect(missing).toBeInstanceOf(TaskInboxError);
    expect(missing).toMatchObject({ status: 404, code: 'task-not-found', receiver: null });
    expect((missing as TaskInboxError).detail).toContain('00000000-0000-4000-8000-000000000000');
    expect((missing as TaskInboxError).problem).toMatchObject({ type: 'urn:task-inbox:problem:task-not-found', status: 404 });

    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content' });
    expect(await rejection(inbox.setState(task.id, 'nope'))).toMatchObject({ status: 422, code: 'state-not-in-type' });
    expect(await rejection(inbox.createTask({ schema: 'no:such', type: 'x' }))).toMatchObject({ status: 404, code: 'schema-not-found' });
    const badKey = createClient({ baseUrl: base, apiKey: 'ti_not-a-key' });
    expect(await rejection(badKey.getTask(task.id))).toMatchObject({ status: 403, code: 'api-key-invalid' });

    const nowhere = createClient({ baseUrl: `http://127.0.0.1:${await deadPort()}`, apiKey });
    const down = await rejection(nowhere.getTask(task.id));
    expect(down).toBeInstanceOf(TaskInboxConnectionError);
    expect(down).toMatchObject({ timedOut: false });
  });

  test('listTasks pages through every matching task, in order, exactly once, with filters', async () => {
    const tag = `paging-${Math.random().toString(36).slice(2)}`;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await inbox.createTask({ schema: SCHEMA, type: 'flag-content', state: 'level1', meta: { tag, i } })).task.id);
    // Tasks the filters leave out: another type, a resolved one, one with another state.
    const otherType = (await inbox.createTask({ schema: SCHEMA, type: 'delete-acct', meta: { tag } })).task.id;
    const resolved = (await inbox.createTask({ schema: SCHEMA, type: 'flag-content', state: 'block', meta: { tag } })).task.id;
    const noState = (await inbox.createTask({ schema: SCHEMA, type: 'flag-content', meta: { tag } })).task.id;

    const filters = { schema: SCHEMA, type: 'flag-content', resolved: 'un', state: 'level1', q: tag, limit: 3 } as const;
    const seen: string[] = [];
    for await (const t of inbox.listTasks(filters)) seen.push(t.id);
    expect(seen).toEqual(ids);

    const pages = [];
    for await (const page of inbox.listTaskPages(filters)) pages.push(page);
    expect(pages.map((p) => p.tasks.length)).toEqual([3, 3, 1]);
    expect(pages.at(-1)!.next_cursor).toBeNull();
    expect(Object.values(pages[0]!.types).map((t) => t.name)).toEqual(['flag-content']);
    // One page at a time, from a cursor.
    const second = await inbox.listTasksPage({ ...filters, cursor: pages[0]!.next_cursor! });
    expect(second.tasks.map((t) => t.id)).toEqual(ids.slice(3, 6));

    const newest: string[] = [];
    for await (const t of inbox.listTasks({ ...filters, order: 'newest' })) newest.push(t.id);
    expect(newest).toEqual([...ids].reverse());

    const done: string[] = [];
    for await (const t of inbox.listTasks({ q: tag, resolved: 'done' })) done.push(t.id);
    expect(done).toEqual([resolved]);
    const stateless: string[] = [];
    for await (const t of inbox.listTasks({ q: tag, state: null, limit: 1 })) stateless.push(t.id);
    expect(stateless).toEqual([otherType, noState]);
  });

  test('updateTask merges metadata (null removes a key), visible in getTask and the history', async () => {
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content', meta: { post: 4, note: 'first look', score: 0.2 } });
    const updated = await inbox.updateTask(task.id, { score: 0.9, note: null, model: 'v2' });
    expect(updated.meta).toEqual({ post: 4, score: 0.9, model: 'v2' });
    const read = await inbox.getTask(task.id);
    expect(read.task.meta).toEqual({ post: 4, score: 0.9, model: 'v2' });
    expect(read.meta).toEqual({ post: 4, score: 0.9, model: 'v2' });
    const history = await inbox.getHistory(task.id);
    expect(history.map((h) => h.event)).toEqual(['created', 'meta']);
    expect(history[1]!.update_meta).toEqual({ score: 0.9, note: null, model: 'v2' });
    expect(await rejection(inbox.updateTask('00000000-0000-4000-8000-000000000000', { a: 1 }))).toMatchObject({ code: 'task-not-found' });
  });

  test('cancelTask resolves the task with the reason; a person-resolved task cannot be cancelled (409 task-resolved)', async () => {
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content', state: 'level1' });
    const cancelled = await inbox.cancelTask(task.id, 'the post was deleted by its author');
    expect(cancelled).toMatchObject({ id: task.id, resolved: true, state: 'level1', cancelled: { reason: 'the post was deleted by its author' } });
    expect(Date.parse(cancelled.cancelled!.at)).not.toBeNaN();
    expect((await inbox.getTask(task.id)).task.cancelled).toEqual(cancelled.cancelled);
    // Cancelling again changes nothing; the state can no longer change.
    expect((await inbox.cancelTask(task.id, 'again')).cancelled).toEqual(cancelled.cancelled);
    expect(await rejection(inbox.setState(task.id, 'block'))).toMatchObject({ status: 409, code: 'task-cancelled' });
    // A waiting agent learns at once: a cancelled task is resolved.
    expect((await inbox.waitForTask(task.id, { timeout: 5000 })).task.cancelled?.reason).toBe('the post was deleted by its author');

    const other = (await inbox.createTask({ schema: SCHEMA, type: 'flag-content' })).task;
    await personSetsState(other.id, 'allow');
    const err = await rejection(inbox.cancelTask(other.id, 'too late'));
    expect(err).toBeInstanceOf(TaskInboxError);
    expect(err).toMatchObject({ status: 409, code: 'task-resolved' });
    expect((err as TaskInboxError).detail).toContain('already resolved');
  });
});

describe('waitForTask', () => {
  test('resolves promptly when a person resolves the task while it waits', async () => {
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content', state: 'level1' });
    const started = Date.now();
    const waiting = inbox.waitForTask(task.id, { timeout: 30_000 });
    await sleep(300);
    // A pending state is not a decision: the wait goes on.
    await personSetsState(task.id, 'level2');
    await sleep(200);
    const changedAt = Date.now();
    await personSetsState(task.id, 'block');
    const decided = await waiting;
    expect(decided.task).toMatchObject({ id: task.id, state: 'block', resolved: true });
    expect(decided.type.name).toBe('flag-content');
    expect(Date.now() - changedAt).toBeLessThan(2000);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('resolves when the application server sets a resolved state with setState; at once when already resolved', async () => {
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'delete-acct' });
    const waiting = inbox.waitForTask(task.id, { timeout: 30_000 });
    await sleep(200);
    const set = await inbox.setState(task.id, 'deleted');
    expect(set).toMatchObject({ state: 'deleted', resolved: true });
    expect((await waiting).task.state).toBe('deleted');
    const started = Date.now();
    expect((await inbox.waitForTask(task.id, { timeout: 30_000 })).task.state).toBe('deleted');
    expect(Date.now() - started).toBeLessThan(1000);
    // null unsets the state (and so un-resolves it).
    expect(await inbox.setState(task.id, null)).toMatchObject({ state: null, resolved: false });
  });

  test("until: 'change' resolves on the first state change, resolved or not", async () => {
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content', state: 'level1' });
    const waiting = inbox.waitForTask(task.id, { timeout: 30_000, until: 'change' });
    await sleep(300);
    await personSetsState(task.id, 'level2');
    expect((await waiting).task).toMatchObject({ state: 'level2', resolved: false });
    // `from`: a change that happened before the wait began counts too.
    const started = Date.now();
    const fromOld = await inbox.waitForTask(task.id, { timeout: 5000, until: 'change', from: { state: 'level1', resolved: false } });
    expect(fromOld.task.state).toBe('level2');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test('times out with TaskWaitTimeoutError carrying the last task, after repeating the long poll', async () => {
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content', state: 'level1' });
    const polls: string[] = [];
    const counting: typeof fetch = (input, init) => {
      polls.push(String(input));
      return fetch(input, init);
    };
    const client = createClient({ baseUrl: base, apiKey, fetch: counting });
    const started = Date.now();
    const err = await rejection(client.waitForTask(task.id, { timeout: 3500, pollSeconds: 1 }));
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(TaskWaitTimeoutError);
    expect(err).toMatchObject({ taskId: task.id, timeoutMs: 3500 });
    expect((err as TaskWaitTimeoutError).task?.task).toMatchObject({ id: task.id, state: 'level1', resolved: false });
    expect((err as Error).message).toContain('not resolved within 3500 ms');
    expect(elapsed).toBeGreaterThanOrEqual(3400);
    expect(elapsed).toBeLessThan(7000);
    // Several server long polls (≤ 1 s each), each a GET with ?wait (but a last look with under 0.1 s left).
    expect(polls.length).toBeGreaterThanOrEqual(3);
    expect(polls.filter((u) => u.includes('?wait=')).length).toBeGreaterThanOrEqual(3);
    for (const url of polls.filter((u) => u.includes('?'))) expect(url).toMatch(new RegExp(`/api/v1/tasks/${task.id}\\?wait=[0-9.]+&wait_for=resolved$`));
  });

  test('an abort signal ends the wait with its reason; a missing task rejects with task-not-found', async () => {
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content' });
    const controller = new AbortController();
    const waiting = rejection(inbox.waitForTask(task.id, { timeout: 30_000, signal: controller.signal }));
    await sleep(200);
    const started = Date.now();
    controller.abort(new Error('agent shutting down'));
    expect(await waiting).toMatchObject({ message: 'agent shutting down' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await rejection(inbox.waitForTask('00000000-0000-4000-8000-000000000000', { timeout: 5000 }))).toMatchObject({ status: 404, code: 'task-not-found' });
  });
});

const hookSchema = (name: string, kind: 'head' | 'standard', mode: 'sync' | 'async', url: string) => `name: '${name}'
semver: '1'
default_hook_url: '${url}'
hook_mode: ${mode}
hook_auth:
  kind: ${kind}
  val: ti-key
tasktypes:
- name: review
  pending_states: ['open']
  resolved_states: ['done', 'rejected']
`;

describe('verifyWebhook on real deliveries', () => {
  const secrets = () => loadSecretBox(config);
  const deliveredFor = async (taskId: string, event: WebhookPayload['event']) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const hit = receiver.received.find((r) => {
        const body = JSON.parse(r.body) as WebhookPayload;
        return body.task.id === taskId && body.event === event;
      });
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no ${event} webhook for ${taskId}`);
      await sleep(25);
    }
  };
  const reasonOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(WebhookVerificationError);
      return (err as WebhookVerificationError).reason;
    }
    throw new Error('verifyWebhook accepted it');
  };

  test('kind head (async, from the delivery worker): the key in the ti-key header is accepted; a wrong value or secret is not', async () => {
    const schema = 'cl:head';
    await installSchema(database, hookSchema(schema, 'head', 'async', receiver.url));
    const { key } = await createWebhookKey(database, secrets(), { schemaName: schema, graceMs: 0 });
    const hooked = createClient({ baseUrl: base, apiKey });
    const { task } = await hooked.createTask({ schema, type: 'review', state: 'open', meta: { doc: 'ünïcödé' } });
    const set = await hooked.setState(task.id, 'done');
    expect(set).toMatchObject({ state: 'done', resolved: true });

    const got = await deliveredFor(task.id, 'task.state_changed');
    expect(got.headers['ti-key']).toBe(key);
    const payload = verifyWebhook(got.body, got.headers, key, { kind: 'head', header: 'ti-key' });
    expect(payload).toMatchObject({ event: 'task.state_changed', ttype: 'review', task: { id: task.id, state: 'done', resolved: true }, previous: { state: 'open', resolved: false }, editor: null, meta: { doc: 'ünïcödé' } });
    expect(payload.type).toEqual({ schema_name: schema, name: 'review', semver: '1', version: 0 });
    // Raw bytes, a Headers object, several keys (one of them right), and the header's name in any case.
    expect(verifyWebhook(Buffer.from(got.body), new Headers(got.headers as Record<string, string>), ['some-old-key-1234', key], { kind: 'head', header: 'TI-Key' }).task.id).toBe(task.id);

    expect(reasonOf(() => verifyWebhook(got.body, { ...got.headers, 'ti-key': `${key}x` }, key, { kind: 'head' }))).toBe('wrong-key');
    expect(reasonOf(() => verifyWebhook(got.body, got.headers, 'not-the-key-of-this-schema', { kind: 'head', header: 'ti-key' }))).toBe('wrong-key');
    expect(reasonOf(() => verifyWebhook(got.body, { ...got.headers, 'ti-key': undefined }, key, { kind: 'head' }))).toBe('missing-header');
    expect(reasonOf(() => verifyWebhook(got.body, got.headers, key, { kind: 'head', header: 'x-other' }))).toBe('missing-header');
    // head proves the sender, not the body: it has no signature to check (use standard for that).
    expect(reasonOf(() => verifyWebhook('not json', got.headers, key, { kind: 'head' }))).toBe('bad-body');

    // A cancellation arrives as task.cancelled.
    const other = (await hooked.createTask({ schema, type: 'review', state: 'open' })).task;
    await hooked.cancelTask(other.id, 'no longer needed');
    const cancelled = verifyWebhook((await deliveredFor(other.id, 'task.cancelled')).body, (await deliveredFor(other.id, 'task.cancelled')).headers, key, { kind: 'head' });
    expect(cancelled).toMatchObject({ event: 'task.cancelled', task: { id: other.id, resolved: true, state: 'open', cancelled: { reason: 'no longer needed' } }, previous: { state: 'open', resolved: false } });
  });

  test('kind standard (sync): the signature is accepted; a tampered body, a wrong secret, an old timestamp are not', async () => {
    const schema = 'cl:standard';
    await installSchema(database, hookSchema(schema, 'standard', 'sync', receiver.url));
    const { key } = await createWebhookKey(database, secrets(), { schemaName: schema, graceMs: 0 });
    expect(key).toMatch(/^whsec_/);
    const { task } = await inbox.createTask({ schema, type: 'review', state: 'open' });
    await personSetsState(task.id, 'rejected');

    const got = await deliveredFor(task.id, 'task.state_changed');
    const payload = verifyWebhook(got.body, got.headers, key);
    expect(payload).toMatchObject({ event: 'task.state_changed', task: { id: task.id, state: 'rejected', resolved: true }, editor: { name: 'Mia Member' } });
    // Agrees with the reference implementation.
    expect(new Webhook(key).verify(got.body, got.headers as Record<string, string>)).toEqual(payload);
    expect(verifyWebhook(new TextEncoder().encode(got.body), new Headers(got.headers as Record<string, string>), [key], { kind: 'standard' }).task.id).toBe(task.id);

    const ts = Number(got.headers['webhook-timestamp']);
    expect(reasonOf(() => verifyWebhook(got.body.replace('"rejected"', '"done"'), got.headers, key))).toBe('bad-signature');
    expect(reasonOf(() => verifyWebhook(`${got.body} `, got.headers, key))).toBe('bad-signature');
    expect(reasonOf(() => verifyWebhook(got.body, got.headers, 'whsec_' + Buffer.alloc(24, 7).toString('base64')))).toBe('bad-signature');
    expect(reasonOf(() => verifyWebhook(got.body, { ...got.headers, 'webhook-id': 'msg_other' }, key))).toBe('bad-signature');
    expect(reasonOf(() => verifyWebhook(got.body, got.headers, key, { now: ts + 301 }))).toBe('timestamp-too-old');
    expect(verifyWebhook(got.body, got.headers, key, { now: ts + 299 }).task.id).toBe(task.id);
    expect(reasonOf(() => verifyWebhook(got.body, got.headers, key, { now: ts + 3600, toleranceSeconds: 600 }))).toBe('timestamp-too-old');
    expect(reasonOf(() => verifyWebhook(got.body, got.headers, key, { now: ts - 400 }))).toBe('timestamp-in-future');
    expect(reasonOf(() => verifyWebhook(got.body, { ...got.headers, 'webhook-signature': undefined }, key))).toBe('missing-header');
    expect(reasonOf(() => verifyWebhook(got.body, { ...got.headers, 'webhook-timestamp': 'yesterday' }, key))).toBe('bad-timestamp');
    // The kind is the receiver's configuration: a standard request does not pass as head, and vice versa.
    expect(reasonOf(() => verifyWebhook(got.body, got.headers, key, { kind: 'head' }))).toBe('missing-header');

    // A rotation: two signatures on one request, either secret is accepted.
    const rotated = await createWebhookKey(database, secrets(), { schemaName: schema, graceMs: 3_600_000 });
    await personSetsState(task.id, 'open');
    const next = await deliveredFor(task.id, 'task.state_changed').then(() => {
      const all = receiver.received.filter((r) => (JSON.parse(r.body) as WebhookPayload).task.id === task.id);
      return all.at(-1)!;
    });
    expect(String(next.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifyWebhook(next.body, next.headers, key).task.state).toBe('open');
    expect(verifyWebhook(next.body, next.headers, rotated.key).task.state).toBe('open');
  });

  test('the Standard Webhooks test vector (docs/webhooks.md) passes the signature check', () => {
    const headers = { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330', 'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' };
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    // The signature matches; the body is not a task-inbox event, so it is refused after that.
    expect(reasonOf(() => verifyWebhook(body, headers, secret, { now: 1614265330 }))).toBe('bad-body');
    expect(reasonOf(() => verifyWebhook(body.replace('4', '5'), headers, secret, { now: 1614265330 }))).toBe('bad-signature');
    expect(reasonOf(() => verifyWebhook(body, { ...headers, 'webhook-signature': `v1,bogus ${headers['webhook-signature']}` }, secret, { now: 1614265330 }))).toBe('bad-body');
  });
});

/*
 * The Python helpers of docs/integration.md (its ```python blocks that define something), run as
 * written with python3 against the same server: so the guide's code is known to work.
 */
const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const pythonSkip = python.error !== undefined || python.status !== 0 ? 'python3 is not on PATH' : dbKind !== 'pglite' ? 'once is enough: PGlite run only' : null;
if (pythonSkip === 'python3 is not on PATH' && dbKind === 'pglite') console.warn('\n  ⚠ python3 is not on PATH: the tests of the Python code in docs/integration.md are SKIPPED.\n');

const pythonDriver = `
import sys
cmd, args = sys.argv[1], json.loads(sys.argv[2])
def attempt(fn):
    try:
        return {"ok": fn()}
    except TaskInboxError as err:
        return {"status": err.status, "code": err.code, "detail": err.detail}
    except TimeoutError as err:
        return {"timeout": str(err)}
if cmd == "create":
    first = create_task(args["schema"], args["type"], {"from": "python"}, idempotency_key=args["key"])
    again = create_task(args["schema"], args["type"], {"from": "python"}, idempotency_key=args["key"])
    out = {"first": first, "again": again, "reused": attempt(lambda: create_task(args["schema"], args["type"], {"other": 1}, idempotency_key=args["key"]))}
elif cmd == "wait":
    out = attempt(lambda: wait_for_task(args["id"], args["timeout"], poll_s=args.get("poll", 55)))
elif cmd == "update":
    out = attempt(lambda: update_task(args["id"], args["meta"]))
elif cmd == "cancel":
    out = attempt(lambda: cancel_task(args["id"], args["reason"]))
elif cmd == "verify":
    out = [verify_standard(c["secrets"], c["headers"], c["body"].encode()) if c["kind"] == "standard" else verify_head(c["secrets"], c["headers"], c.get("header", "ti-key")) for c in args]
print(json.dumps(out))
`;

describe.skipIf(pythonSkip !== null)(`the Python code of docs/integration.md${pythonSkip ? ` — SKIPPED: ${pythonSkip}` : ''}`, () => {
  const guide = readFileSync('docs/integration.md', 'utf8');
  const blocks = [...guide.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^def |^class /m.test(b));
  const script = `${blocks.join('\n\n')}\n${pythonDriver}`;
  const run = (cmd: string, args: unknown): Promise<any> =>
    new Promise((resolve, reject) => {
      const child = spawn('python3', ['-c', script, cmd, JSON.stringify(args)], { env: { ...process.env, TI_URL: base, TI_API_KEY: apiKey }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`python3 ${cmd} exited ${code}:\n${err}`))));
    });

  test('the guide has the helpers', () => {
    expect(blocks.map((b) => [...b.matchAll(/^def (\w+)/gm)].map((m) => m[1])).flat()).toEqual(
      expect.arrayContaining(['ti_call', 'create_task', 'verify_standard', 'verify_head', 'wait_for_task', 'update_task', 'cancel_task']),
    );
  });

  test('create_task with an idempotency key, wait_for_task (a person decides meanwhile; a timeout; a missing task), update_task, cancel_task', async () => {
    const key = `py-${Math.random()}`;
    const created = await run('create', { schema: SCHEMA, type: 'flag-content', key });
    expect(created.again.id).toBe(created.first.id);
    expect(created.reused).toMatchObject({ status: 422, code: 'idempotency-key-reused' });
    const id = created.first.id as string;
    expect((await inbox.getTask(id)).task.meta).toEqual({ from: 'python' });

    expect(await run('wait', { id, timeout: 1.5, poll: 1 })).toEqual({ timeout: `task ${id} was not resolved within 1.5 s` });
    const waiting = run('wait', { id, timeout: 30 });
    await sleep(1000);
    await personSetsState(id, 'allow');
    expect((await waiting).ok).toMatchObject({ id, state: 'allow', resolved: true });
    expect(await run('wait', { id: '00000000-0000-4000-8000-000000000000', timeout: 5 })).toMatchObject({ status: 404, code: 'task-not-found' });

    const other = (await inbox.createTask({ schema: SCHEMA, type: 'flag-content', meta: { a: 1, b: 2 } })).task.id;
    expect((await run('update', { id: other, meta: { b: null, c: 3 } })).ok.meta).toEqual({ a: 1, c: 3 });
    expect((await run('cancel', { id: other, reason: 'done elsewhere' })).ok).toMatchObject({ resolved: true, cancelled: { reason: 'done elsewhere' } });
    expect(await run('cancel', { id, reason: 'too late' })).toMatchObject({ status: 409, code: 'task-resolved' });
  });

  test('verify_standard and verify_head accept real webhooks and refuse altered ones', async () => {
    for (const kind of ['standard', 'head'] as const) await installSchema(database, hookSchema(`py:${kind}`, kind, 'sync', receiver.url));
    const secrets = loadSecretBox(config);
    const std = (await createWebhookKey(database, secrets, { schemaName: 'py:standard', graceMs: 0 })).key;
    const head = (await createWebhookKey(database, secrets, { schemaName: 'py:head', graceMs: 0 })).key;
    const got: Record<string, { body: string; headers: Record<string, string> }> = {};
    for (const kind of ['standard', 'head'] as const) {
      const { task } = await inbox.createTask({ schema: `py:${kind}`, type: 'review', meta: { note: 'ünïcödé ✓' } });
      const before = receiver.received.length;
      await inbox.setState(task.id, 'done');
      const r = receiver.received.slice(before).find((x) => x.body.includes(task.id))!;
      got[kind] = { body: r.body, headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)])) };
    }
    const s = got.standard!;
    const h = got.head!;
    const old = { ...s.headers, 'webhook-timestamp': String(Number(s.headers['webhook-timestamp']) - 3600) };
    const cases = [
      { kind: 'standard', secrets: [std], ...s },
      { kind: 'standard', secrets: ['whsec_' + Buffer.alloc(24, 1).toString('base64'), std], ...s },
      { kind: 'standard', secrets: [std], headers: s.headers, body: s.body.replace('"done"', '"open"') },
      { kind: 'standard', secrets: ['whsec_' + Buffer.alloc(24, 1).toString('base64')], ...s },
      { kind: 'standard', secrets: [std], headers: old, body: s.body },
      { kind: 'head', secrets: [head], ...h },
      { kind: 'head', secrets: [head], headers: { ...h.headers, 'ti-key': `${head}x` }, body: h.body },
      { kind: 'head', secrets: ['another-key-of-16+chars'], ...h },
      { kind: 'head', secrets: [head], headers: {}, body: h.body },
    ];
    expect(await run('verify', cases)).toEqual([true, true, false, false, false, true, false, false, false]);
  });
});

const shellSkip = ['curl', 'jq'].find((c) => spawnSync(c, ['--version'], { encoding: 'utf8' }).status !== 0);
test.skipIf(shellSkip !== undefined || dbKind !== 'pglite')(
  `the curl long-poll loop of docs/integration.md waits for the decision${shellSkip ? ` — SKIPPED: ${shellSkip} is not installed` : ''}`,
  async () => {
    const loop = [...readFileSync('docs/integration.md', 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('?wait='))!;
    expect(loop).toBeDefined();
    const { task } = await inbox.createTask({ schema: SCHEMA, type: 'flag-content' });
    const child = spawn('bash', ['-c', loop], { env: { ...process.env, TI_URL: base, TI_API_KEY: apiKey, ID: task.id }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    await sleep(1500);
    expect(out).toBe(''); // still waiting
    await personSetsState(task.id, 'block');
    expect(await exited).toBe(0);
    expect(out).toBe('block\n');
  },
);

describe('the package', () => {
  test('the client loads nothing at run time but its own files and node:crypto (no zod, no server code)', () => {
    for (const file of readdirSync('src/client').filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(`src/client/${file}`, 'utf8');
      // `import type` / `export type` statements are erased from the JavaScript.
      const runtime = [...source.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gm)].filter((m) => !m[1]).map((m) => m[2]!);
      for (const spec of runtime) expect([`${file}: ${spec}`]).toEqual([expect.stringMatching(/: (node:crypto|\.\/[a-z-]+\.js)$/)]);
    }
  });

  const built = existsSync('dist/src/client/index.js') && existsSync('dist/src/client/index.d.ts');
  const title = "import('task-inbox/client') resolves to the built module, with its declarations";
  test.skipIf(!built || dbKind !== 'pglite')(built ? title : `${title} — SKIPPED: dist/src/client is not built (npm run build; npm ci builds it)`, () => {
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('task-inbox/client'); console.log(JSON.stringify(Object.keys(m).sort()))"], {
      cwd: process.cwd(),
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(expect.arrayContaining(['createClient', 'verifyWebhook', 'TaskInboxError', 'TaskWaitTimeoutError', 'WebhookVerificationError']));
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, { types: string; default: string }> };
    expect(existsSync(pkg.exports['./client']!.types)).toBe(true);
  });
});
