/*
 * Changes an application server makes to its own waiting tasks: `PATCH /api/v1/tasks/{id}`
 * (metadata merge) and `POST /api/v1/tasks/{id}/cancel`; their history entries, live events and
 * webhooks (a cancel always goes out through the async outbox as `task.cancelled`, even for sync
 * schemas); what a key limited to one schema can and cannot reach; and migration 0003's backfill
 * of history events on existing data.
 */
import type { FastifyInstance, InjectOptions } from 'fastify';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { afterEach, describe, expect, test } from 'vitest';
import type { Config } from '../src/config.js';
import { cliActor } from '../src/core/audit/audit.js';
import { TaskEventHub, type TaskEvent } from '../src/core/events/task-events.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createUser, signIn } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { getTaskHistory } from '../src/core/tasks/index.js';
import { createWebhookKey, verifyStandard, Webhooks } from '../src/core/webhooks/index.js';
import { migrate, openPostgres, wrapPglite, type Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { migrationsFolder } from '../src/paths.js';
import { sampleSchema, testConfig } from './helpers/app.js';
import { createTestDatabase, dbKind, urlOf } from './helpers/db.js';
import { startReceiver, type Received } from './helpers/receiver.js';

const SCHEMA_A = 'acme:moderation'; // sampleSchema: flag-content (level1, level2 | block, allow), delete-acct (| deleted)
const SCHEMA_B = 'acme:other';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NO_SUCH_TASK = '00000000-0000-4000-8000-000000000000';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A schema with one type `review` (open, held | done, rejected), optionally sending webhooks. */
function hookSchema(name: string, opts: { url?: string; mode?: 'sync' | 'async'; auth?: 'standard' } = {}) {
  return `name: '${name}'
semver: '1'
${opts.url ? `default_hook_url: '${opts.url}'\nhook_mode: ${opts.mode ?? 'async'}\n` : ''}${opts.auth ? `hook_auth:\n  kind: ${opts.auth}\n` : ''}tasktypes:
- name: review
  pending_states: ['open', 'held']
  resolved_states: ['done', 'rejected']
`;
}

interface Res {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
  json(): any;
}

interface Env {
  app: FastifyInstance;
  database: Database;
  config: Config;
  webhooks: Webhooks;
  events: TaskEventHub;
  /** Unlimited key. */
  key: string;
  /** Limited to acme:moderation (A) / acme:other (B). */
  keyA: string;
  keyB: string;
  adminCookie: string;
  memberCookie: string;
  /** inject with the unlimited key by default; `key: null` sends none; `cookie` sends that cookie. */
  call(opts: InjectOptions & { key?: string | null; cookie?: string }): Promise<Res>;
  newTask(schema?: string, state?: string | null, meta?: Record<string, unknown>, key?: string): Promise<any>;
  getTask(id: string): Promise<any>;
  history(id: string): Promise<any[]>;
  patchMeta(id: string, meta: unknown, key?: string | null): Promise<Res>;
  cancel(id: string, body: unknown, key?: string | null): Promise<Res>;
  setState(id: string, state: string | null, opts?: { key?: string | null; cookie?: string }): Promise<Res>;
  /** Deliveries of a task, oldest first, through the admin's delivery log. */
  deliveries(taskId: string): Promise<any[]>;
  /** Live events seen by the hub since setup. */
  seen: TaskEvent[];
}

async function setup(env: Record<string, string> = {}): Promise<Env> {
  const { database } = await createTestDatabase();
  const config = testConfig({ WEBHOOK_RETRY_SCHEDULE: '100ms,100ms,100ms,100ms,100ms', WEBHOOK_TIMEOUT: '5s', ...env });
  const webhooks = new Webhooks({ database, config, secrets: loadSecretBox(config) });
  const events = await TaskEventHub.start(database);
  const seen: TaskEvent[] = [];
  events.subscribe((ev) => {
    if (ev.kind !== 'resync') seen.push(ev);
  });
  await installSchema(database, sampleSchema);
  await installSchema(database, hookSchema(SCHEMA_B));
  const key = (await createApiKey(database, { name: 'all' })).key;
  const keyA = (await createApiKey(database, { name: 'only-a', schemaName: SCHEMA_A })).key;
  const keyB = (await createApiKey(database, { name: 'only-b', schemaName: SCHEMA_B })).key;
  await createUser(database, cliActor, { username: 'admin', name: 'Ada Admin', role: 'admin', password: 'admin-password-1' });
  await createUser(database, cliActor, { username: 'mia', name: 'Mia Member', role: 'member', password: 'member-password-1' });
  const adminCookie = `ti_session=${(await signIn(database, config, { username: 'admin', password: 'admin-password-1', ip: '127.0.0.1' })).token}`;
  const memberCookie = `ti_session=${(await signIn(database, config, { username: 'mia', password: 'member-password-1', ip: '127.0.0.1' })).token}`;
  const app = await buildApp({ config, database, webhooks, events });
  await app.ready();
  cleanups.push(async () => {
    await app.close();
    await events.close();
    await database.close();
  });
  const e: Env = {
    app,
    database,
    config,
    webhooks,
    events,
    key,
    keyA,
    keyB,
    adminCookie,
    memberCookie,
    seen,
    call({ key: k, cookie, ...req }) {
      const headers = { ...(req.headers ?? {}) } as Record<string, string>;
      if (cookie !== undefined) headers.cookie = cookie;
      if (k !== null && cookie === undefined) headers['api-key'] = k ?? key;
      if (k !== null && k !== undefined && cookie !== undefined) headers['api-key'] = k;
      return app.inject({ ...req, headers }) as Promise<Res>;
    },
    async newTask(schema = SCHEMA_A, state = null, meta, k) {
      const task = schema === SCHEMA_A ? 'flag-content' : 'review';
      const res = await e.call({ method: 'POST', url: '/api/v1/tasks/', key: k, payload: { schema_name: schema, task, state, meta } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().task;
    },
    async getTask(id) {
      const res = await e.call({ method: 'GET', url: `/api/v1/tasks/${id}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().task;
    },
    async history(id) {
      const res = await e.call({ method: 'GET', url: `/api/v1/tasks/${id}/history` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().history;
    },
    patchMeta: (id, meta, k) => e.call({ method: 'PATCH', url: `/api/v1/tasks/${id}`, key: k, payload: { meta } as object }),
    cancel: (id, body, k) => e.call({ method: 'POST', url: `/api/v1/tasks/${id}/cancel`, key: k, payload: body as object }),
    setState: (id, state, o = {}) => e.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=${encodeURIComponent(state ?? '')}`, ...o }),
    async deliveries(taskId) {
      const res = await e.call({ method: 'GET', url: `/api/v1/deliveries/?task=${taskId}&limit=200`, cookie: adminCookie });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json().deliveries as any[]).reverse();
    },
  };
  return e;
}

function expectProblem(res: Res, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status, type: `urn:task-inbox:problem:${code}` });
}

async function receiver(respond?: Parameters<typeof startReceiver>[0]) {
  const r = await startReceiver(respond);
  cleanups.push(() => r.close());
  return r;
}

/**
 * A task of a sync schema whose state change to `done` is in flight: its receiver holds the
 * webhook until `release()`, then accepts it.
 */
async function stateChangeInFlight() {
  const e = await setup();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const r = await receiver(async () => {
    await held;
    return { status: 200 };
  });
  await installSchema(e.database, hookSchema('hooks:sync', { url: r.url, mode: 'sync' }));
  const t = await e.newTask('hooks:sync', 'open');
  const change = e.setState(t.id, 'done');
  await r.waitFor(1, 5000);
  return { e, t, change, release };
}

/** Polls until `fn` holds. */
async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** The hub's events of one task (PostgreSQL delivers them a moment after the commit). */
async function eventsOf(e: Env, id: string, n: number) {
  await until(`${n} live events of ${id}`, () => e.seen.filter((ev) => ev.id === id).length >= n, 3000);
  return e.seen.filter((ev) => ev.id === id);
}

// =============================================================================================

describe('PATCH /api/v1/tasks/{id}: metadata', () => {
  test('merges keys, replaces values (top level), removes keys set to null; GET shows it; history gets a `meta` entry with the patch', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1', { a: 1, b: { x: 1 }, keep: 'k' });
    const patch = { b: { y: 2 }, c: 'new', a: null };
    const res = await e.patchMeta(t.id, patch);
    expect(res.statusCode, res.body).toBe(200);
    const want = { b: { y: 2 }, c: 'new', keep: 'k' };
    expect(res.json().task).toMatchObject({ id: t.id, state: 'level1', resolved: false, meta: want, cancelled: null });
    expect(Date.parse(res.json().task.updated)).toBeGreaterThan(Date.parse(t.updated));
    const got = await e.call({ method: 'GET', url: `/api/v1/tasks/${t.id}` });
    expect(got.json().task.meta).toEqual(want);
    expect(got.json().meta).toEqual(want);
    const h = await e.history(t.id);
    expect(h).toHaveLength(2);
    expect(h[0]).toMatchObject({ event: 'created', state: 'level1', update_meta: { a: 1, b: { x: 1 }, keep: 'k' }, reason: null });
    expect(h[1]).toMatchObject({ event: 'meta', state: 'level1', resolved: false, update_meta: patch, reason: null, editor_id: null, editor_name: null, task_id: t.id });
    // The task's list entry carries the merged metadata too, and search finds the new value.
    const list = await e.call({ method: 'GET', url: '/api/v1/tasks/?q=new' });
    expect(list.json().tasks.map((x: any) => x.id)).toEqual([t.id]);
  });

  test('a task without metadata gets some; removing every key leaves it without (null)', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, null);
    expect(t.meta).toBeNull();
    expect((await e.patchMeta(t.id, { a: 1 })).json().task.meta).toEqual({ a: 1 });
    const res = await e.patchMeta(t.id, { a: null });
    expect(res.statusCode).toBe(200);
    expect(res.json().task.meta).toBeNull();
    expect((await e.getTask(t.id)).meta).toBeNull();
    expect((await e.history(t.id)).map((h) => h.event)).toEqual(['created', 'meta', 'meta']);
  });

  test('a patch that changes nothing writes nothing: no history, no `updated` stamp, no live event', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1', { a: 1, o: { x: 1, y: [1, 2] } });
    await eventsOf(e, t.id, 1); // the creation
    for (const patch of [{}, { a: 1 }, { gone: null }, { o: { y: [1, 2], x: 1 } }, { a: 1, gone: null }]) {
      const res = await e.patchMeta(t.id, patch);
      expect(res.statusCode, JSON.stringify(patch)).toBe(200);
      expect(res.json().task).toMatchObject({ meta: { a: 1, o: { x: 1, y: [1, 2] } }, updated: t.updated });
    }
    expect(await e.getTask(t.id)).toEqual(t);
    expect(await e.history(t.id)).toHaveLength(1);
    // One real change afterwards: its event is the only one after the creation's.
    expect((await e.patchMeta(t.id, { a: 2 })).statusCode).toBe(200);
    const evs = await eventsOf(e, t.id, 2);
    await sleep(200);
    expect(e.seen.filter((ev) => ev.id === t.id)).toHaveLength(2);
    expect(evs[1]).toMatchObject({ kind: 'changed', id: t.id, schema: SCHEMA_A, state: 'level1', resolved: false });
    // A patch mixing a no-op key with a change records the patch as sent.
    expect((await e.patchMeta(t.id, { a: 2, b: 3 })).statusCode).toBe(200);
    const h = await e.history(t.id);
    expect(h.map((x) => x.event)).toEqual(['created', 'meta', 'meta']);
    expect(h[2].update_meta).toEqual({ a: 2, b: 3 });
  });

  test('removing an absent key named like an Object.prototype member (toString, constructor, …) is a no-op too', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1', { a: 1 });
    for (const k of ['toString', 'constructor', 'hasOwnProperty', 'valueOf']) {
      const res = await e.patchMeta(t.id, { [k]: null });
      expect(res.statusCode, k).toBe(200);
      expect(res.json().task.meta, k).toEqual({ a: 1 });
    }
    expect(await e.getTask(t.id)).toEqual(t); // `updated` not stamped
    expect(await e.history(t.id), 'a no-op patch wrote history entries').toHaveLength(1);
    // Such names are ordinary keys otherwise: set, then removed.
    expect((await e.patchMeta(t.id, { toString: 'x' })).json().task.meta).toEqual({ a: 1, toString: 'x' });
    expect((await e.patchMeta(t.id, { toString: null })).json().task.meta).toEqual({ a: 1 });
    expect((await e.history(t.id)).map((h) => h.event)).toEqual(['created', 'meta', 'meta']);
  });

  test('only an API key may: a session cookie alone (admin or member) → 401; no credentials → 401; unknown key → 403; nothing changes', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1', { a: 1 });
    for (const cookie of [e.adminCookie, e.memberCookie]) {
      expectProblem(await e.call({ method: 'PATCH', url: `/api/v1/tasks/${t.id}`, cookie, payload: { meta: { a: 2 } } }), 401, 'api-key-missing');
    }
    expectProblem(await e.patchMeta(t.id, { a: 2 }, null), 401, 'api-key-missing');
    expectProblem(await e.patchMeta(t.id, { a: 2 }, 'not-a-key-at-all'), 403, 'api-key-invalid');
    expect(await e.getTask(t.id)).toEqual(t);
    expect(await e.history(t.id)).toHaveLength(1);
    expect(e.app.routeRules.find((r) => r.method === 'PATCH' && r.url === '/api/v1/tasks/:id')?.auth).toBe('api-key');
  });

  test('unknown task → 404; not a UUID → 400', async () => {
    const e = await setup();
    expectProblem(await e.patchMeta(NO_SUCH_TASK, { a: 1 }), 404, 'task-not-found');
    expectProblem(await e.patchMeta('not-a-uuid', { a: 1 }), 400, 'bad-request');
  });

  test('a body whose meta is not an object → 400, and nothing changes', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1', { a: 1 });
    const bodies: { payload?: unknown; raw?: string }[] = [
      { payload: { meta: 'text' } },
      { payload: { meta: 5 } },
      { payload: { meta: null } },
      { payload: { meta: [1, 2] } },
      { payload: { meta: true } },
      { payload: {} },
      { payload: { metadata: { a: 2 } } },
      { raw: '' },
      { raw: '{"meta": {' },
      { raw: '[1]' },
    ];
    for (const b of bodies) {
      const res =
        b.raw !== undefined
          ? await e.call({ method: 'PATCH', url: `/api/v1/tasks/${t.id}`, headers: { 'content-type': 'application/json' }, payload: b.raw })
          : await e.call({ method: 'PATCH', url: `/api/v1/tasks/${t.id}`, payload: b.payload as object });
      expectProblem(res, 400, 'bad-request');
    }
    expect(await e.getTask(t.id)).toEqual(t);
    expect(await e.history(t.id)).toHaveLength(1);
  });

  test('a metadata change sends no webhook (async: no delivery; sync: the receiver is not called)', async () => {
    const e = await setup();
    const r = await receiver();
    await installSchema(e.database, hookSchema('hooks:async', { url: r.url, mode: 'async' }));
    await installSchema(e.database, hookSchema('hooks:sync', { url: r.url, mode: 'sync' }));
    for (const schema of ['hooks:async', 'hooks:sync']) {
      const t = await e.newTask(schema, 'open', { a: 1 });
      const res = await e.patchMeta(t.id, { a: 2 });
      expect(res.statusCode, res.body).toBe(200);
      expect(await e.deliveries(t.id)).toEqual([]);
    }
    expect(await e.webhooks.runDue()).toBe(0);
    expect(r.received).toHaveLength(0);
  });
});

