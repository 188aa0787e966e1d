/*
 * Issue 3, async webhooks (transactional outbox): retries while the receiver is down, order of
 * one task's events, waiting for a webhook key, 3xx / 410 / Retry-After / dead, firing only on an
 * actual change, and key rotation. Each test has its own database and its own `Webhooks`, which the
 * test drives with `runDue()` or a delivery worker.
 */
import type { FastifyInstance, InjectOptions } from 'fastify';
import net from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, expect, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import type { Config } from '../src/config.js';
import type { WebhookDelivery } from '../src/contract/index.js';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createUser, signIn } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { createWebhookKey, verifyStandard, Webhooks } from '../src/core/webhooks/index.js';
import type { Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { startDeliveryWorker } from '../src/worker/delivery-worker.js';
import { testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';
import { deadPort, startReceiver, type Received } from './helpers/receiver.js';

const SECRET_KEY = 'test-secret-key-of-at-least-32-characters';
const SCHEMA = 'acme:hooks';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Attempt {
  id: number;
  created: string;
  status_code: number | null;
  latency_ms: number;
  response_body: string | null;
  error: string | null;
}
interface DeliveryDetail {
  delivery: WebhookDelivery;
  attempts: Attempt[];
  payload: Record<string, unknown>;
}

interface Env {
  app: FastifyInstance;
  database: Database;
  config: Config;
  webhooks: Webhooks;
  /** With the API key: the integration API (tasks). */
  call(opts: InjectOptions): Promise<{ statusCode: number; json(): any; body: string }>;
  /** With a signed-in admin's session cookie: the delivery log. */
  admin(opts: InjectOptions): Promise<{ statusCode: number; json(): any; body: string }>;
  cli(args: string[]): Promise<{ code: number; out: string; err: string }>;
  createTask(state?: string | null, schema?: string): Promise<string>;
  setState(id: string, state: string | null): Promise<{ statusCode: number; json(): any; body: string }>;
  /** The deliveries of one task (or all), oldest first. */
  deliveries(query?: Record<string, string>): Promise<WebhookDelivery[]>;
  delivery(id: number): Promise<DeliveryDetail>;
  newKey(schema?: string): Promise<string>;
}

/** A fresh database, config from `env`, one `Webhooks` that the app and the test share. */
async function setup(env: Record<string, string> = {}): Promise<Env> {
  const { database } = await createTestDatabase();
  const config = testConfig(env);
  const webhooks = new Webhooks({ database, config, secrets: loadSecretBox(config) });
  const { key } = await createApiKey(database, { name: 'test' });
  await createUser(database, cliActor, { username: 'admin', name: 'Ada Admin', role: 'admin', password: 'admin-password-1' });
  const { token } = await signIn(database, config, { username: 'admin', password: 'admin-password-1', ip: '127.0.0.1' });
  const app = await buildApp({ config, database, webhooks });
  await app.ready();
  cleanups.push(async () => {
    await app.close();
    await database.close();
  });
  const call: Env['call'] = (opts) => app.inject({ ...opts, headers: { 'api-key': key, ...(opts.headers ?? {}) } });
  const admin: Env['admin'] = (opts) => app.inject({ ...opts, headers: { cookie: `ti_session=${token}`, ...(opts.headers ?? {}) } });
  const e: Env = {
    app,
    database,
    config,
    webhooks,
    call,
    admin,
    async cli(args) {
      let out = '';
      let err = '';
      const code = await runCli(args, {
        out: (s) => void (out += s),
        err: (s) => void (err += s),
        env: { LOG_LEVEL: 'silent', SECRET_KEY, ...env },
        database,
      });
      return { code, out, err };
    },
    async createTask(state = 'open', schema = SCHEMA) {
      const res = await call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: schema, task: 'review', state } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().task.id as string;
    },
    setState(id, state) {
      return call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=${encodeURIComponent(state ?? '')}` });
    },
    async deliveries(query = {}) {
      const res = await admin({ method: 'GET', url: `/api/v1/deliveries/?${new URLSearchParams({ limit: '200', ...query })}` });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json().deliveries as WebhookDelivery[]).reverse();
    },
    async delivery(id) {
      const res = await admin({ method: 'GET', url: `/api/v1/deliveries/${id}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as DeliveryDetail;
    },
    async newKey(schema = SCHEMA) {
      const created = await createWebhookKey(database, loadSecretBox(config), { schemaName: schema, graceMs: config.webhookRotationGraceMs });
      return created.key;
    },
  };
  return e;
}

function schemaYaml(opts: { url: string; mode?: 'sync' | 'async'; auth?: 'standard' | null; name?: string }): string {
  const auth = opts.auth === null ? '' : `hook_auth:\n  kind: ${opts.auth ?? 'standard'}\n`;
  return `name: '${opts.name ?? SCHEMA}'
semver: '1'
default_hook_url: '${opts.url}'
hook_mode: ${opts.mode ?? 'async'}
${auth}tasktypes:
- name: review
  pending_states: ['open', 'held']
  resolved_states: ['done']
`;
}

/** Polls `fn` until it returns something truthy. */
async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Runs `runDue` (and waits a little between rounds) until `done` holds. */
async function drain(e: Env, what: string, done: () => Promise<boolean>, ms = 10_000) {
  await until(what, async () => {
    await e.webhooks.runDue();
    return done();
  }, ms);
}

const header = (r: Received, name: string) => String(r.headers[name]);
const bodyOf = (r: Received) => JSON.parse(r.body) as { task: { id: string; state: string | null }; previous: { state: string | null }; history_id: number };

/** Accepts connections on `port` and pipes them to `target`: a receiver that comes up on a known port. */
async function forward(port: number, target: number) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    const up = net.connect(target, '127.0.0.1');
    sockets.add(sock).add(up);
    sock.pipe(up).pipe(sock);
    sock.on('error', () => up.destroy());
    up.on('error', () => sock.destroy());
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
}

