/*
 * Issue 3, delivery log and redelivery through the API and the CLI, and webhook keys kept secret:
 * never in logs (captured at LOG_LEVEL trace), API answers or CLI listings after creation, and
 * stored encrypted. The tests of this file run in order on one database.
 */
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import type { Config } from '../src/config.js';
import type { WebhookDelivery } from '../src/contract/index.js';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createUser, signIn } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { createSecretBox, loadSecretBox } from '../src/core/secrets/secret-box.js';
import { verifyStandard, Webhooks } from '../src/core/webhooks/index.js';
import type { Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { startDeliveryWorker } from '../src/worker/delivery-worker.js';
import { testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';
import { startReceiver, type Received, type Receiver } from './helpers/receiver.js';

const SECRET_KEY = 'test-secret-key-of-at-least-32-characters';
const ENV = { LOG_LEVEL: 'trace', WEBHOOK_RETRY_SCHEDULE: '50ms', SECRET_KEY };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let database: Database;
let config: Config;
let webhooks: Webhooks;
let app: FastifyInstance;
let apiKey: string;
let otherKey: string;
/** The session cookie of a signed-in admin: the delivery log is for admins only. */
let adminCookie: string;
let recvA: Receiver;
let recvB: Receiver;
/** Secrets created through the CLI: they must never be shown again. */
let alphaKey = '';
let betaKey = '';
/** Tasks whose events the receivers refuse (500). */
const refuse = new Set<string>();
/** Everything the server logged. */
let logs = '';
/** Every API answer and every CLI output after the keys were created. */
const seen: string[] = [];

interface Res {
  statusCode: number;
  body: string;
  json(): any;
}

/**
 * `app.inject` with credentials, recording the answer. By default the API key (the integration
 * API: tasks); `key: '…'` sends that key instead, `key: null` none; `cookie: '…'` sends only that
 * cookie. `admin` is a call with the admin's cookie only: the delivery log.
 */
async function call(opts: InjectOptions & { key?: string | null; cookie?: string }): Promise<Res> {
  const { key, cookie, ...req } = opts;
  const headers = { ...(req.headers ?? {}) } as Record<string, string>;
  if (cookie !== undefined) headers.cookie = cookie;
  else if (key !== null) headers['api-key'] = key ?? apiKey;
  const res = await app.inject({ ...req, headers });
  seen.push(res.body);
  return res;
}

const admin = (opts: InjectOptions) => call({ ...opts, cookie: adminCookie });

async function cli(args: string[], opts: { record?: boolean } = {}) {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => void (out += s), err: (s) => void (err += s), env: ENV, database });
  if (opts.record !== false) seen.push(out, err);
  return { code, out, err };
}

async function ok(args: string[], opts: { record?: boolean } = {}) {
  const r = await cli(args, opts);
  expect(r.code, `task-inbox ${args.join(' ')}\n${r.out}\n${r.err}`).toBe(0);
  return r;
}

const schemaYaml = (name: string, url: string, auth: string) => `name: '${name}'
semver: '1'
default_hook_url: '${url}'
hook_mode: async
hook_auth:
${auth}
tasktypes:
- name: review
  pending_states: ['open', 'held']
  resolved_states: ['done']
`;

/** Answers 500 for refused tasks, 403 when `check` fails, otherwise 200. */
const answer = (check: (r: Received) => boolean) => (r: Received) => {
  if (refuse.has((JSON.parse(r.body) as { task: { id: string } }).task.id)) return { status: 500, body: 'nope' };
  return check(r) ? { status: 200, body: 'ok' } : { status: 403, body: 'bad key' };
};
const header = (r: Received, name: string) => String(r.headers[name]);
const standardOk = (secret: string, r: Received) =>
  verifyStandard([secret], header(r, 'webhook-id'), Number(header(r, 'webhook-timestamp')), r.body, header(r, 'webhook-signature'));