// =============================================================================================

describe('POST /api/v1/tasks/{id}/cancel', () => {
  test('the task becomes resolved, keeps its state, carries `cancelled`; history gets a `cancel` entry; a live event goes out', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level2', { a: 1 });
    const before = Date.now();
    const res = await e.cancel(t.id, { reason: '  the user deleted the post  ' });
    expect(res.statusCode, res.body).toBe(200);
    const task = res.json().task;
    expect(task).toMatchObject({ id: t.id, state: 'level2', resolved: true, meta: { a: 1 }, cancelled: { reason: 'the user deleted the post' } });
    const at = Date.parse(task.cancelled.at);
    expect(at).toBeGreaterThanOrEqual(before - 5000);
    expect(at).toBeLessThanOrEqual(Date.now() + 5000);
    expect(Date.parse(task.updated)).toBeGreaterThan(Date.parse(t.updated));
    expect(await e.getTask(t.id)).toEqual(task);
    const h = await e.history(t.id);
    expect(h).toHaveLength(2);
    expect(h[1]).toMatchObject({ event: 'cancel', reason: 'the user deleted the post', state: 'level2', resolved: true, editor_id: null, editor_name: null, update_meta: null });
    const evs = await eventsOf(e, t.id, 2);
    expect(evs[1]).toMatchObject({ kind: 'changed', id: t.id, schema: SCHEMA_A, state: 'level2', resolved: true });
  });

  test('a task without a state can be cancelled too (state stays null)', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, null);
    const res = await e.cancel(t.id, { reason: 'gone' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().task).toMatchObject({ state: null, resolved: true, cancelled: { reason: 'gone' } });
  });

  test('cancelling again → 200, the first cancellation unchanged, nothing new written or sent', async () => {
    const e = await setup();
    const r = await receiver();
    await installSchema(e.database, hookSchema('hooks:async', { url: r.url }));
    const t = await e.newTask('hooks:async', 'open');
    const first = (await e.cancel(t.id, { reason: 'first' })).json().task;
    await sleep(20);
    for (const reason of ['first', 'another reason']) {
      const again = await e.cancel(t.id, { reason });
      expect(again.statusCode, again.body).toBe(200);
      expect(again.json().task).toEqual(first);
    }
    expect(await e.getTask(t.id)).toEqual(first);
    expect((await e.history(t.id)).map((x) => x.event)).toEqual(['created', 'cancel']);
    expect(await e.deliveries(t.id)).toHaveLength(1);
  });

  test('a task a person already resolved → 409 task-resolved, and nothing changes', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1');
    expect((await e.setState(t.id, 'block', { key: null, cookie: e.adminCookie })).statusCode).toBe(200);
    const resolved = await e.getTask(t.id);
    const res = await e.cancel(t.id, { reason: 'too late' });
    expectProblem(res, 409, 'task-resolved');
    expect(res.json().detail).toContain('block');
    expect(await e.getTask(t.id)).toEqual(resolved);
    expect(await e.history(t.id)).toHaveLength(2);
    // Created resolved, the same.
    const born = await e.newTask(SCHEMA_A, 'allow');
    expectProblem(await e.cancel(born.id, { reason: 'too late' }), 409, 'task-resolved');
    expect(await e.getTask(born.id)).toEqual(born);
  });

  test('setting the state of a cancelled task → 409 task-cancelled (key or person, any state), nothing changes', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1');
    const cancelled = (await e.cancel(t.id, { reason: 'not needed' })).json().task;
    const tries: [string | null, { key?: string | null; cookie?: string }][] = [
      ['block', {}],
      ['level2', {}],
      [null, {}],
      ['level1', {}],
      ['allow', { key: null, cookie: e.adminCookie }],
      ['allow', { key: null, cookie: e.memberCookie }],
    ];
    for (const [state, who] of tries) {
      const res = await e.setState(t.id, state, who);
      expectProblem(res, 409, 'task-cancelled');
      expect(res.json().detail).toContain('not needed');
    }
    expect(await e.getTask(t.id)).toEqual(cancelled);
    expect(await e.history(t.id)).toHaveLength(2);
  });

  test('reason: empty, blank, missing, not a string, or over 1000 characters → 400; 1000 (after trimming) is fine', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1');
    for (const body of [{ reason: '' }, { reason: '   ' }, { reason: '\n\t ' }, {}, { reason: 5 }, { reason: null }, { reason: 'x'.repeat(1001) }]) {
      expectProblem(await e.cancel(t.id, body), 400, 'bad-request');
    }
    expectProblem(await e.call({ method: 'POST', url: `/api/v1/tasks/${t.id}/cancel` }), 400, 'bad-request');
    expect(await e.getTask(t.id)).toEqual(t);
    expect(await e.history(t.id)).toHaveLength(1);
    const long = 'y'.repeat(1000);
    const res = await e.cancel(t.id, { reason: `  ${long}  ` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().task.cancelled.reason).toBe(long);
  });

  test('only an API key may cancel (cookie alone → 401); unknown task → 404; not a UUID → 400', async () => {
    const e = await setup();
    const t = await e.newTask(SCHEMA_A, 'level1');
    for (const cookie of [e.adminCookie, e.memberCookie]) {
      expectProblem(await e.call({ method: 'POST', url: `/api/v1/tasks/${t.id}/cancel`, cookie, payload: { reason: 'x' } }), 401, 'api-key-missing');
    }
    expectProblem(await e.cancel(t.id, { reason: 'x' }, null), 401, 'api-key-missing');
    expect(await e.getTask(t.id)).toEqual(t);
    expectProblem(await e.cancel(NO_SUCH_TASK, { reason: 'x' }), 404, 'task-not-found');
    expectProblem(await e.cancel('nope', { reason: 'x' }), 400, 'bad-request');
  });

  test('the inbox no longer lists a cancelled task (resolved=un, count), resolved=done and all do', async () => {
    const e = await setup();
    const keep = await e.newTask(SCHEMA_A, 'level1');
    const gone = await e.newTask(SCHEMA_A, 'level1');
    const ids = async (q: string, who: { key?: string | null; cookie?: string } = {}) =>
      ((await e.call({ method: 'GET', url: `/api/v1/tasks/?${q}`, ...who })).json().tasks as any[]).map((x) => x.id);
    const count = async (q: string, who: { key?: string | null; cookie?: string } = {}) => (await e.call({ method: 'GET', url: `/api/v1/tasks/count?${q}`, ...who })).json().count;
    expect(await ids('resolved=un')).toEqual([keep.id, gone.id]);
    expect((await e.cancel(gone.id, { reason: 'r' })).statusCode).toBe(200);
    for (const who of [{}, { key: null, cookie: e.memberCookie }]) {
      expect(await ids('resolved=un', who)).toEqual([keep.id]);
      expect(await ids('', who)).toEqual([keep.id, gone.id]); // the list's default is `all`
      expect(await ids('resolved=done', who)).toEqual([gone.id]);
      expect(await ids('resolved=all', who)).toEqual([keep.id, gone.id]);
      expect(await count('resolved=un', who)).toBe(1);
      expect(await count('resolved=done', who)).toBe(1);
    }
    const done = (await e.call({ method: 'GET', url: '/api/v1/tasks/?resolved=done' })).json().tasks[0];
    expect(done.cancelled).toMatchObject({ reason: 'r' });
  });
});