const retries = (n: number, each: string) => Array.from({ length: n }, () => each).join(',');

test('receiver down, then up: the change is answered at once, and every event is delivered after recovery', async () => {
  const port = await deadPort();
  const url = `http://127.0.0.1:${port}/hook`;
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: retries(30, '100ms') });
  await installSchema(e.database, schemaYaml({ url }));
  const secret = await e.newKey();

  const t1 = await e.createTask('open');
  const t2 = await e.createTask('open');
  for (const [id, state] of [[t1, 'held'], [t1, 'open'], [t2, 'held']] as const) {
    const started = Date.now();
    const res = await e.setState(id, state);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().task.state).toBe(state);
    expect(Date.now() - started).toBeLessThan(2000);
  }
  const [d1, d2] = await e.deliveries({ task: t1 });
  const [d3] = await e.deliveries({ task: t2 });
  expect([d1!.status, d2!.status, d3!.status]).toEqual(['pending', 'pending', 'pending']);

  // While the receiver is down, attempts fail and are logged with the network error.
  await until('two failed attempts of the first delivery of each task', async () => {
    await e.webhooks.runDue();
    const a = (await e.delivery(d1!.id)).delivery;
    const c = (await e.delivery(d3!.id)).delivery;
    return a.attempts >= 2 && c.attempts >= 2;
  });
  for (const d of [d1!, d3!]) {
    const detail = await e.delivery(d.id);
    expect(detail.delivery.status).toBe('pending');
    expect(detail.delivery.last_status).toBeNull();
    expect(detail.delivery.last_error).toMatch(/ECONNREFUSED|connect/i);
    for (const a of detail.attempts) {
      expect(a.status_code).toBeNull();
      expect(a.error).toMatch(/ECONNREFUSED|connect/i);
    }
  }
  // The second event of t1 waits behind the first: nothing is sent out of order.
  expect((await e.delivery(d2!.id)).attempts).toEqual([]);

  // Up again: the first request it gets is refused once (with Retry-After: 1, so the retry has a new timestamp).
  const receiver = await startReceiver((_r, n) => (n === 1 ? { status: 500, body: 'busy', headers: { 'retry-after': '1' } } : { status: 200, body: 'ok' }));
  cleanups.push(() => receiver.close());
  cleanups.push(await forward(port, receiver.port));

  await drain(e, 'all three deliveries delivered', async () => (await e.deliveries()).every((d) => d.status === 'delivered'));
  expect(receiver.received).toHaveLength(4);

  const all = await e.deliveries();
  expect(new Set(receiver.received.map((r) => header(r, 'webhook-id')))).toEqual(new Set(all.map((d) => d.webhook_id)));
  for (const r of receiver.received) {
    expect(verifyStandard([secret], header(r, 'webhook-id'), Number(header(r, 'webhook-timestamp')), r.body, header(r, 'webhook-signature'))).toBe(true);
  }

  // The refused one came again with the same webhook-id and body, and a newer timestamp.
  const first = receiver.received[0]!;
  const again = receiver.received.filter((r) => header(r, 'webhook-id') === header(first, 'webhook-id'));
  expect(again).toHaveLength(2);
  expect(again[1]!.body).toBe(again[0]!.body);
  expect(Number(header(again[1]!, 'webhook-timestamp'))).toBeGreaterThan(Number(header(again[0]!, 'webhook-timestamp')));

  // Each delivery's log: failed attempts, then one success at the end.
  for (const d of all) {
    const detail = await e.delivery(d.id);
    expect(detail.delivery.status).toBe('delivered');
    expect(detail.delivery.delivered_at).not.toBeNull();
    expect(detail.delivery.attempts).toBe(detail.attempts.length);
    const last = detail.attempts.at(-1)!;
    expect(last).toMatchObject({ status_code: 200, error: null, response_body: 'ok' });
    for (const a of detail.attempts.slice(0, -1)) expect(a.status_code === null ? a.error : a.status_code).not.toBe(200);
  }
  for (const d of [d1!, d3!]) expect((await e.delivery(d.id)).attempts.filter((a) => a.error !== null).length).toBeGreaterThanOrEqual(2);

  // t1's events arrived in order.
  const accepted = receiver.received.slice(1);
  expect(accepted.map(bodyOf).filter((b) => b.task.id === t1).map((b) => b.task.state)).toEqual(['held', 'open']);
});