beforeAll(async () => {
  ({ database } = await createTestDatabase());
  config = testConfig(ENV);
  webhooks = new Webhooks({ database, config, secrets: loadSecretBox(config) });
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs += chunk.toString();
      done();
    },
  });
  app = await buildApp({ config, database, webhooks, logStream });
  await app.ready();

  recvA = await startReceiver(answer((r) => r.headers['ti-key'] === alphaKey));
  recvB = await startReceiver(answer((r) => standardOk(betaKey, r)));
  await installSchema(database, schemaYaml('acme:alpha', recvA.url, '  kind: head\n  val: ti-key'));
  await installSchema(database, schemaYaml('acme:beta', recvB.url, '  kind: standard'));
  await installSchema(database, `name: 'acme:other'\nsemver: '1'\ntasktypes:\n- name: review\n  resolved_states: ['done']\n`);
  apiKey = (await createApiKey(database, { name: 'admin' })).key;
  otherKey = (await createApiKey(database, { name: 'other', schemaName: 'acme:other' })).key;
  await createUser(database, cliActor, { username: 'admin', name: 'Ada Admin', role: 'admin', password: 'admin-password-1' });
  adminCookie = `ti_session=${(await signIn(database, config, { username: 'admin', password: 'admin-password-1', ip: '127.0.0.1' })).token}`;

  alphaKey = (await ok(['webhook_key', 'acme:alpha'], { record: false })).out.trim();
  betaKey = (JSON.parse((await ok(['webhook_key', 'acme:beta', '--json'], { record: false })).out) as { key: string }).key;
  expect(alphaKey.length).toBeGreaterThanOrEqual(16);
  expect(betaKey).toMatch(/^whsec_/);
});

afterAll(async () => {
  await app?.close();
  await recvA?.close();
  await recvB?.close();
  await database?.close();
});

async function createTask(schema: string): Promise<string> {
  const res = await call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: schema, task: 'review', state: 'open' } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().task.id as string;
}

async function change(id: string, state = 'held') {
  const res = await call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=${state}` });
  expect(res.statusCode, res.body).toBe(200);
}

async function list(query: Record<string, string> = {}): Promise<WebhookDelivery[]> {
  const res = await admin({ method: 'GET', url: `/api/v1/deliveries/?${new URLSearchParams(query)}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().deliveries as WebhookDelivery[];
}