// =============================================================================================

describe('cancel webhooks', () => {
  test('async schema: the receiver gets `task.cancelled` with the reason, signed, through the outbox', async () => {
    const e = await setup();
    const r = await receiver();
    await installSchema(e.database, hookSchema('hooks:async', { url: r.url, mode: 'async', auth: 'standard' }));
    const { key: secret } = await createWebhookKey(e.database, loadSecretBox(e.config), { schemaName: 'hooks:async', graceMs: 0 });
    const t = await e.newTask('hooks:async', 'held', { ref: 7 });
    const res = await e.cancel(t.id, { reason: 'order withdrawn' });
    expect(res.statusCode, res.body).toBe(200);
    const [d] = await e.deliveries(t.id);
    expect(d).toMatchObject({ mode: 'async', status: 'pending', task_id: t.id });
    const cancelEntry = (await e.history(t.id)).at(-1);
    expect(cancelEntry.event).toBe('cancel');
    expect(d.history_id).toBe(cancelEntry.id);

    await until('the delivery', async () => {
      await e.webhooks.runDue();
      return r.received.length >= 1;
    });
    const got = r.received[0]!;
    const body = JSON.parse(got.body);
    expect(body).toMatchObject({
      event: 'task.cancelled',
      task: { id: t.id, state: 'held', resolved: true, cancelled: { reason: 'order withdrawn' }, meta: { ref: 7 } },
      previous: { state: 'held', resolved: false },
      history_id: cancelEntry.id,
      editor: null,
      type: { schema_name: 'hooks:async', name: 'review' },
    });
    expect(body.task.cancelled.at).toBe(res.json().task.cancelled.at);
    const header = (r: Received, n: string) => String(r.headers[n]);
    expect(verifyStandard([secret], header(got, 'webhook-id'), Number(header(got, 'webhook-timestamp')), got.body, header(got, 'webhook-signature'))).toBe(true);
    await until('delivered', async () => (await e.deliveries(t.id))[0].status === 'delivered');
  });

  test('sync schema: the cancel answers 200 at once even though the receiver refuses; it goes out async and is retried, never blocking', async () => {
    const e = await setup();
    const r = await receiver(() => ({ status: 409, body: 'we refuse everything' }));
    await installSchema(e.database, hookSchema('hooks:sync', { url: r.url, mode: 'sync' }));
    const t = await e.newTask('hooks:sync', 'open');
    const started = Date.now();
    const res = await e.cancel(t.id, { reason: 'withdrawn' });
    expect(res.statusCode, res.body).toBe(200);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(res.json().task).toMatchObject({ state: 'open', resolved: true, cancelled: { reason: 'withdrawn' } });
    await sleep(100);
    expect(r.received).toHaveLength(0); // nothing was sent while the cancel was answered
    const [d] = await e.deliveries(t.id);
    expect(d).toMatchObject({ mode: 'async', status: 'pending', attempts: 0 });

    // The worker sends it; the refusal is logged and retried; the task stays cancelled.
    await until('two attempts', async () => {
      await e.webhooks.runDue();
      return (await e.deliveries(t.id))[0].attempts >= 2;
    });
    const [after] = await e.deliveries(t.id);
    expect(after).toMatchObject({ mode: 'async', status: 'pending', last_status: 409 });
    expect(r.received.length).toBeGreaterThanOrEqual(2);
    for (const got of r.received) expect(JSON.parse(got.body)).toMatchObject({ event: 'task.cancelled', task: { id: t.id, cancelled: { reason: 'withdrawn' } } });
    expect(await e.getTask(t.id)).toEqual(res.json().task);
    expect((await e.history(t.id)).map((x) => x.event)).toEqual(['created', 'cancel']);

    // And its state can no longer be set: 409 task-cancelled, the sync receiver not called.
    const n = r.received.length;
    expectProblem(await e.setState(t.id, 'done'), 409, 'task-cancelled');
    expectProblem(await e.setState(t.id, 'held', { key: null, cookie: e.adminCookie }), 409, 'task-cancelled');
    expect(r.received).toHaveLength(n);
    expect(await e.deliveries(t.id)).toHaveLength(1);
  });

  test('sync schema with a receiver that would accept: setting a cancelled task\'s state → 409 task-cancelled, receiver not called, nothing logged', async () => {
    const e = await setup();
    const r = await receiver();
    await installSchema(e.database, hookSchema('hooks:sync', { url: r.url, mode: 'sync' }));
    const t = await e.newTask('hooks:sync', 'open');
    expect((await e.setState(t.id, 'held')).statusCode).toBe(200); // the receiver is reachable and accepts
    expect(r.received).toHaveLength(1);
    const cancelled = (await e.cancel(t.id, { reason: 'stop' })).json().task;
    for (const state of ['done', 'open', null]) expectProblem(await e.setState(t.id, state), 409, 'task-cancelled');
    expect(r.received).toHaveLength(1);
    expect((await e.deliveries(t.id)).map((d) => d.mode)).toEqual(['sync', 'async']);
    expect(await e.getTask(t.id)).toEqual(cancelled);
  });

  test('a cancel while a sync webhook for a state change is in flight: the state change is refused (409) and the task stays cancelled', async () => {
    const { e, t, change, release } = await stateChangeInFlight();
    const cancel = await e.cancel(t.id, { reason: 'raced' });
    expect(cancel.statusCode, cancel.body).toBe(200);
    release();
    const res = await change;
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json().type).toMatch(/^urn:task-inbox:problem:task-(changed|cancelled)$/);
    expect(await e.getTask(t.id)).toMatchObject({ state: 'open', resolved: true, cancelled: { reason: 'raced' } });
    expect((await e.history(t.id)).map((x) => x.event)).toEqual(['created', 'cancel']);
    // The sync attempt is logged once the receiver answered, i.e. after the cancel's async delivery.
    const ds = await e.deliveries(t.id);
    expect(ds.map((d) => [d.mode, d.status])).toEqual([
      ['async', 'pending'],
      ['sync', 'failed'],
    ]);
    expect(ds[1].last_error).toContain('not written');
    expect(ds[0].history_id).toBe((await e.history(t.id))[1].id);
  });

  test('a metadata update while a sync webhook for a state change is in flight is no conflict: the change is written, the metadata kept', async () => {
    const { e, t, change, release } = await stateChangeInFlight();
    expect((await e.patchMeta(t.id, { note: 'added meanwhile' })).statusCode).toBe(200);
    release();
    const res = await change;
    expect(res.statusCode, res.body).toBe(200);
    expect(await e.getTask(t.id)).toMatchObject({ state: 'done', resolved: true, meta: { note: 'added meanwhile' } });
    // The state entry's id was taken when its webhook went out (the payload names it), before the update's.
    expect((await e.history(t.id)).map((x) => x.event)).toEqual(['created', 'state', 'meta']);
  });
});