test('ten rapid changes of one task reach the receiver in order, one at a time, with two workers running', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: retries(5, '100ms') });
  let inFlight = 0;
  let maxInFlight = 0;
  const receiver = await startReceiver(async (_r, n) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(15);
    inFlight--;
    return n === 3 ? { status: 500, body: 'once' } : { status: 200 };
  });
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url }));
  const secret = await e.newKey();

  const other = new Webhooks({ database: e.database, config: e.config, secrets: loadSecretBox(e.config) });
  const w1 = startDeliveryWorker(e.webhooks, { pollMs: 50 });
  const w2 = startDeliveryWorker(other, { pollMs: 50 });
  cleanups.push(() => w1.stop(), () => w2.stop());

  const id = await e.createTask('open');
  const states = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 'held' : 'open'));
  for (const s of states) {
    const res = await e.setState(id, s);
    expect(res.statusCode, res.body).toBe(200);
  }
  await receiver.waitFor(11);
  await sleep(300);
  await w1.stop();
  await w2.stop();

  expect(receiver.received).toHaveLength(11);
  expect(maxInFlight).toBe(1);
  // The third request was refused; its retry came before anything newer.
  expect(header(receiver.received[3]!, 'webhook-id')).toBe(header(receiver.received[2]!, 'webhook-id'));
  const accepted = receiver.received.filter((_, i) => i !== 2);
  const bodies = accepted.map(bodyOf);
  expect(bodies.map((b) => b.task.state)).toEqual(states);
  expect(bodies.map((b) => b.previous.state)).toEqual(['open', ...states.slice(0, -1)]);
  for (let i = 1; i < bodies.length; i++) expect(bodies[i]!.history_id).toBeGreaterThan(bodies[i - 1]!.history_id);
  expect(new Set(accepted.map((r) => header(r, 'webhook-id'))).size).toBe(10);
  for (const r of receiver.received) {
    expect(verifyStandard([secret], header(r, 'webhook-id'), Number(header(r, 'webhook-timestamp')), r.body, header(r, 'webhook-signature'))).toBe(true);
  }

  const history = (await e.call({ method: 'GET', url: `/api/v1/tasks/${id}/history` })).json().history as { id: number; state: string }[];
  const changes = history.filter((h) => bodies.some((b) => b.history_id === h.id));
  expect(changes.map((h) => h.state)).toEqual(states);
  expect((await e.deliveries({ task: id })).map((d) => [d.status, d.history_id])).toEqual(bodies.map((b) => ['delivered', b.history_id]));
});