const pendingCount = async () =>
  Number((await database.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending'"))[0]!.n);

/** Sends until nothing is pending. */
async function drain(ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    await webhooks.runDue();
    if ((await pendingCount()) === 0) return;
    if (Date.now() > deadline) throw new Error('deliveries still pending');
    await sleep(25);
  }
}

const ids = (ds: { id: number }[]) => ds.map((d) => d.id).sort((a, b) => a - b);

describe('delivery log and redelivery', () => {
  let a1: string;
  let a2: string;
  let b1: string;
  /** Delivery of each task's first change. */
  const d: Record<string, WebhookDelivery> = {};

  beforeAll(async () => {
    a1 = await createTask('acme:alpha');
    a2 = await createTask('acme:alpha');
    b1 = await createTask('acme:beta');
    refuse.add(a2);
    await change(a1);
    await change(a2);
    await change(b1);
    await drain();
    for (const [name, task] of [['a1', a1], ['a2', a2], ['b1', b1]] as const) d[name] = (await list({ task }))[0]!;
  });

  test('the deliveries went out as expected: two delivered, one dead after its retry', () => {
    expect(d.a1).toMatchObject({ status: 'delivered', attempts: 1, schema_name: 'acme:alpha', mode: 'async', url: recvA.url });
    expect(d.b1).toMatchObject({ status: 'delivered', attempts: 1, schema_name: 'acme:beta', url: recvB.url });
    expect(d.a2).toMatchObject({ status: 'dead', attempts: 2, last_status: 500 });
    expect(recvA.received.every((r) => r.headers['ti-key'] === alphaKey)).toBe(true);
    expect(recvB.received.every((r) => standardOk(betaKey, r))).toBe(true);
  });

  test('API: list filtered by task, schema and status', async () => {
    expect(ids(await list())).toEqual(ids([d.a1!, d.a2!, d.b1!]));
    expect(ids(await list({ task: a1 }))).toEqual([d.a1!.id]);
    expect(ids(await list({ schema: 'acme:alpha' }))).toEqual(ids([d.a1!, d.a2!]));
    expect(ids(await list({ schema: 'acme:beta' }))).toEqual([d.b1!.id]);
    expect(ids(await list({ status: 'dead' }))).toEqual([d.a2!.id]);
    expect(ids(await list({ status: 'delivered' }))).toEqual(ids([d.a1!, d.b1!]));
    expect(ids(await list({ schema: 'acme:alpha', status: 'delivered' }))).toEqual([d.a1!.id]);
    expect(await list({ status: 'pending' })).toEqual([]);
    expect(await list({ schema: 'acme:other' })).toEqual([]);
    const bad = await admin({ method: 'GET', url: '/api/v1/deliveries/?status=lost' });
    expect(bad.statusCode).toBe(400);
  });

  test('CLI: list filtered by task, schema and status', async () => {
    const json = async (...args: string[]) => JSON.parse((await ok(['deliveries', 'list', ...args, '--json'])).out) as WebhookDelivery[];
    expect(ids(await json('--task', a1))).toEqual([d.a1!.id]);
    expect(ids(await json('--schema', 'acme:beta'))).toEqual([d.b1!.id]);
    expect(ids(await json('--status', 'dead'))).toEqual([d.a2!.id]);
    expect(ids(await json('--schema', 'acme:alpha', '--status', 'delivered'))).toEqual([d.a1!.id]);
    const text = (await ok(['deliveries'])).out;
    expect(text).toMatch(/^ID\s+CREATED\s+MODE\s+SCHEMA\s+TASK\s+STATUS/);
    for (const x of [d.a1!, d.a2!, d.b1!]) expect(text).toContain(x.task_id!);
    expect(text).toContain('dead');
    const wrong = await cli(['deliveries', '--status', 'lost']);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/--status: must be one of pending, delivered, failed, dead, paused/);
  });

  test('show: one delivery with every attempt and the payload sent (API and CLI)', async () => {
    const res = await admin({ method: 'GET', url: `/api/v1/deliveries/${d.a2!.id}` });
    expect(res.statusCode, res.body).toBe(200);
    const shown = res.json() as { delivery: WebhookDelivery; attempts: Record<string, unknown>[]; payload: any };
    expect(shown.delivery).toMatchObject({ id: d.a2!.id, status: 'dead', attempts: 2 });
    expect(shown.attempts).toHaveLength(2);
    for (const a of shown.attempts) {
      expect(a).toMatchObject({ status_code: 500, response_body: 'nope', error: null });
      expect(a.latency_ms).toBeTypeOf('number');
      expect(Number.isNaN(Date.parse(a.created as string))).toBe(false);
    }
    const sent = recvA.received.filter((r) => header(r, 'webhook-id') === d.a2!.webhook_id);
    expect(sent).toHaveLength(2);
    expect(shown.payload).toEqual(JSON.parse(sent[0]!.body));
    expect(shown.payload).toMatchObject({ event: 'task.state_changed', ttype: 'review', task: { id: a2, state: 'held' }, previous: { state: 'open', resolved: false } });
    expect(shown.payload.history_id).toBe(d.a2!.history_id);

    const viaCli = JSON.parse((await ok(['deliveries', 'show', String(d.a2!.id), '--json'])).out);
    expect(viaCli).toEqual(shown);
    const text = (await ok(['deliveries', 'show', String(d.a2!.id)])).out;
    expect(text).toContain(d.a2!.webhook_id);
    expect(text).toMatch(/dead after 2 attempt/);
    expect(text).toContain('nope');
    expect(text).toContain(`Payload: ${JSON.stringify(shown.payload)}`);

    expect((await admin({ method: 'GET', url: '/api/v1/deliveries/999999' })).statusCode).toBe(404);
    const missing = await cli(['deliveries', 'show', '999999']);
    expect(missing.code).toBe(1);
  });

  test('API keys (limited to a schema or not) get 401 from every delivery route, a signed-in member 403; nothing is redelivered', async () => {
    await createUser(database, cliActor, { username: 'mia', name: 'Mia Member', role: 'member', password: 'member-password-1' });
    const memberCookie = `ti_session=${(await signIn(database, config, { username: 'mia', password: 'member-password-1', ip: '127.0.0.1' })).token}`;
    const before = await list();
    const since = { since: '2000-01-01T00:00:00Z' };
    const routes: InjectOptions[] = [
      { method: 'GET', url: '/api/v1/deliveries/' },
      { method: 'GET', url: '/api/v1/deliveries/?schema=acme:alpha' },
      { method: 'GET', url: `/api/v1/deliveries/?task=${a1}` },
      { method: 'GET', url: '/api/v1/deliveries/999999' },
      { method: 'POST', url: '/api/v1/deliveries/999999/redeliver' },
      ...[d.a1!, d.a2!, d.b1!].flatMap((x): InjectOptions[] => [
        { method: 'GET', url: `/api/v1/deliveries/${x.id}` },
        { method: 'POST', url: `/api/v1/deliveries/${x.id}/redeliver` },
      ]),
      { method: 'POST', url: '/api/v1/deliveries/redeliver', payload: since },
      { method: 'POST', url: '/api/v1/deliveries/redeliver', payload: { ...since, schema: 'acme:alpha' } },
    ];
    const problem = (res: Res) => (res.json() as { type: string }).type;
    for (const route of routes) {
      const what = `${route.method} ${route.url}`;
      for (const key of [apiKey, otherKey]) {
        const res = await call({ ...route, key });
        expect(res.statusCode, `${what} with an API key: ${res.body}`).toBe(401);
        expect(problem(res), what).toBe('urn:task-inbox:problem:not-signed-in');
      }
      const none = await call({ ...route, key: null });
      expect(none.statusCode, `${what} without credentials: ${none.body}`).toBe(401);
      const member = await call({ ...route, cookie: memberCookie });
      expect(member.statusCode, `${what} as a member: ${member.body}`).toBe(403);
      expect(problem(member), what).toBe('urn:task-inbox:problem:forbidden');
      // An API key alongside a member's cookie does not lift the member to admin.
      const both = await app.inject({ ...route, headers: { 'api-key': apiKey, cookie: memberCookie } });
      seen.push(both.body);
      expect(both.statusCode, `${what} as a member with an API key: ${both.body}`).toBe(403);
    }
    // None of the refused redeliveries queued anything.
    expect(await webhooks.runDue()).toBe(0);
    expect(await list()).toEqual(before);
    expect((await list({ task: a2 }))[0]).toMatchObject({ status: 'dead', attempts: 2 });
  });

  test('redeliver one through the API: the same webhook-id arrives again', async () => {
    const before = recvA.received.length;
    const res = await admin({ method: 'POST', url: `/api/v1/deliveries/${d.a1!.id}/redeliver` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().delivery).toMatchObject({ id: d.a1!.id, status: 'pending', webhook_id: d.a1!.webhook_id });
    await drain();
    expect(recvA.received).toHaveLength(before + 1);
    const again = recvA.received[before]!;
    expect(header(again, 'webhook-id')).toBe(d.a1!.webhook_id);
    const first = recvA.received.find((r) => header(r, 'webhook-id') === d.a1!.webhook_id)!;
    expect(again.body).toBe(first.body);
    expect((await list({ task: a1 }))[0]).toMatchObject({ status: 'delivered', attempts: 2 });
    expect((await admin({ method: 'POST', url: '/api/v1/deliveries/999999/redeliver' })).statusCode).toBe(404);
  });

  test('redeliver one through the CLI: the same webhook-id arrives again, signed', async () => {
    const before = recvB.received.length;
    const r = await ok(['deliveries', 'redeliver', String(d.b1!.id)]);
    expect(r.out).toMatch(/queued again/);
    await drain();
    expect(recvB.received).toHaveLength(before + 1);
    const again = recvB.received[before]!;
    expect(header(again, 'webhook-id')).toBe(d.b1!.webhook_id);
    expect(standardOk(betaKey, again)).toBe(true);
    const shown = JSON.parse((await ok(['deliveries', 'show', String(d.b1!.id), '--json'])).out);
    expect(shown.delivery).toMatchObject({ status: 'delivered', attempts: 2 });
    expect(shown.attempts.map((a: { status_code: number }) => a.status_code)).toEqual([200, 200]);
  });

  test('redeliver every failed or dead delivery since a time (API and CLI): the count, and they arrive', async () => {
    await sleep(100);
    const since = new Date();
    await sleep(100);
    const a3 = await createTask('acme:alpha');
    const b2 = await createTask('acme:beta');
    refuse.add(a3).add(b2);
    await change(a3);
    await change(b2);
    await drain();
    const [da3] = await list({ task: a3 });
    const [db2] = await list({ task: b2 });
    expect(da3).toMatchObject({ status: 'dead' });
    expect(db2).toMatchObject({ status: 'dead' });
    refuse.clear();

    const worker = startDeliveryWorker(webhooks, { pollMs: 50, log: app.log });
    try {
      // API, one schema: only a3 (a2 died before `since`, b2 is another schema).
      const res = await admin({ method: 'POST', url: '/api/v1/deliveries/redeliver', payload: { since: since.toISOString(), schema: 'acme:alpha' } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ redelivered: 1 });
      const arrived = async (recv: Receiver, webhookId: string) => {
        await expect.poll(() => recv.received.filter((r) => header(r, 'webhook-id') === webhookId).length, { timeout: 5000 }).toBe(3);
      };
      await arrived(recvA, da3!.webhook_id);
      await expect.poll(async () => (await list({ task: a3 }))[0]!.status, { timeout: 5000 }).toBe('delivered');
      expect((await list({ task: a2 }))[0]!.status).toBe('dead');
      expect((await list({ task: b2 }))[0]!.status).toBe('dead');

      // CLI, every schema: b2 only (a3 is delivered now).
      const r = await ok(['deliveries', 'redeliver', '--failed-since', since.toISOString()]);
      expect(r.out).toMatch(/^1 delivery is queued again/);
      await arrived(recvB, db2!.webhook_id);
      await expect.poll(async () => (await list({ task: b2 }))[0]!.status, { timeout: 5000 }).toBe('delivered');
      expect(standardOk(betaKey, recvB.received.at(-1)!)).toBe(true);

      // Since long ago: a2 too.
      const old = await admin({ method: 'POST', url: '/api/v1/deliveries/redeliver', payload: { since: '2000-01-01T00:00:00Z' } });
      expect(old.json()).toEqual({ redelivered: 1 });
      await arrived(recvA, d.a2!.webhook_id);
      await expect.poll(async () => (await list({ task: a2 }))[0]!.status, { timeout: 5000 }).toBe('delivered');
      expect(await list({ status: 'dead' })).toEqual([]);
      const none = await admin({ method: 'POST', url: '/api/v1/deliveries/redeliver', payload: { since: '2000-01-01T00:00:00Z' } });
      expect(none.json()).toEqual({ redelivered: 0 });
    } finally {
      await worker.stop();
    }
    const bad = await cli(['deliveries', 'redeliver', '--failed-since', 'yesterday']);
    expect(bad.code).toBe(1);
    const both = await cli(['deliveries', 'redeliver']);
    expect(both.code).toBe(1);
  });
});

describe('malformed filters and ids are refused clearly', () => {
  // The CLI checks --task and ids as the API does, instead of sending them to SQL.
  test('CLI: a --task that is not a task id, or an id out of range, is one clear error line', async () => {
    for (const args of [['deliveries', 'list', '--task', 'nope'], ['deliveries', 'show', '99999999999999999999']]) {
      const r = await cli(args);
      expect(r.code).toBe(1);
      expect(r.err, `task-inbox ${args.join(' ')}`).not.toMatch(/Failed query|select |\n\s+at /);
      expect(r.err.trim().split('\n'), `task-inbox ${args.join(' ')}`).toHaveLength(1);
    }
  });

  // A cursor is checked for range too, so a huge one is a 400 rather than an SQL failure.
  test('API: a cursor out of range is a 400, not a 500', async () => {
    const res = await admin({ method: 'GET', url: '/api/v1/deliveries/?cursor=99999999999999999999' });
    expect(res.statusCode, res.body).toBe(400);
  });
});

describe('webhook keys stay secret', () => {
  test('the key never appears in logs, API answers or CLI output after its creation', async () => {
    // Ask for everything once more, so the scan covers every way to look at deliveries and keys.
    const all = await list();
    expect(all.length).toBeGreaterThan(0);
    for (const x of all) {
      const res = await admin({ method: 'GET', url: `/api/v1/deliveries/${x.id}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().payload).toMatchObject({ event: 'task.state_changed' });
    }
    for (const url of ['/api/v1/tasks/']) {
      const res = await call({ method: 'GET', url });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
    }
    // The admin API's views of keys, endpoints and the audit trail (which records the key changes).
    const got = async (url: string) => {
      const res = await admin({ method: 'GET', url });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
      return res.json();
    };
    const keysApi = (await got('/api/v1/webhook-keys')).webhook_keys as { schema_name: string }[];
    expect(keysApi.map((k) => k.schema_name).sort()).toEqual(['acme:alpha', 'acme:beta']);
    await got('/api/v1/endpoints');
    const audit = (await got('/api/v1/audit')).events as { action: string; target: string | null }[];
    expect(audit.filter((e) => e.action === 'webhook-key.create').map((e) => e.target).sort()).toEqual(['acme:alpha', 'acme:beta']);
    const keysJson = JSON.parse((await ok(['webhook-key', 'list', '--json'])).out) as { schema_name: string; prefix: string }[];
    expect(keysJson.map((k) => k.schema_name).sort()).toEqual(['acme:alpha', 'acme:beta']);
    await ok(['webhook-key', 'list']);
    await ok(['webhook-key', 'list', 'acme:beta', '--json']);
    await ok(['deliveries', '--json']);
    for (const x of all) await ok(['deliveries', 'show', String(x.id), '--json']);
    await cli(['endpoints']);

    // The logs were captured, at trace level, and the keys were really used.
    expect(logs).toContain('/api/v1/deliveries');
    expect(logs).toContain('incoming request');
    expect(recvA.received.some((r) => r.headers['ti-key'] === alphaKey)).toBe(true);

    const everything = [logs, ...seen].join('\n');
    for (const secret of [alphaKey, betaKey, betaKey.slice('whsec_'.length)]) {
      expect(everything.includes(secret), 'a webhook key was shown after its creation').toBe(false);
    }
  });

  test('the key is stored encrypted (AES-GCM, v1:), and only SECRET_KEY opens it', async () => {
    const rows = await database.query<{ id: string; prefix: string; secret_enc: string }>('SELECT * FROM webhook_keys ORDER BY created');
    expect(rows).toHaveLength(2);
    const dump = JSON.stringify(rows);
    for (const secret of [alphaKey, betaKey, betaKey.slice('whsec_'.length)]) expect(dump).not.toContain(secret);
    for (const row of rows) expect(row.secret_enc.startsWith('v1:')).toBe(true);
    const box = loadSecretBox(config);
    expect(rows.map((r) => box.decrypt(r.secret_enc)).sort()).toEqual([alphaKey, betaKey].sort());
    const wrong = createSecretBox('another-secret-key-of-at-least-32-characters');
    expect(() => wrong.decrypt(rows[0]!.secret_enc)).toThrow();
  });
});
