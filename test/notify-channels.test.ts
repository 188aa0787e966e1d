import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { InjectOptions } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createChannel, Notifications } from '../src/core/notify/index.js';
import { NEW_TASK_WAKE_MS } from '../src/core/notify/notifications.service.js';
import { createUser, signIn, updateUser } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { buildApp } from '../src/http/app.js';
import { sampleSchema, testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';
import { deadPort, startReceiver } from './helpers/receiver.js';

// Issue 7: Slack, ntfy and JSON-webhook channels, the "send a test" button, digests, topics,
// sealed channel secrets, who may touch a channel, and retries of a failing channel.

const ORIGIN = 'http://inbox.test';
const STATES = ['allow', 'block', 'level1', 'level2'];
const ACT = String.raw`http://inbox\.test/act/[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{22}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Closed after each test. */
const cleanups: (() => Promise<void>)[] = [];
const later = <T extends { close(): Promise<void> }>(x: T) => (cleanups.push(() => x.close()), x);
async function receiver(respond?: Parameters<typeof startReceiver>[0]) {
  return later(await startReceiver(respond));
}

/** A local server that also records the method and path (ntfy publishes to the server root). */
async function recorder() {
  const got: { method: string; url: string; headers: http.IncomingHttpHeaders; json: Record<string, unknown> }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ method: req.method!, url: req.url!, headers: req.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return later({ server: `http://127.0.0.1:${port}`, port, got, close: () => (server.closeAllConnections(), new Promise<void>((r) => server.close(() => r()))) });
}