// =============================================================================================

describe('a key limited to one schema', () => {
  /** Tasks in A and B (B sends async webhooks to a receiver), plus what each looks like through the unlimited key. */
  async function world() {
    const e = await setup();
    const r = await receiver();
    await installSchema(e.database, hookSchema(SCHEMA_B, { url: r.url, mode: 'async' }) .replace("semver: '1'", "semver: '2'"));
    const a1 = await e.newTask(SCHEMA_A, 'level1', { word: 'alpha' });
    const a2 = await e.newTask(SCHEMA_A, 'block', { word: 'alpha' });
    const b1 = await e.newTask(SCHEMA_B, 'open', { word: 'bravo secret' });
    const b2 = await e.newTask(SCHEMA_B, 'done', { word: 'bravo' });
    const b3 = await e.newTask(SCHEMA_B, 'held', { word: 'bravo' });
    expect((await e.cancel(b3.id, { reason: 'cancelled in B' })).statusCode).toBe(200);
    return { e, r, a1, a2, b1, b2, b3: await e.getTask(b3.id) };
  }

  test("cannot read, wait on, update, cancel or set the state of another schema's tasks: all 404 like an unknown task, and nothing changes", async () => {
    const { e, r, b1, b2, b3, a1 } = await world();
    const unknown = await e.call({ method: 'GET', url: `/api/v1/tasks/${NO_SUCH_TASK}`, key: e.keyA });
    expectProblem(unknown, 404, 'task-not-found');
    for (const b of [b1, b2, b3]) {
      const before = await e.getTask(b.id);
      const historyBefore = await e.history(b.id);
      const deliveriesBefore = await e.deliveries(b.id);
      const attempts: [string, () => Promise<Res>][] = [
        ['GET', () => e.call({ method: 'GET', url: `/api/v1/tasks/${b.id}`, key: e.keyA })],
        ['GET wait', () => e.call({ method: 'GET', url: `/api/v1/tasks/${b.id}?wait=20`, key: e.keyA })],
        ['GET wait change', () => e.call({ method: 'GET', url: `/api/v1/tasks/${b.id}?wait=20&wait_for=change`, key: e.keyA })],
        ['history', () => e.call({ method: 'GET', url: `/api/v1/tasks/${b.id}/history`, key: e.keyA })],
        ['deliveries', () => e.call({ method: 'GET', url: `/api/v1/tasks/${b.id}/deliveries`, key: e.keyA })],
        ['PATCH meta', () => e.patchMeta(b.id, { word: 'hijacked' }, e.keyA)],
        ['PATCH meta no-op', () => e.patchMeta(b.id, {}, e.keyA)],
        ['cancel', () => e.cancel(b.id, { reason: 'not yours' }, e.keyA)],
        ['state done', () => e.setState(b.id, 'done', { key: e.keyA })],
        ['state open', () => e.setState(b.id, 'open', { key: e.keyA })],
        ['state unset', () => e.setState(b.id, null, { key: e.keyA })],
        ['state not in type', () => e.setState(b.id, 'no-such-state', { key: e.keyA })],
      ];
      for (const [what, attempt] of attempts) {
        const started = Date.now();
        const res = await attempt();
        expect(res.statusCode, `${what} on ${b.state}: ${res.body}`).toBe(404);
        expect(Date.now() - started, what).toBeLessThan(2000);
        const p = res.json();
        expect(p.type, what).toBe('urn:task-inbox:problem:task-not-found');
        // Indistinguishable from a task that does not exist.
        expect({ ...p, detail: p.detail.replace(b.id, 'ID'), instance: undefined }, what).toEqual({
          ...unknown.json(),
          detail: unknown.json().detail.replace(NO_SUCH_TASK, 'ID'),
          instance: undefined,
        });
        expect(res.body, what).not.toContain(SCHEMA_B);
      }
      expect(await e.getTask(b.id), b.id).toEqual(before);
      expect(await e.history(b.id)).toEqual(historyBefore);
      expect(await e.deliveries(b.id)).toEqual(deliveriesBefore);
    }
    expect(await e.webhooks.runDue()).toBeLessThanOrEqual(1); // only b3's own cancel
    expect(r.received.every((x) => JSON.parse(x.body).task.id === b3.id)).toBe(true);
    // The same calls on its own schema's task work (positive control).
    expect((await e.call({ method: 'GET', url: `/api/v1/tasks/${a1.id}`, key: e.keyA })).statusCode).toBe(200);
    expect((await e.call({ method: 'GET', url: `/api/v1/tasks/${a1.id}/history`, key: e.keyA })).statusCode).toBe(200);
    expect((await e.call({ method: 'GET', url: `/api/v1/tasks/${a1.id}/deliveries`, key: e.keyA })).statusCode).toBe(200);
    expect((await e.patchMeta(a1.id, { word: 'alpha2' }, e.keyA)).statusCode).toBe(200);
    expect((await e.setState(a1.id, 'level2', { key: e.keyA })).statusCode).toBe(200);
    expect((await e.cancel(a1.id, { reason: 'mine' }, e.keyA)).statusCode).toBe(200);
    // And the other way round: B's key cannot touch A's task.
    expectProblem(await e.call({ method: 'GET', url: `/api/v1/tasks/${a1.id}`, key: e.keyB }), 404, 'task-not-found');
    expectProblem(await e.patchMeta(a1.id, { x: 1 }, e.keyB), 404, 'task-not-found');
    expectProblem(await e.cancel(a1.id, { reason: 'x' }, e.keyB), 404, 'task-not-found');
  });

  test("its lists, counts and types never include another schema's tasks, whatever the filter", async () => {
    const { e, a1, a2, b1, b2, b3 } = await world();
    const ids = async (q: string, key: string) => {
      const res = await e.call({ method: 'GET', url: `/api/v1/tasks/?${q}`, key });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      if (key !== e.key) for (const ty of Object.values(body.types) as any[]) expect(ty.schema_name, q).toBe(key === e.keyA ? SCHEMA_A : SCHEMA_B);
      return (body.tasks as any[]).map((x) => x.id).sort();
    };
    const count = async (q: string, key: string) => (await e.call({ method: 'GET', url: `/api/v1/tasks/count?${q}`, key })).json().count;
    const sorted = (...xs: string[]) => xs.sort();
    // A's key.
    expect(await ids('resolved=all', e.keyA)).toEqual(sorted(a1.id, a2.id));
    expect(await ids('resolved=un', e.keyA)).toEqual([a1.id]);
    expect(await ids('resolved=done', e.keyA)).toEqual([a2.id]);
    expect(await ids('resolved=all&order=newest&limit=1', e.keyA)).toEqual([a2.id]);
    for (const q of [`resolved=all&schema=${SCHEMA_B}`, 'resolved=all&type=review', 'resolved=all&q=bravo', 'resolved=all&q=secret', 'resolved=all&state=open', 'resolved=done&state=held']) {
      expect(await ids(q, e.keyA), q).toEqual([]);
    }
    expect(await count('resolved=un', e.keyA)).toBe(1);
    expect(await count('resolved=all', e.keyA)).toBe(2);
    expect(await count('resolved=done', e.keyA)).toBe(1);
    const types = (await e.call({ method: 'GET', url: '/api/v1/types', key: e.keyA })).json().types as any[];
    expect(types.length).toBeGreaterThan(0);
    expect(new Set(types.map((x) => x.schema_name))).toEqual(new Set([SCHEMA_A]));
    // Paging through everything with a small page never reaches B either.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await e.call({ method: 'GET', url: `/api/v1/tasks/?resolved=all&limit=1${cursor ? `&cursor=${cursor}` : ''}`, key: e.keyA });
      seen.push(...res.json().tasks.map((x: any) => x.id));
      cursor = res.json().next_cursor;
    } while (cursor);
    expect(seen.sort()).toEqual(sorted(a1.id, a2.id));
    // B's key, the mirror image (including the cancelled task among the resolved).
    expect(await ids('resolved=all', e.keyB)).toEqual(sorted(b1.id, b2.id, b3.id));
    expect(await ids('resolved=un', e.keyB)).toEqual([b1.id]);
    expect(await ids('resolved=done', e.keyB)).toEqual(sorted(b2.id, b3.id));
    expect(await ids(`resolved=all&schema=${SCHEMA_A}`, e.keyB)).toEqual([]);
    expect(await ids('resolved=all&q=alpha', e.keyB)).toEqual([]);
    expect(await count('resolved=all', e.keyB)).toBe(3);
    // The delivery log is for people only: a key gets 401 there.
    expect((await e.call({ method: 'GET', url: '/api/v1/deliveries/', key: e.keyA })).statusCode).toBe(401);
    // The unlimited key sees all five.
    expect(await ids('resolved=all', e.key)).toEqual(sorted(a1.id, a2.id, b1.id, b2.id, b3.id));
  });
});