test('a hooked async schema with no webhook key: the delivery waits, uncounted, and goes out once a key is created', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: '100ms' });
  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url }));

  const id = await e.createTask('open');
  const res = await e.setState(id, 'held');
  expect(res.statusCode, res.body).toBe(200);
  expect(res.json().task.state).toBe('held');

  expect(await e.webhooks.runDue()).toBe(1);
  const [waiting] = await e.deliveries({ task: id });
  expect(waiting).toMatchObject({ status: 'pending', attempts: 0, last_status: null, last_error: 'waiting for a webhook key' });
  expect(new Date(waiting!.next_attempt_at!).getTime()).toBeGreaterThan(Date.now() + 30_000);
  expect((await e.delivery(waiting!.id)).attempts).toEqual([]);
  expect(await e.webhooks.runDue()).toBe(0);
  expect(receiver.received).toHaveLength(0);

  const worker = startDeliveryWorker(e.webhooks, { pollMs: 50 });
  cleanups.push(() => worker.stop());
  await sleep(200);
  expect(receiver.received).toHaveLength(0);

  const created = await e.cli(['webhook_key', SCHEMA]);
  expect(created.code, created.err).toBe(0);
  const secret = created.out.trim();
  expect(secret).toMatch(/^whsec_/);

  const [r] = await receiver.waitFor(1, 3000);
  expect(header(r!, 'webhook-id')).toBe(waiting!.webhook_id);
  expect(verifyStandard([secret], header(r!, 'webhook-id'), Number(header(r!, 'webhook-timestamp')), r!.body, header(r!, 'webhook-signature'))).toBe(true);
  await until('the delivery is marked delivered', async () => (await e.delivery(waiting!.id)).delivery.status === 'delivered');
  const done = await e.delivery(waiting!.id);
  expect(done.delivery.attempts).toBe(1);
  expect(done.attempts).toHaveLength(1);
});

test('3xx is a failure and its redirect is not followed', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: retries(5, '100ms') });
  const elsewhere = await startReceiver();
  const receiver = await startReceiver(() => ({ status: 302, body: 'moved', headers: { location: elsewhere.url } }));
  cleanups.push(() => receiver.close(), () => elsewhere.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url, auth: null }));

  const id = await e.createTask('open');
  expect((await e.setState(id, 'held')).statusCode).toBe(200);
  expect(await e.webhooks.runDue()).toBe(1);
  const [d] = await e.deliveries({ task: id });
  expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status: 302 });
  expect((await e.delivery(d!.id)).attempts).toMatchObject([{ status_code: 302, response_body: 'moved' }]);

  await drain(e, 'a retry after the 302', async () => receiver.received.length >= 2);
  expect((await e.delivery(d!.id)).delivery.status).toBe('pending');
  expect(elsewhere.received).toHaveLength(0);
});

test('410 pauses the delivery and disables the endpoint until `endpoints enable URL`', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: retries(5, '100ms') });
  const receiver = await startReceiver(() => ({ status: 410, body: 'gone' }));
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url, auth: null }));

  const t1 = await e.createTask('open');
  const t2 = await e.createTask('open');
  expect((await e.setState(t1, 'held')).statusCode).toBe(200);
  expect(await e.webhooks.runDue()).toBe(1);
  const [paused] = await e.deliveries({ task: t1 });
  expect(paused).toMatchObject({ status: 'paused', attempts: 1, last_status: 410, next_attempt_at: null });
  const listed = await e.cli(['endpoints', 'list', '--json']);
  expect(listed.code, listed.err).toBe(0);
  expect(JSON.parse(listed.out)).toMatchObject([{ url: receiver.url }]);

  // Later deliveries to that endpoint, of this task or another, are not sent.
  expect((await e.setState(t2, 'held')).statusCode).toBe(200);
  expect((await e.setState(t1, 'open')).statusCode).toBe(200);
  for (let i = 0; i < 3; i++) {
    expect(await e.webhooks.runDue()).toBe(0);
    await sleep(120);
  }
  expect(receiver.received).toHaveLength(1);
  for (const d of (await e.deliveries()).filter((d) => d.id !== paused!.id)) expect(d).toMatchObject({ status: 'pending', attempts: 0 });
  expect((await e.delivery(paused!.id)).delivery.status).toBe('paused');

  receiver.setAnswer(() => ({ status: 200 }));
  const enabled = await e.cli(['endpoints', 'enable', receiver.url]);
  expect(enabled.code, enabled.err).toBe(0);
  await drain(e, 'every delivery delivered after enabling', async () => (await e.deliveries()).every((d) => d.status === 'delivered'));
  expect(receiver.received).toHaveLength(4);
  expect(header(receiver.received[1]!, 'webhook-id') === paused!.webhook_id || header(receiver.received[2]!, 'webhook-id') === paused!.webhook_id).toBe(true);
  const t1Bodies = receiver.received.slice(1).map(bodyOf).filter((b) => b.task.id === t1);
  expect(t1Bodies.map((b) => b.task.state)).toEqual(['held', 'open']);
  const after = await e.cli(['endpoints', 'list', '--json']);
  expect(JSON.parse(after.out)).toEqual([]);
});

