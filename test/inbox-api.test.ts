/*
 * The routes the web inbox added: metadata search in the task list, the unresolved count, every
 * task type, a task's webhook deliveries, and a person's own password and sessions.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createUser } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { Webhooks } from '../src/core/webhooks/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { startReceiver } from './helpers/receiver.js';

const MODERATION = 'acme:moderation';
const OTHER = 'other';
const otherSchema = `name: ${OTHER}\nsemver: '1'\ntasktypes:\n- name: review\n  resolved_states: [done]\n`;
const MISSING = '00000000-0000-4000-8000-000000000000';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const problemCode = (res: LightMyRequestResponse) => String(res.json().type ?? '').split(':').pop();

/** Posts a task with the app's unlimited key; returns its id. */
async function post(t: TestApp, opts: { meta?: object; state?: string; schema?: string; task?: string } = {}): Promise<string> {
  const schema = opts.schema ?? MODERATION;
  const task = opts.task ?? (schema === OTHER ? 'review' : 'flag-content');
  const res = await t.call({ method: 'POST', url: '/api/v1/tasks/', key: t.key, payload: { schema_name: schema, task, state: opts.state, meta: opts.meta } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().task.id;
}

// ---------------------------------------------------------------------------------------------
describe('GET /api/v1/tasks/?q= searches the metadata', () => {
  let t: TestApp;
  const id = {} as Record<string, string>;

  /** The ids found for a query string (the API key is used; the cookie gives the same). */
  async function found(query: Record<string, string>): Promise<string[]> {
    const res = await t.call({ method: 'GET', url: `/api/v1/tasks/?${new URLSearchParams(query)}`, key: t.key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().tasks.map((x: { id: string }) => x.id);
  }

  beforeAll(async () => {
    t = await createTestApp();
    await installSchema(t.database, otherSchema);
    id.alice = await post(t, { meta: { Customer: 'Alice Smith', city: 'Berlin' } });
    id.bob = await post(t, { meta: { customer: 'Bob Jones', city: 'Paris' } });
    id.percent = await post(t, { meta: { discount: '50%' } });
    id.fivehundred = await post(t, { meta: { amount: '500' } });
    id.underscore = await post(t, { meta: { code: 'a_b' } });
    id.axb = await post(t, { meta: { code: 'axb' } });
    id.quote = await post(t, { meta: { said: 'say "hi"' } });
    id.backslash = await post(t, { meta: { path: 'C:\\temp' } });
    id.nested = await post(t, { meta: { order: { items: [{ sku: 'ZX-81' }] }, count: 7 } });
    id.none = await post(t);
    // For paging and filters: eight tasks tagged "batch", resolved or not, in two schemas.
    for (let i = 0; i < 8; i++) {
      id[`batch${i}`] = await post(t, {
        meta: { tag: 'batch', n: i },
        state: i % 3 === 2 ? 'block' : undefined,
        schema: i % 4 === 3 ? OTHER : MODERATION,
      });
    }
  });
  afterAll(() => t.close());

  test('one word: found in values and in keys, any case', async () => {
    expect(await found({ q: 'alice' })).toEqual([id.alice]);
    expect(await found({ q: 'ALICE' })).toEqual([id.alice]);
    expect(await found({ q: 'customer' })).toEqual([id.alice, id.bob]); // keys "Customer" and "customer"
    expect(await found({ q: 'berl' })).toEqual([id.alice]); // part of a word
    expect(await found({ q: 'zx-81' })).toEqual([id.nested]); // nested values
    expect(await found({ q: 'nobody' })).toEqual([]);
  });

  test('several words must all occur, in any field and order', async () => {
    expect(await found({ q: 'alice berlin' })).toEqual([id.alice]);
    expect(await found({ q: 'BERLIN   smith' })).toEqual([id.alice]);
    expect(await found({ q: 'alice paris' })).toEqual([]);
    expect(await found({ q: 'customer paris' })).toEqual([id.bob]);
  });

  test('% and _ are plain characters, not wildcards', async () => {
    expect(await found({ q: '50%' })).toEqual([id.percent]); // a wildcard would also find "500"
    expect(await found({ q: '5%0' })).toEqual([]); // a wildcard would find "500"
    expect(await found({ q: '%' })).toEqual([id.percent]);
    expect(await found({ q: 'a_b' })).toEqual([id.underscore]); // a wildcard would also find "axb"
    expect(await found({ q: '_' })).toEqual([id.underscore]);
  });

  test('quotes and backslashes in a word match the text as written', async () => {
    expect(await found({ q: '"hi"' })).toEqual([id.quote]);
    expect(await found({ q: 'say "hi' })).toEqual([id.quote]);
    expect(await found({ q: '"hello"' })).toEqual([]);
    expect(await found({ q: 'C:\\temp' })).toEqual([id.backslash]);
    expect(await found({ q: '\\t' })).toEqual([id.backslash]); // the backslash itself, not a tab
  });

  test('an empty or blank q filters nothing; a q over 200 characters → 400', async () => {
    const all = await found({});
    expect(all).toHaveLength(18);
    expect(await found({ q: '' })).toEqual(all);
    expect(await found({ q: '   ' })).toEqual(all);
    const res = await t.call({ method: 'GET', url: `/api/v1/tasks/?q=${'x'.repeat(201)}`, key: t.key });
    expect(res.statusCode).toBe(400);
    expect(problemCode(res)).toBe('bad-request');
  });

  test('up to 8 words must all occur; a 9th word is refused (400), never ignored', async () => {
    const eight = 'batch batch batch batch batch batch batch batch';
    expect(await found({ q: eight })).toEqual(await found({ q: 'batch' }));
    expect(await found({ q: `${eight.split(' ').slice(0, 7).join(' ')} nomatch` })).toEqual([]);
    const res = await t.call({ method: 'GET', url: `/api/v1/tasks/?q=${encodeURIComponent(`${eight} nomatch`)}`, key: t.key });
    expect(res.statusCode).toBe(400);
    expect(res.json().detail).toMatch(/at most 8 words/);
  });

  test('combined with resolved=un, schema and type filters', async () => {
    const batch = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => id[`batch${i}`]!);
    expect(await found({ q: 'batch' })).toEqual(batch);
    expect(await found({ q: 'batch', resolved: 'un' })).toEqual([0, 1, 3, 4, 6, 7].map((i) => batch[i]));
    expect(await found({ q: 'batch', resolved: 'done' })).toEqual([2, 5].map((i) => batch[i]));
    expect(await found({ q: 'batch', schema: OTHER })).toEqual([3, 7].map((i) => batch[i]));
    expect(await found({ q: 'batch', resolved: 'un', schema: MODERATION })).toEqual([0, 1, 4, 6].map((i) => batch[i]));
    expect(await found({ q: 'batch', schema: MODERATION, type: 'flag-content', state: 'block' })).toEqual([2, 5].map((i) => batch[i]));
    expect(await found({ q: 'batch', order: 'newest', resolved: 'un' })).toEqual([7, 6, 4, 3, 1, 0].map((i) => batch[i]));
  });

  test('a key limited to a schema searches only its tasks; a member searches them all', async () => {
    const { key } = await createApiKey(t.database, { name: 'other only', schemaName: OTHER });
    const res = await t.call({ method: 'GET', url: '/api/v1/tasks/?q=batch', key });
    expect(res.json().tasks.map((x: { id: string }) => x.id)).toEqual([id.batch3, id.batch7]);
    const member = await t.call({ method: 'GET', url: '/api/v1/tasks/?q=alice', cookie: t.adminCookie });
    expect(member.json().tasks.map((x: { id: string }) => x.id)).toEqual([id.alice]);
  });

  test('keyset paging with q walks every match once, in order, and nothing else', async () => {
    const walk = async (query: Record<string, string>) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await t.call({ method: 'GET', url: `/api/v1/tasks/?${new URLSearchParams({ ...query, limit: '2', ...(cursor ? { cursor } : {}) })}`, key: t.key });
        expect(res.statusCode, res.body).toBe(200);
        const body: { tasks: { id: string; meta: { tag?: string } | null }[]; next_cursor: string | null } = res.json();
        expect(body.tasks.length).toBeLessThanOrEqual(2);
        seen.push(...body.tasks.map((x) => x.id));
        cursor = body.next_cursor;
        pages++;
      } while (cursor && pages < 20);
      return { seen, pages };
    };
    const batch = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => id[`batch${i}`]!);
    expect(await walk({ q: 'batch' })).toEqual({ seen: batch, pages: 4 });
    expect(await walk({ q: 'batch', resolved: 'un' })).toEqual({ seen: [0, 1, 3, 4, 6, 7].map((i) => batch[i]), pages: 3 });
    expect(await walk({ q: 'batch', order: 'newest' })).toEqual({ seen: [...batch].reverse(), pages: 4 });
  });
});