// =============================================================================================

describe('migration 0003 on existing data', () => {
  /** A copy of migrations/ that stops after 0002. */
  function migrationsUpTo0002(): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-mig-0002-'));
    cpSync(migrationsFolder, dir, { recursive: true });
    const journalFile = path.join(dir, 'meta', '_journal.json');
    const journal = JSON.parse(readFileSync(journalFile, 'utf8')) as { entries: { tag: string }[] };
    const at = journal.entries.findIndex((x) => x.tag === '0002_people');
    expect(at).toBeGreaterThanOrEqual(0);
    journal.entries = journal.entries.slice(0, at + 1);
    writeFileSync(journalFile, JSON.stringify(journal));
    rmSync(path.join(dir, '0003_integrations.sql'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A new, empty database of its own, migrated up to 0002. */
  async function databaseAt0002(): Promise<Database> {
    const folder = migrationsUpTo0002();
    if (dbKind === 'pglite') {
      const database = wrapPglite(await PGlite.create());
      await migratePglite(database.db as never, { migrationsFolder: folder });
      return database;
    }
    const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    const name = `ti_mig_${Math.random().toString(16).slice(2, 10)}`;
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const database = openPostgres({
      connection: urlOf(name),
      poolSize: 2,
      onClose: async () => {
        const c = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    });
    const client = await database.pool!.connect();
    try {
      await migratePg(drizzle({ client }), { migrationsFolder: folder });
    } finally {
      client.release();
    }
    return database;
  }

  test("existing tasks' first history entries become `created`, later ones `state`; orphaned entries stay `state`", async () => {
    const database = await databaseAt0002();
    cleanups.push(() => database.close());
    // At 0002 the new columns do not exist yet.
    const cols = async (table: string) =>
      (await database.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_name = $1`, [table])).map((c) => c.column_name);
    expect(await cols('task_history')).not.toContain('event');
    expect(await cols('tasks')).not.toContain('cancelled_at');

    await installSchema(database, sampleSchema);
    const [type] = await database.query<{ id: number; schema_id: number }>(
      `SELECT t.id, v.schema_id FROM task_types t JOIN schema_versions v ON v.id = t.version_id WHERE t.name = 'flag-content'`,
    );
    const newTask = async (state: string | null, resolved: boolean) =>
      (await database.query<{ id: string }>(`INSERT INTO tasks (ttype_id, schema_id, state, resolved) VALUES ($1, $2, $3, $4) RETURNING id`, [type!.id, type!.schema_id, state, resolved]))[0]!.id;
    const entry = async (taskId: string | null, state: string | null, resolved: boolean) =>
      Number((await database.query<{ id: number }>(`INSERT INTO task_history (task_id, state, resolved) VALUES ($1, $2, $3) RETURNING id`, [taskId, state, resolved]))[0]!.id);
    const t1 = await newTask('block', true);
    const t2 = await newTask('level1', false);
    const t3 = await newTask(null, false);
    // Interleaved, as real traffic writes them.
    const orphan = await entry(null, 'level2', false); // a deleted task's trail (task_id set null)
    const h1a = await entry(t1, null, false);
    const h2a = await entry(t2, 'level1', false);
    const h1b = await entry(t1, 'level1', false);
    const h1c = await entry(t1, 'block', true);
    const h3a = await entry(t3, null, false);
    const h2b = await entry(t2, 'level1', false);

    await migrate(database); // the real migrator, which now applies 0003 only
    const rows = await database.query<{ id: number; event: string; reason: string | null }>(`SELECT id, event, reason FROM task_history ORDER BY id`);
    const byId = new Map(rows.map((r) => [Number(r.id), r]));
    expect(rows).toHaveLength(7);
    expect(Object.fromEntries([h1a, h1b, h1c, h2a, h2b, h3a, orphan].map((id) => [id, byId.get(id)!.event]))).toEqual({
      [h1a]: 'created',
      [h1b]: 'state',
      [h1c]: 'state',
      [h2a]: 'created',
      [h2b]: 'state',
      [h3a]: 'created',
      [orphan]: 'state',
    });
    expect(rows.every((r) => r.reason === null)).toBe(true);
    const tasks = await database.query<{ cancelled_at: Date | null; cancel_reason: string | null }>(`SELECT cancelled_at, cancel_reason FROM tasks`);
    expect(tasks).toHaveLength(3);
    expect(tasks.every((t) => t.cancelled_at === null && t.cancel_reason === null)).toBe(true);

    // Through the API's own reading: the same, and the migrated tasks are not cancelled.
    const history = await getTaskHistory(database, { kind: 'cli' }, t1);
    expect(history.map((h) => [h.id, h.event, h.reason])).toEqual([
      [h1a, 'created', null],
      [h1b, 'state', null],
      [h1c, 'state', null],
    ]);
    // Running the migrator again changes nothing.
    await migrate(database);
    expect(await database.query(`SELECT id, event, reason FROM task_history ORDER BY id`)).toEqual(rows);
  });
});