test('Retry-After: 2 delays the next attempt at least 2 s', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: retries(5, '100ms') });
  const receiver = await startReceiver((_r, n) => (n === 1 ? { status: 503, headers: { 'retry-after': '2' } } : { status: 200 }));
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url, auth: null }));

  const id = await e.createTask('open');
  expect((await e.setState(id, 'held')).statusCode).toBe(200);
  const before = Date.now();
  expect(await e.webhooks.runDue()).toBe(1);
  const [d] = await e.deliveries({ task: id });
  expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status: 503 });
  const next = new Date(d!.next_attempt_at!).getTime();
  expect(next).toBeGreaterThanOrEqual(before + 2000);
  expect(next).toBeLessThan(Date.now() + 2500);

  await sleep(300);
  expect(await e.webhooks.runDue()).toBe(0);
  expect(receiver.received).toHaveLength(1);
  await drain(e, 'delivered after Retry-After', async () => (await e.delivery(d!.id)).delivery.status === 'delivered');
  expect(receiver.received).toHaveLength(2);
  expect(receiver.received[1]!.at - receiver.received[0]!.at).toBeGreaterThanOrEqual(2000);
});

test('after the last retry of the schedule the delivery is dead', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: '100ms,200ms' });
  const receiver = await startReceiver(() => ({ status: 500, body: 'down' }));
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url, auth: null }));

  const id = await e.createTask('open');
  expect((await e.setState(id, 'held')).statusCode).toBe(200);
  await drain(e, 'the delivery to die', async () => (await e.deliveries({ task: id }))[0]!.status === 'dead');
  const detail = await e.delivery((await e.deliveries({ task: id }))[0]!.id);
  expect(detail.delivery).toMatchObject({ status: 'dead', attempts: 3, last_status: 500, next_attempt_at: null, delivered_at: null });
  expect(detail.attempts.map((a) => a.status_code)).toEqual([500, 500, 500]);
  expect(receiver.received).toHaveLength(3);
  await sleep(300);
  expect(await e.webhooks.runDue()).toBe(0);
  expect(receiver.received).toHaveLength(3);
  expect((await e.deliveries({ status: 'dead' })).map((d) => d.id)).toEqual([detail.delivery.id]);
});

test('both modes fire only on an actual change', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: '100ms' });
  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url, auth: null, mode: 'async', name: 'acme:async' }));
  await installSchema(e.database, schemaYaml({ url: receiver.url, auth: null, mode: 'sync', name: 'acme:sync' }));
  const count = async () => Number((await e.database.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_deliveries'))[0]!.n);

  const a = await e.createTask('open', 'acme:async');
  const s = await e.createTask('open', 'acme:sync');
  const an = await e.createTask(null, 'acme:async');
  const sn = await e.createTask(null, 'acme:sync');
  expect(await count()).toBe(0);

  for (const [id, state] of [[a, 'open'], [s, 'open'], [an, null], [sn, null]] as const) {
    const res = await e.setState(id, state);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().task.state).toBe(state);
  }
  expect(await count()).toBe(0);
  expect(await e.webhooks.runDue()).toBe(0);
  expect(receiver.received).toHaveLength(0);

  expect((await e.setState(a, 'held')).statusCode).toBe(200);
  expect((await e.setState(s, 'held')).statusCode).toBe(200);
  expect(await count()).toBe(2);
  expect(receiver.received).toHaveLength(1); // the sync one, while the change was made
  expect((await e.setState(a, 'held')).statusCode).toBe(200);
  expect((await e.setState(s, 'held')).statusCode).toBe(200);
  expect(await count()).toBe(2);
  await drain(e, 'the async delivery', async () => receiver.received.length === 2);
  await sleep(150);
  expect(await e.webhooks.runDue()).toBe(0);
  expect(receiver.received).toHaveLength(2);
});