// ---------------------------------------------------------------------------------------------
describe('GET /api/v1/tasks/count', () => {
  let t: TestApp;
  let otherKey: string;

  beforeAll(async () => {
    t = await createTestApp();
    await installSchema(t.database, otherSchema);
    otherKey = (await createApiKey(t.database, { name: 'other only', schemaName: OTHER })).key;
    // acme:moderation: 3 unresolved, 2 resolved; other: 1 unresolved, 1 resolved.
    for (const state of [undefined, 'level1', 'level2', 'block', 'allow']) await post(t, { state });
    await post(t, { schema: OTHER });
    await post(t, { schema: OTHER, state: 'done' });
  });
  afterAll(() => t.close());

  const count = async (query: string, who: { key?: string | null; cookie?: string }) => {
    const res = await t.call({ method: 'GET', url: `/api/v1/tasks/count${query}`, ...who });
    return { status: res.statusCode, body: res.json() };
  };

  test('unresolved by default; resolved=un, done and all; the same for a member and a key', async () => {
    for (const who of [{ key: t.key }, { cookie: t.adminCookie }]) {
      expect(await count('', who)).toEqual({ status: 200, body: { count: 4 } });
      expect(await count('?resolved=un', who)).toEqual({ status: 200, body: { count: 4 } });
      expect(await count('?resolved=done', who)).toEqual({ status: 200, body: { count: 3 } });
      expect(await count('?resolved=all', who)).toEqual({ status: 200, body: { count: 7 } });
    }
  });

  test("a key limited to one schema counts only that schema's tasks", async () => {
    expect((await count('', { key: otherKey })).body).toEqual({ count: 1 });
    expect((await count('?resolved=done', { key: otherKey })).body).toEqual({ count: 1 });
    expect((await count('?resolved=all', { key: otherKey })).body).toEqual({ count: 2 });
  });

  test('the count follows changes', async () => {
    const id = await post(t, { schema: OTHER });
    expect((await count('', { key: otherKey })).body).toEqual({ count: 2 });
    await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=done`, key: t.key });
    expect((await count('', { key: otherKey })).body).toEqual({ count: 1 });
    expect((await count('?resolved=all', { key: t.key })).body).toEqual({ count: 8 });
  });

  test('bad resolved → 400; no credentials → 401; unknown key → 403', async () => {
    expect((await count('?resolved=maybe', { key: t.key })).status).toBe(400);
    expect((await count('', { key: null })).status).toBe(401);
    expect((await count('', { key: 'ti_wrong' })).status).toBe(403);
  });
});

// ---------------------------------------------------------------------------------------------
describe('GET /api/v1/types', () => {
  let t: TestApp;
  const moderationV2 = `name: '${MODERATION}'
semver: '2'
tasktypes:
- name: flag-content
  pending_states: ['level1']
  resolved_states: ['block', 'allow', 'escalate']
- name: spam
  resolved_states: ['spam', 'ham']
`;

  beforeAll(async () => {
    t = await createTestApp();
    await installSchema(t.database, otherSchema);
    await installSchema(t.database, moderationV2);
  });
  afterAll(() => t.close());

  const types = async (who: { key?: string | null; cookie?: string }) => {
    const res = await t.call({ method: 'GET', url: '/api/v1/types', ...who });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().types as Record<string, unknown>[];
  };

  test('every type of every schema version, by schema, version and type', async () => {
    const list = await types({ key: t.key });
    for (const ty of list) expect(Object.keys(ty).sort()).toEqual(['id', 'name', 'pending_states', 'resolved_states', 'schema_name', 'semver', 'version']);
    expect(list.map(({ id: _, ...rest }) => rest)).toEqual([
      { name: 'delete-acct', schema_name: MODERATION, version: 0, semver: '1', pending_states: [], resolved_states: ['deleted'] },
      { name: 'flag-content', schema_name: MODERATION, version: 0, semver: '1', pending_states: ['level1', 'level2'], resolved_states: ['block', 'allow'] },
      { name: 'flag-content', schema_name: MODERATION, version: 1, semver: '2', pending_states: ['level1'], resolved_states: ['block', 'allow', 'escalate'] },
      { name: 'spam', schema_name: MODERATION, version: 1, semver: '2', pending_states: [], resolved_states: ['spam', 'ham'] },
      { name: 'review', schema_name: OTHER, version: 0, semver: '1', pending_states: [], resolved_states: ['done'] },
    ]);
    expect(new Set(list.map((x) => x.id)).size).toBe(5);
    expect(await types({ cookie: t.adminCookie })).toEqual(list);
  });

  test('the ids are the ttype_id of tasks', async () => {
    const res = await t.call({ method: 'POST', url: '/api/v1/tasks/', key: t.key, payload: { schema_name: MODERATION, task: 'spam' } });
    const ttypeId = res.json().task.ttype_id;
    expect((await types({ key: t.key })).find((x) => x.id === ttypeId)).toMatchObject({ name: 'spam', version: 1 });
  });

  test('a key limited to a schema sees only its types; no credentials → 401', async () => {
    const { key } = await createApiKey(t.database, { name: 'other only', schemaName: OTHER });
    expect((await types({ key })).map((x) => [x.schema_name, x.name])).toEqual([[OTHER, 'review']]);
    const res = await t.call({ method: 'GET', url: '/api/v1/types', key: null });
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect((await t.call({ method: 'GET', url: '/api/v1/types', key: 'ti_wrong' })).statusCode).toBe(403);
  });
});

// ---------------------------------------------------------------------------------------------
describe('GET /api/v1/tasks/:id/deliveries', () => {
  const HOOKS = 'acme:hooks';

  test("a task's async deliveries, oldest first, each with its attempts and the receiver's answers", async () => {
    const t = await createTestApp({ env: { WEBHOOK_RETRY_SCHEDULE: '50ms,50ms,50ms' } });
    const receiver = await startReceiver((_req, n) => (n === 1 ? { status: 503, body: 'try later' } : { status: 200, body: `thanks ${n}` }));
    try {
      await installSchema(t.database, `name: '${HOOKS}'\nsemver: '1'\ndefault_hook_url: '${receiver.url}'\nhook_mode: async\ntasktypes:\n- name: review\n  pending_states: ['open', 'held']\n  resolved_states: ['done']\n`);
      await installSchema(t.database, otherSchema);
      // The app's own Webhooks only enqueues; this one sends (a worker would do the same).
      const webhooks = new Webhooks({ database: t.database, config: t.config, secrets: loadSecretBox(t.config) });
      const deliveriesOf = (id: string, who: { key?: string | null; cookie?: string } = { key: t.key }) =>
        t.call({ method: 'GET', url: `/api/v1/tasks/${id}/deliveries`, ...who });

      const id = await post(t, { schema: HOOKS, task: 'review', state: 'open' });
      expect((await deliveriesOf(id)).json()).toEqual({ deliveries: [] }); // creating sends no webhook
      const plain = await post(t, { schema: OTHER });
      expect((await t.call({ method: 'PATCH', url: `/api/v1/tasks/${plain}/state?state=done`, key: t.key })).statusCode).toBe(200);
      expect((await deliveriesOf(plain)).json()).toEqual({ deliveries: [] }); // a schema without webhooks

      expect((await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=held`, key: t.key })).statusCode).toBe(200);
      const pending = (await deliveriesOf(id)).json().deliveries;
      expect(pending).toHaveLength(1);
      expect(pending[0]).toMatchObject({ task_id: id, schema_name: HOOKS, url: receiver.url, mode: 'async', status: 'pending', attempts: [] });

      // First attempt 503, the retry 200.
      const deadline = Date.now() + 10_000;
      while (receiver.received.length < 2 && Date.now() < deadline) {
        await webhooks.runDue();
        await sleep(20);
      }
      expect((await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=done`, key: t.key })).statusCode).toBe(200);
      while (receiver.received.length < 3 && Date.now() < deadline) {
        await webhooks.runDue();
        await sleep(20);
      }
      expect(receiver.received).toHaveLength(3);

      const res = await deliveriesOf(id);
      expect(res.statusCode, res.body).toBe(200);
      const [first, second] = res.json().deliveries;
      expect(res.json().deliveries).toHaveLength(2);
      expect(first).toMatchObject({ task_id: id, status: 'delivered', last_status: 200 });
      expect(first.attempts).toMatchObject([
        { status_code: 503, response_body: 'try later', error: null },
        { status_code: 200, response_body: 'thanks 2' },
      ]);
      expect(first.attempts[0].id).toBeLessThan(first.attempts[1].id);
      expect(second).toMatchObject({ task_id: id, status: 'delivered', attempts: [{ status_code: 200, response_body: 'thanks 3', error: null }] });
      expect(second.history_id).toBeGreaterThan(first.history_id);
      expect(Object.keys(first.attempts[0]).sort()).toEqual(['created', 'error', 'id', 'latency_ms', 'response_body', 'status_code']);

      // A member sees the same; a key of the task's schema too; a key of another schema gets 404.
      expect((await deliveriesOf(id, { cookie: t.adminCookie })).json()).toEqual(res.json());
      const { key: hooksKey } = await createApiKey(t.database, { name: 'hooks only', schemaName: HOOKS });
      expect((await deliveriesOf(id, { key: hooksKey })).json()).toEqual(res.json());
      const { key: otherKey } = await createApiKey(t.database, { name: 'other only', schemaName: OTHER });
      const refused = await deliveriesOf(id, { key: otherKey });
      expect(refused.statusCode).toBe(404);
      expect(refused.body).not.toContain(receiver.url);

      expect((await deliveriesOf(MISSING)).statusCode).toBe(404);
      expect(problemCode(await deliveriesOf(MISSING))).toBe('task-not-found');
      expect((await deliveriesOf('not-a-uuid')).statusCode).toBe(400);
      expect((await deliveriesOf(id, { key: null })).statusCode).toBe(401);
    } finally {
      await receiver.close();
      await t.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A person's own password and sessions. Each test has its own app: they change who may sign in.

const MIA = { username: 'mia', name: 'Mia Member', password: 'member-password-1' };

/** Signs in through the API; returns the status and, on success, the Cookie header to send. */
async function login(t: TestApp, username: string, password: string, userAgent = 'test-browser') {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'user-agent': userAgent }, payload: { username, password } });
  const setCookie = String(res.headers['set-cookie'] ?? '');
  return { status: res.statusCode, cookie: res.statusCode === 200 ? setCookie.split(';')[0]! : '' };
}

async function appWithMia(): Promise<TestApp> {
  const t = await createTestApp();
  await createUser(t.database, cliActor, { ...MIA, role: 'member' });
  return t;
}

/** Whether a session cookie is still signed in. */
async function signedIn(t: TestApp, cookie: string): Promise<boolean> {
  const res = await t.call({ method: 'GET', url: '/api/v1/me', cookie });
  expect([200, 401]).toContain(res.statusCode);
  return res.statusCode === 200;
}

const changePassword = (t: TestApp, cookie: string, body: object, headers: Record<string, string> = {}) =>
  t.call({ method: 'POST', url: '/api/v1/me/password', cookie, payload: body, headers });

describe('POST /api/v1/me/password', () => {
  test('a wrong current password → 400 and nothing changes', async () => {
    const t = await appWithMia();
    try {
      const { cookie } = await login(t, MIA.username, MIA.password);
      const res = await changePassword(t, cookie, { current_password: 'not-my-password', password: 'brand-new-password-2' });
      expect(res.statusCode).toBe(400);
      expect(problemCode(res)).toBe('bad-request');
      expect(res.json().detail).toMatch(/current password/i);
      expect(await signedIn(t, cookie)).toBe(true);
      expect((await login(t, MIA.username, MIA.password)).status).toBe(200);
      expect((await login(t, MIA.username, 'brand-new-password-2')).status).toBe(401);
      const audit = await t.database.query('SELECT * FROM audit_events WHERE action = $1', ['user.change-password']);
      expect(audit).toEqual([]);
    } finally {
      await t.close();
    }
  });

  test('a too short new password → 400 and nothing changes; a malformed body → 400', async () => {
    const t = await appWithMia();
    try {
      const { cookie } = await login(t, MIA.username, MIA.password);
      const res = await changePassword(t, cookie, { current_password: MIA.password, password: 'short' });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toMatch(/at least \d+ characters/);
      expect((await login(t, MIA.username, MIA.password)).status).toBe(200);
      expect((await login(t, MIA.username, 'short')).status).toBe(401);
      for (const body of [{}, { password: 'brand-new-password-2' }, { current_password: MIA.password }, { current_password: '', password: 'brand-new-password-2' }]) {
        expect((await changePassword(t, cookie, body)).statusCode, JSON.stringify(body)).toBe(400);
      }
      expect((await login(t, MIA.username, MIA.password)).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  test("success: the new password signs in, the old does not; this session stays, the person's other sessions end, other people's stay", async () => {
    const t = await appWithMia();
    try {
      const here = (await login(t, MIA.username, MIA.password, 'laptop')).cookie;
      const phone = (await login(t, MIA.username, MIA.password, 'phone')).cookie;
      const res = await changePassword(t, here, { current_password: MIA.password, password: 'brand-new-password-2' });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ ok: true });

      expect(await signedIn(t, here)).toBe(true);
      expect(await signedIn(t, phone)).toBe(false);
      expect(await signedIn(t, t.adminCookie)).toBe(true);
      expect((await login(t, MIA.username, MIA.password)).status).toBe(401);
      expect((await login(t, MIA.username, 'brand-new-password-2')).status).toBe(200);
      // The admin's password is untouched.
      expect((await login(t, 'admin', 'admin-password-1')).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  test('the audit trail records the change, and no password text anywhere', async () => {
    const t = await appWithMia();
    try {
      const { cookie } = await login(t, MIA.username, MIA.password);
      await changePassword(t, cookie, { current_password: 'wrong-password-here', password: 'brand-new-password-2' });
      expect((await changePassword(t, cookie, { current_password: MIA.password, password: 'brand-new-password-2' })).statusCode).toBe(200);
      const rows = await t.database.query<{ action: string; actor_kind: string; actor_name: string; target: string }>('SELECT * FROM audit_events ORDER BY id');
      expect(rows.filter((r) => r.action === 'user.change-password')).toEqual([
        expect.objectContaining({ action: 'user.change-password', actor_kind: 'person', actor_name: MIA.username, target: MIA.username }),
      ]);
      const everything = JSON.stringify(rows);
      for (const secret of [MIA.password, 'brand-new-password-2', 'wrong-password-here']) expect(everything).not.toContain(secret);
    } finally {
      await t.close();
    }
  });

  test('refused from another site, and without a session (an API key is not a person)', async () => {
    const t = await appWithMia();
    try {
      const { cookie } = await login(t, MIA.username, MIA.password);
      const body = { current_password: MIA.password, password: 'brand-new-password-2' };
      const crossSite = await changePassword(t, cookie, body, { origin: 'https://evil.example' });
      expect(crossSite.statusCode).toBe(403);
      expect(problemCode(crossSite)).toBe('cross-site-request');
      const withKey = await t.call({ method: 'POST', url: '/api/v1/me/password', key: t.key, payload: body });
      expect(withKey.statusCode).toBe(401);
      expect((await login(t, MIA.username, MIA.password)).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('GET and DELETE /api/v1/me/sessions', () => {
  interface SessionInfo {
    id: string;
    current?: boolean;
    user_agent: string | null;
  }
  const sessionsOf = async (t: TestApp, cookie: string): Promise<SessionInfo[]> => {
    const res = await t.call({ method: 'GET', url: '/api/v1/me/sessions', cookie });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().sessions;
  };

  test("lists only the caller's own sessions, marking the one in use", async () => {
    const t = await appWithMia();
    try {
      const laptop = (await login(t, MIA.username, MIA.password, 'laptop')).cookie;
      const phone = (await login(t, MIA.username, MIA.password, 'phone')).cookie;
      const fromLaptop = await sessionsOf(t, laptop);
      expect(fromLaptop.map((s) => [s.user_agent, s.current])).toEqual([
        ['laptop', true],
        ['phone', false],
      ]);
      for (const s of fromLaptop) expect(Object.keys(s).sort()).toEqual(['created', 'current', 'expires', 'id', 'ip', 'last_seen', 'user_agent']);
      const fromPhone = await sessionsOf(t, phone);
      expect(fromPhone.map((s) => [s.id, s.current])).toEqual([
        [fromLaptop[0]!.id, false],
        [fromLaptop[1]!.id, true],
      ]);
      // The admin sees only the admin's session.
      const admins = await sessionsOf(t, t.adminCookie);
      expect(admins).toHaveLength(1);
      expect(admins[0]!.current).toBe(true);
      expect(fromLaptop.map((s) => s.id)).not.toContain(admins[0]!.id);
    } finally {
      await t.close();
    }
  });

  test("ends one's own other session; another person's session id → 404 and that session stays", async () => {
    const t = await appWithMia();
    try {
      const laptop = (await login(t, MIA.username, MIA.password, 'laptop')).cookie;
      const phone = (await login(t, MIA.username, MIA.password, 'phone')).cookie;
      const [, phoneSession] = await sessionsOf(t, laptop);
      const [adminSession] = await sessionsOf(t, t.adminCookie);

      const other = await t.call({ method: 'DELETE', url: `/api/v1/me/sessions/${adminSession!.id}`, cookie: laptop });
      expect(other.statusCode).toBe(404);
      expect(problemCode(other)).toBe('not-found');
      expect(await signedIn(t, t.adminCookie)).toBe(true);

      expect((await t.call({ method: 'DELETE', url: `/api/v1/me/sessions/${MISSING}`, cookie: laptop })).statusCode).toBe(404);
      expect((await t.call({ method: 'DELETE', url: '/api/v1/me/sessions/not-a-uuid', cookie: laptop })).statusCode).toBe(400);

      const res = await t.call({ method: 'DELETE', url: `/api/v1/me/sessions/${phoneSession!.id}`, cookie: laptop });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ ok: true });
      expect(await signedIn(t, phone)).toBe(false);
      expect(await signedIn(t, laptop)).toBe(true);
      expect((await sessionsOf(t, laptop)).map((s) => s.user_agent)).toEqual(['laptop']);
      // Ending it twice: it is gone.
      expect((await t.call({ method: 'DELETE', url: `/api/v1/me/sessions/${phoneSession!.id}`, cookie: laptop })).statusCode).toBe(404);
      const audit = await t.database.query<{ action: string; target: string; actor_name: string }>('SELECT * FROM audit_events WHERE action = $1', ['session.revoke']);
      expect(audit).toEqual([expect.objectContaining({ target: phoneSession!.id, actor_name: MIA.username })]);
    } finally {
      await t.close();
    }
  });

  test('an API key alone → 401 on these routes', async () => {
    const t = await appWithMia();
    try {
      const [adminSession] = await sessionsOf(t, t.adminCookie);
      const withKey = (method: 'GET' | 'DELETE', url: string) => t.call({ method, url, key: t.key });
      for (const res of [await withKey('GET', '/api/v1/me/sessions'), await withKey('DELETE', `/api/v1/me/sessions/${adminSession!.id}`)]) {
        expect(res.statusCode).toBe(401);
        expect(problemCode(res)).toBe('not-signed-in');
      }
      expect(await signedIn(t, t.adminCookie)).toBe(true);
    } finally {
      await t.close();
    }
  });
});