let h: Awaited<ReturnType<typeof setup>>;
async function setup() {
  const { database } = await createTestDatabase();
  const config = testConfig({ PUBLIC_URL: ORIGIN, WEBHOOK_RETRY_SCHEDULE: '100ms' });
  await installSchema(database, sampleSchema);
  const { key } = await createApiKey(database, { name: 'test' });
  const people: Record<string, { id: string; cookie: string }> = {};
  for (const [username, role] of [['admin', 'admin'], ['mia', 'member']] as const) {
    const { id } = await createUser(database, cliActor, { username, name: username, role, password: `${username}-password-1` });
    const { token } = await signIn(database, config, { username, password: `${username}-password-1`, ip: '127.0.0.1' });
    people[username] = { id, cookie: `ti_session=${token}` };
  }
  const secrets = loadSecretBox(config);
  const notifications = new Notifications({ database, config, secrets, baseUrl: () => ORIGIN });
  const app = await buildApp({ config, database, notifications });
  await app.ready();
  const as = (who: 'admin' | 'mia' | 'key' | 'none', o: InjectOptions) =>
    app.inject({ ...o, headers: { ...(who === 'key' ? { 'api-key': key } : who === 'none' ? {} : { cookie: people[who]!.cookie }), ...(o.headers as object) } });
  return {
    app,
    database,
    config,
    secrets,
    notifications,
    mia: people.mia!,
    as,
    async addChannel(payload: object, who: 'admin' | 'mia' = 'mia') {
      const res = await as(who, { method: 'POST', url: '/api/v1/me/channels', payload });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().channel as { id: string; label: string; digest_minutes: number | null };
    },
    async newTask(task = 'flag-content', meta: object = {}) {
      const res = await as('key', { method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:moderation', task, meta } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().task.id as string;
    },
    async resolve(id: string) {
      expect((await as('key', { method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=block` })).statusCode).toBe(200);
    },
    async deliverAll() {
      const batches = await notifications.claimDue(100);
      for (const b of batches) await notifications.deliver(b);
      return batches;
    },
    rows: (channelId: string) =>
      database.query<{ id: number; task_id: string; status: string; attempts: number; last_status: number | null; next_attempt_at: Date }>(
        'SELECT * FROM notifications WHERE channel_id = $1 ORDER BY id',
        [channelId],
      ),
    async settings(who: 'admin' | 'mia' = 'mia') {
      const res = await as(who, { method: 'GET', url: '/api/v1/me/notifications' });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as { topics: unknown; channels: { id: string; label: string; last_error: string | null; last_sent_at: string | null; digest_minutes: number | null }[] };
    },
  };
}

beforeAll(async () => {
  h = await setup();
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  // Each test starts with no channels (their messages go with them) and no topics.
  await h.database.query('DELETE FROM notification_channels');
  await h.database.query('UPDATE users SET notify_topics = NULL');
});
afterAll(async () => {
  await h.app.close();
  h.notifications.close();
  await h.database.close();
});

describe('channel bodies', () => {
  test('Slack: {text} with mrkdwn links <url|state> per state and escaped values', async () => {
    const r = await receiver();
    const ch = await h.addChannel({ kind: 'slack', url: r.url });
    const id = await h.newTask('flag-content', { title__notify: 'a < b & c > d', plain: 'PLAIN-VALUE' });
    expect(await h.deliverAll()).toHaveLength(1);
    expect(r.received).toHaveLength(1);
    expect(r.received[0]!.headers['content-type']).toMatch(/^application\/json/);
    const body = JSON.parse(r.received[0]!.body) as { text: string };
    expect(Object.keys(body)).toEqual(['text']);
    expect(body.text).toContain(`<${ORIGIN}/taskui/${id}|open>`);
    for (const s of STATES) expect(body.text).toMatch(new RegExp(`<${ACT}\\|${s}>`));
    expect(body.text).toContain('title: a &lt; b &amp; c &gt; d');
    expect(body.text).not.toContain('a < b');
    expect(body.text).not.toContain('PLAIN-VALUE');
    expect(await h.rows(ch.id)).toMatchObject([{ task_id: id, status: 'sent', attempts: 1 }]);
  });

  test('ntfy: JSON to the server root with topic, title, message, click, up to 3 view actions, and the token', async () => {
    const withToken = await recorder();
    const without = await recorder();
    await h.addChannel({ kind: 'ntfy', server: withToken.server, topic: 'inbox-alerts', token: 'tk_abc123' });
    await h.addChannel({ kind: 'ntfy', server: `${without.server}/`, topic: 'open_topic' });
    const id = await h.newTask('flag-content', { title__notify: 'Look here' });
    await h.deliverAll();
    expect(withToken.got).toHaveLength(1);
    expect(without.got).toHaveLength(1);
    const [a, b] = [withToken.got[0]!, without.got[0]!];
    expect([a.method, a.url, b.method, b.url]).toEqual(['POST', '/', 'POST', '/']);
    expect(a.headers.authorization).toBe('Bearer tk_abc123');
    expect(b.headers.authorization).toBeUndefined();
    expect(b.json.topic).toBe('open_topic');
    expect(a.json).toMatchObject({ topic: 'inbox-alerts', title: 'new flag-content (acme:moderation)', click: `${ORIGIN}/taskui/${id}` });
    expect(a.json.message).toContain('acme:moderation · flag-content');
    expect(a.json.message).toContain('title: Look here');
    const actions = a.json.actions as { action: string; label: string; url: string }[];
    expect(actions).toHaveLength(3);
    for (const x of actions) {
      expect(x).toMatchObject({ action: 'view', url: expect.stringMatching(new RegExp(`^${ACT}$`)) });
      expect(STATES).toContain(x.label);
    }
    expect(new Set(actions.map((x) => x.label)).size).toBe(3);
  });

  test('generic webhook: {type: tasks.new, tasks: [{id, schema, type, url, fields, actions}]}', async () => {
    const r = await receiver();
    await h.addChannel({ kind: 'webhook', url: r.url });
    const id = await h.newTask('flag-content', { title__notify: 'Hello', count__notify: 3, hidden: 'PLAIN' });
    await h.deliverAll();
    expect(r.received).toHaveLength(1);
    const body = JSON.parse(r.received[0]!.body) as { tasks: { actions: { state: string }[] }[] };
    body.tasks[0]!.actions.sort((x, y) => x.state.localeCompare(y.state));
    expect(body).toEqual({
      type: 'tasks.new',
      tasks: [
        {
          id,
          schema: 'acme:moderation',
          type: 'flag-content',
          url: `${ORIGIN}/taskui/${id}`,
          fields: { title: 'Hello', count: '3' },
          actions: STATES.map((state) => ({ state, url: expect.stringMatching(new RegExp(`^${ACT}$`)) })),
        },
      ],
    });
  });

  test('send a test: ok and status; a 500 or a dead port → ok:false with an error, kept as last_error', async () => {
    const r = await receiver();
    const ch = await h.addChannel({ kind: 'webhook', url: r.url });
    const sendTest = async (id: string) => {
      const res = await h.as('mia', { method: 'POST', url: `/api/v1/me/channels/${id}/test` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as { ok: boolean; status: number | null; error: string | null };
    };
    expect(await sendTest(ch.id)).toEqual({ ok: true, status: 200, error: null });
    expect(JSON.parse(r.received[0]!.body)).toMatchObject({ type: 'test', message: expect.any(String) });

    r.setAnswer(() => ({ status: 500, body: 'boom' }));
    const failed = await sendTest(ch.id);
    expect(failed).toMatchObject({ ok: false, status: 500, error: expect.stringContaining('500') });
    expect((await h.settings()).channels.find((c) => c.id === ch.id)!.last_error).toBe(failed.error);

    r.setAnswer(() => ({ status: 200 }));
    expect((await sendTest(ch.id)).ok).toBe(true);
    expect((await h.settings()).channels.find((c) => c.id === ch.id)).toMatchObject({ last_error: null, last_sent_at: expect.any(String) });

    const dead = await h.addChannel({ kind: 'slack', url: `http://127.0.0.1:${await deadPort()}/hook` });
    const down = await sendTest(dead.id);
    expect(down).toMatchObject({ ok: false, status: null, error: expect.any(String) });
    expect(down.error).not.toBe('');
    expect((await h.settings()).channels.find((c) => c.id === dead.id)!.last_error).toBe(down.error);
  });
});

describe('digests', () => {
  test('tasks within the window go as one message; a task resolved before is left out; all resolved → skipped, nothing sent', async () => {
    const ntfy = await recorder();
    const r = await receiver();
    const n = await h.addChannel({ kind: 'ntfy', server: ntfy.server, topic: 'digest', digest_minutes: 10 });
    const w = await h.addChannel({ kind: 'webhook', url: r.url, digest_minutes: 10 });
    const first = await h.newTask();
    while ((await h.notifications.fanOut()) > 0);
    const ids = [first, await h.newTask(), await h.newTask(), await h.newTask()];
    expect(await h.deliverAll()).toEqual([]);
    const gathering = await h.rows(n.id);
    expect(gathering).toHaveLength(4);
    expect(new Set(gathering.map((x) => new Date(x.next_attempt_at).getTime())).size).toBe(1);
    expect(new Date(gathering[0]!.next_attempt_at).getTime()).toBeGreaterThan(Date.now() + 9 * 60_000);
    await h.resolve(ids[3]!);

    await h.database.query('UPDATE notifications SET next_attempt_at = now() WHERE digest');
    expect(await h.deliverAll()).toHaveLength(2);
    expect(ntfy.got).toHaveLength(1);
    expect(ntfy.got[0]!.json).toMatchObject({ topic: 'digest', title: '3 new tasks' });
    const message = String(ntfy.got[0]!.json.message);
    for (const id of ids.slice(0, 3)) expect(message).toContain(`${ORIGIN}/taskui/${id}`);
    expect(message).not.toContain(ids[3]!);
    expect(r.received).toHaveLength(1);
    const tasks = (JSON.parse(r.received[0]!.body) as { tasks: { id: string }[] }).tasks;
    expect(tasks.map((t) => t.id).sort()).toEqual(ids.slice(0, 3).sort());
    expect((await h.rows(w.id)).filter((x) => x.status === 'sent')).toHaveLength(4);

    // A new digest: both tasks resolved before it is due.
    const more = [await h.newTask(), await h.newTask()];
    expect(await h.deliverAll()).toEqual([]);
    for (const id of more) await h.resolve(id);
    await h.database.query("UPDATE notifications SET next_attempt_at = now() WHERE digest AND status = 'pending'");
    await h.deliverAll();
    expect(ntfy.got).toHaveLength(1);
    expect(r.received).toHaveLength(1);
    for (const ch of [n, w]) expect((await h.rows(ch.id)).filter((x) => more.includes(x.task_id)).map((x) => x.status)).toEqual(['skipped', 'skipped']);
  });
});

describe('topics, people and secrets', () => {
  test('topics: only matching tasks notify the person; null → everything', async () => {
    const r = await receiver();
    await h.addChannel({ kind: 'webhook', url: r.url });
    const putTopics = async (topics: unknown) => {
      const res = await h.as('mia', { method: 'PUT', url: '/api/v1/me/notifications/topics', payload: { topics } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().topics;
    };
    const sentIds = () => r.received.map((x) => (JSON.parse(x.body) as { tasks: { id: string }[] }).tasks[0]!.id);
    expect(await putTopics([{ schema: 'acme:moderation', type: 'delete-acct' }])).toEqual([{ schema: 'acme:moderation', type: 'delete-acct' }]);
    const flag = await h.newTask('flag-content');
    const del = await h.newTask('delete-acct');
    await h.deliverAll();
    expect(sentIds()).toEqual([del]);
    expect(flag).not.toBe(del);

    await putTopics([{ schema: 'other:schema', type: null }]);
    await h.newTask('delete-acct');
    await h.deliverAll();
    expect(r.received).toHaveLength(1);

    expect(await putTopics(null)).toBeNull();
    const all = [await h.newTask('flag-content'), await h.newTask('delete-acct')];
    await h.deliverAll();
    expect(sentIds().slice(1).sort()).toEqual(all.sort());
  });

  test('a deactivated person gets nothing', async () => {
    const r = await receiver();
    const dan = await createUser(h.database, cliActor, { username: 'dan', name: 'Dan', role: 'member', password: 'dan-password-1' });
    const ch = await createChannel(h.database, h.config, h.secrets, dan.id, { kind: 'webhook', url: r.url, digest_minutes: null });
    await h.newTask();
    await h.deliverAll();
    expect(r.received).toHaveLength(1);
    await updateUser(h.database, cliActor, 'dan', { active: false });
    await h.newTask();
    await h.deliverAll();
    expect(r.received).toHaveLength(1);
    expect(await h.rows(ch.id)).toHaveLength(1);
  });

  test('channel secrets are sealed and never shown; labels show the host only', async () => {
    const r = await receiver();
    const slack = await h.addChannel({ kind: 'slack', url: `http://127.0.0.1:${r.port}/services/T000/SLACKSECRETPATH` });
    const ntfy = await h.addChannel({ kind: 'ntfy', server: `http://127.0.0.1:${r.port}`, topic: 'alerts', token: 'tk_NTFYSECRETTOKEN' });
    const stored = await h.database.query<{ config_enc: string }>('SELECT config_enc FROM notification_channels');
    expect(stored).toHaveLength(2);
    for (const { config_enc } of stored) {
      expect(config_enc).toMatch(/^v1:/);
      expect(config_enc).not.toMatch(/SLACKSECRETPATH|tk_NTFYSECRETTOKEN|services/);
    }
    const settings = await h.settings();
    expect(JSON.stringify([settings, slack, ntfy])).not.toMatch(/SLACKSECRETPATH|tk_NTFYSECRETTOKEN|services/);
    expect(settings.channels.map((c) => c.label)).toEqual([`127.0.0.1:${r.port} (chat webhook)`, `127.0.0.1:${r.port}/alerts`]);
  });

  test('another person cannot see, test, change or delete my channel (404)', async () => {
    const r = await receiver();
    const ch = await h.addChannel({ kind: 'webhook', url: r.url });
    expect((await h.settings('admin')).channels.map((c) => c.id)).not.toContain(ch.id);
    const tries: InjectOptions[] = [
      { method: 'POST', url: `/api/v1/me/channels/${ch.id}/test` },
      { method: 'PATCH', url: `/api/v1/me/channels/${ch.id}`, payload: { digest_minutes: 5 } },
      { method: 'DELETE', url: `/api/v1/me/channels/${ch.id}` },
    ];
    for (const o of tries) expect((await h.as('admin', o)).statusCode).toBe(404);
    expect(r.received).toHaveLength(0);
    expect((await h.settings()).channels).toMatchObject([{ id: ch.id, digest_minutes: null }]);
  });

  test('the settings routes need a session (401 without, an API key is not enough); email needs SMTP_URL (400)', async () => {
    const ch = await h.addChannel({ kind: 'webhook', url: 'http://127.0.0.1:9/hook' });
    const routes: InjectOptions[] = [
      { method: 'GET', url: '/api/v1/me/notifications' },
      { method: 'PUT', url: '/api/v1/me/notifications/topics', payload: { topics: null } },
      { method: 'POST', url: '/api/v1/me/channels', payload: { kind: 'webhook', url: 'http://127.0.0.1:9/x' } },
      { method: 'PATCH', url: `/api/v1/me/channels/${ch.id}`, payload: { digest_minutes: 5 } },
      { method: 'DELETE', url: `/api/v1/me/channels/${ch.id}` },
      { method: 'POST', url: `/api/v1/me/channels/${ch.id}/test` },
      { method: 'GET', url: '/api/v1/admin/notifications' },
    ];
    for (const o of routes) {
      expect((await h.as('none', o)).statusCode, `${o.method} ${o.url}`).toBe(401);
      expect((await h.as('key', o)).statusCode, `${o.method} ${o.url} with an API key`).toBe(401);
    }
    expect((await h.settings()).channels).toHaveLength(1);
    const email = await h.as('mia', { method: 'POST', url: '/api/v1/me/channels', payload: { kind: 'email', address: 'mia@example.org' } });
    expect(email.statusCode, email.body).toBe(400);
    expect(email.json().detail).toMatch(/SMTP_URL/);
  });
});

describe('failure, retry and the log', () => {
  test('a 500 keeps the message pending (attempts 1, due later); after the schedule (100ms) it is dead; the admin log pages and filters', async () => {
    const r = await receiver(() => ({ status: 500 }));
    const ch = await h.addChannel({ kind: 'webhook', url: r.url });
    const ids = [await h.newTask(), await h.newTask(), await h.newTask()];
    while ((await h.notifications.fanOut()) > 0);
    const before = await h.rows(ch.id);
    await h.deliverAll();
    const after = await h.rows(ch.id);
    expect(after.map((x) => [x.status, x.attempts, x.last_status])).toEqual(ids.map(() => ['pending', 1, 500]));
    // Due again one delay (100ms ± 20 %) after the attempt, which came after the first due time.
    for (const [i, x] of after.entries()) expect(new Date(x.next_attempt_at).getTime()).toBeGreaterThanOrEqual(new Date(before[i]!.next_attempt_at).getTime() + 80);
    expect((await h.settings()).channels[0]!.last_error).toMatch(/500/);

    // Retry once more after the only delay; then the schedule is exhausted.
    await sleep(250);
    await h.deliverAll();
    expect((await h.rows(ch.id)).map((x) => [x.status, x.attempts])).toEqual(ids.map(() => ['dead', 2]));
    expect(r.received).toHaveLength(6);
    await sleep(250);
    expect(await h.deliverAll()).toEqual([]);

    // One left pending next to the dead ones, to filter.
    r.setAnswer(() => ({ status: 503 }));
    const pendingId = await h.newTask();
    await h.deliverAll();

    const log = (who: 'admin' | 'mia', q: string) => h.as(who, { method: 'GET', url: `/api/v1/admin/notifications?${q}` });
    expect((await log('mia', '')).statusCode).toBe(403);
    const all = (await log('admin', '')).json() as { notifications: { id: string; task_id: string; status: string; username: string }[]; next_cursor: string | null };
    expect(all.next_cursor).toBeNull();
    // Newest first: the pending one, then the three dead ones (written together, in any order).
    expect(all.notifications.map((x) => x.task_id)[0]).toBe(pendingId);
    expect(all.notifications.map((x) => x.task_id).slice(1).sort()).toEqual(ids.slice().sort());
    expect(all.notifications.map((x) => Number(x.id))).toEqual(all.notifications.map((x) => Number(x.id)).sort((a, b) => b - a));
    expect(all.notifications[0]).toMatchObject({ username: 'mia', kind: 'webhook', status: 'pending', attempts: 1, last_status: 503, target: ch.label });
    const dead = (await log('admin', 'status=dead')).json().notifications as { status: string; task_id: string }[];
    expect(dead.map((x) => x.status)).toEqual(['dead', 'dead', 'dead']);
    expect(dead.map((x) => x.task_id).sort()).toEqual(ids.slice().sort());
    expect((await log('admin', 'status=pending')).json().notifications.map((x: { task_id: string }) => x.task_id)).toEqual([pendingId]);

    // Paging by one: every message once, newest first.
    const paged: string[] = [];
    let cursor: string | null = '';
    for (let i = 0; cursor !== null; i++) {
      expect(i, 'paging ends').toBeLessThan(10);
      const res = await log('admin', `limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json() as typeof all;
      expect(page.notifications.length).toBeLessThanOrEqual(1);
      paged.push(...page.notifications.map((x) => x.id));
      cursor = page.next_cursor;
    }
    expect(paged).toEqual(all.notifications.map((x) => x.id));
  });
});

describe('fan-out batches', () => {
  test('a statement takes as many new tasks as ~32 messages allow, judged by the statement before', async () => {
    await h.database.query('DELETE FROM notification_channels');
    await h.database.query('DELETE FROM push_subscriptions');
    await h.database.query('DELETE FROM notification_events');
    const n = new Notifications({ database: h.database, config: h.config, secrets: h.secrets, baseUrl: () => ORIGIN });
    const round = async () => {
      const taken: number[] = [];
      for (let t; (t = await n.fanOut()) > 0; ) taken.push(t);
      return taken;
    };
    const tasks = async (count: number) => {
      for (let i = 0; i < count; i++) await h.newTask();
    };

    // Nobody can be reached: after the first task (0 messages) the rest go in one statement.
    await tasks(40);
    expect(await round()).toEqual([1, 39]);
    // Mia adds a channel: one message per task, so a statement takes 32 tasks once it knows.
    await h.addChannel({ kind: 'webhook', url: 'http://127.0.0.1:9/never-called' });
    await tasks(40);
    expect(await round()).toEqual([40]);
    await tasks(40);
    expect(await round()).toEqual([32, 8]);
    const [messages] = await h.database.query<{ n: number }>("SELECT count(*)::int AS n FROM notifications WHERE kind = 'webhook'");
    expect(messages!.n).toBe(80);
  });
});

test('tasks posted close together wake the worker once, shortly after', async () => {
  let wakes = 0;
  const stop = h.notifications.onWake(() => wakes++);
  try {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 20 }, () => h.newTask()));
    const posted = performance.now() - t0;
    const deadline = performance.now() + 1000 + NEW_TASK_WAKE_MS;
    while (wakes === 0 && performance.now() < deadline) await sleep(5);
    expect(wakes).toBeGreaterThanOrEqual(1);
    // One wake per window at most, however many tasks came in it.
    expect(wakes).toBeLessThanOrEqual(Math.ceil(posted / NEW_TASK_WAKE_MS) + 1);
    expect(wakes).toBeLessThan(20);
  } finally {
    stop();
  }
});