test('rotation: both keys sign during the grace period; after revoking the old one, only the new one', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: '100ms' });
  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url }));

  const first = await e.cli(['webhook_key', SCHEMA, '--json']);
  expect(first.code, first.err).toBe(0);
  const oldKey = JSON.parse(first.out) as { id: string; key: string };
  const id = await e.createTask('open');

  const deliverNext = async (state: string) => {
    const n = receiver.received.length;
    expect((await e.setState(id, state)).statusCode).toBe(200);
    await drain(e, `the change to ${state}`, async () => receiver.received.length > n);
    const r = receiver.received[n]!;
    const ts = Number(header(r, 'webhook-timestamp'));
    const sig = header(r, 'webhook-signature');
    return { r, ts, sig, ok: (secret: string) => verifyStandard([secret], header(r, 'webhook-id'), ts, r.body, sig) };
  };
  const viaPackage = (secret: string, r: Received) => {
    try {
      new Webhook(secret).verify(r.body, { 'webhook-id': header(r, 'webhook-id'), 'webhook-timestamp': header(r, 'webhook-timestamp'), 'webhook-signature': header(r, 'webhook-signature') });
      return true;
    } catch {
      return false;
    }
  };

  const before = await deliverNext('held');
  expect(before.sig.split(' ')).toHaveLength(1);
  expect(before.ok(oldKey.key)).toBe(true);

  const rotated = await e.cli(['webhook-key', 'rotate', SCHEMA, '--json']);
  expect(rotated.code, rotated.err).toBe(0);
  const newKey = JSON.parse(rotated.out) as { id: string; key: string };
  expect(newKey.key).toMatch(/^whsec_/);
  expect(newKey.key).not.toBe(oldKey.key);
  const keys = JSON.parse((await e.cli(['webhook-key', 'list', '--json'])).out) as { id: string; expires: string | null; revoked: string | null }[];
  expect(keys.find((k) => k.id === oldKey.id)!.expires).not.toBeNull();
  expect(keys.find((k) => k.id === newKey.id)!.expires).toBeNull();

  const during = await deliverNext('open');
  const sigs = during.sig.split(' ');
  expect(sigs).toHaveLength(2);
  expect(during.ok(oldKey.key)).toBe(true);
  expect(during.ok(newKey.key)).toBe(true);
  expect(sigs.filter((s) => verifyStandard([oldKey.key], header(during.r, 'webhook-id'), during.ts, during.r.body, s))).toHaveLength(1);
  expect(sigs.filter((s) => verifyStandard([newKey.key], header(during.r, 'webhook-id'), during.ts, during.r.body, s))).toHaveLength(1);
  expect(viaPackage(oldKey.key, during.r) && viaPackage(newKey.key, during.r)).toBe(true);

  const revoked = await e.cli(['webhook-key', 'revoke', oldKey.id]);
  expect(revoked.code, revoked.err).toBe(0);
  const after = await deliverNext('held');
  expect(after.sig.split(' ')).toHaveLength(1);
  expect(after.ok(newKey.key)).toBe(true);
  expect(after.ok(oldKey.key)).toBe(false);
  expect(viaPackage(newKey.key, after.r)).toBe(true);
  expect(viaPackage(oldKey.key, after.r)).toBe(false);
});

test('rotation: the old key stops signing by itself when the grace period ends', async () => {
  const e = await setup({ WEBHOOK_RETRY_SCHEDULE: '100ms', WEBHOOK_ROTATION_GRACE: '1s' });
  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  await installSchema(e.database, schemaYaml({ url: receiver.url }));
  const oldKey = await e.newKey();
  const rotated = await e.cli(['webhook-key', 'rotate', SCHEMA, '--json']);
  expect(rotated.code, rotated.err).toBe(0);
  const newKey = (JSON.parse(rotated.out) as { key: string }).key;
  await sleep(1100);

  const id = await e.createTask('open');
  expect((await e.setState(id, 'held')).statusCode).toBe(200);
  await drain(e, 'the delivery', async () => receiver.received.length === 1);
  const r = receiver.received[0]!;
  const sig = header(r, 'webhook-signature');
  expect(sig.split(' ')).toHaveLength(1);
  const ts = Number(header(r, 'webhook-timestamp'));
  expect(verifyStandard([newKey], header(r, 'webhook-id'), ts, r.body, sig)).toBe(true);
  expect(verifyStandard([oldKey], header(r, 'webhook-id'), ts, r.body, sig)).toBe(false);
});
