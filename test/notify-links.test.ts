import type { InjectOptions } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { createChannel, hashLinkToken, Notifications } from '../src/core/notify/index.js';
import { createUser, signIn, updateUser } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { createWebhookKey, verifyStandard } from '../src/core/webhooks/index.js';
import { buildApp } from '../src/http/app.js';
import { sampleSchema, testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';
import { startReceiver } from './helpers/receiver.js';
import { startSmtp, type ReceivedMail } from './helpers/smtp.js';

// Issue 7: email notifications with one-tap links — the message, the confirm page, the change as
// the person (through a sync webhook), and every way a link is refused.

const ORIGIN = 'http://inbox.test';
const FROM = 'Task Inbox <inbox@example.org>';
const MIA = { username: 'mia', name: 'Mia Member', password: 'member-password-1', email: 'mia@example.org' };
const LINK = /Set to (\S+): (http:\/\/inbox\.test\/act\/([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+))/g;

/** Closed after each test: receivers, extra senders. */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
/** Closed after the file: the mail server, the app and its database (shared: a database and argon2 are slow here). */
const finals: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const fn of finals.splice(0).reverse()) await fn();
});

async function setup() {
  const smtp = await startSmtp();
  finals.push(() => smtp.close());
  const { database } = await createTestDatabase();
  const config = testConfig({ PUBLIC_URL: ORIGIN, SMTP_URL: smtp.url, SMTP_FROM: FROM });
  await installSchema(database, sampleSchema);
  const { key } = await createApiKey(database, { name: 'test' });
  const mia = await createUser(database, cliActor, { username: MIA.username, name: MIA.name, role: 'member', password: MIA.password });
  const { token } = await signIn(database, config, { username: MIA.username, password: MIA.password, ip: '127.0.0.1' });
  const secrets = loadSecretBox(config);
  const notifications = new Notifications({ database, config, secrets, baseUrl: () => ORIGIN });
  const app = await buildApp({ config, database, notifications });
  await app.ready();
  finals.push(async () => {
    await app.close();
    notifications.close();
    await database.close();
  });
  const inject = (o: InjectOptions) => app.inject(o);
  const api = (o: InjectOptions) => inject({ ...o, headers: { 'api-key': key, ...(o.headers as object) } });
  const asMia = (o: InjectOptions) => inject({ ...o, headers: { cookie: `ti_session=${token}`, ...(o.headers as object) } });
  const h = {
    smtp,
    database,
    config,
    secrets,
    notifications,
    mia,
    async addEmail() {
      const res = await asMia({ method: 'POST', url: '/api/v1/me/channels', payload: { kind: 'email', address: MIA.email } });
      expect(res.statusCode, res.body).toBe(200);
    },
    async newTask(schema_name: string, task: string, meta: object, state?: string) {
      const res = await api({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name, task, meta, state } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().task as { id: string; state: string | null };
    },
    async stateOf(id: string) {
      return ((await api({ method: 'GET', url: `/api/v1/tasks/${id}` })).json().task as { state: string | null }).state;
    },
    async historyOf(id: string) {
      return (await api({ method: 'GET', url: `/api/v1/tasks/${id}/history` })).json().history as { state: string | null; editor_id: string | null; editor_name: string | null }[];
    },
    /** Fans out, claims and sends everything due (by `sender`); returns the mail that arrived. */
    async deliverMail(expected: number, sender = notifications): Promise<ReceivedMail[]> {
      const before = smtp.received.length;
      for (const batch of await sender.claimDue(100)) await sender.deliver(batch);
      await smtp.waitFor(before + expected);
      return smtp.received.slice(before);
    },
    open: (token: string) => inject({ method: 'GET', url: `/act/${token}` }),
    confirm: (token: string, origin = ORIGIN) =>
      inject({ method: 'POST', url: `/act/${token}`, headers: { 'content-type': 'application/x-www-form-urlencoded', origin, 'sec-fetch-site': origin === ORIGIN ? 'same-origin' : 'cross-site' }, payload: '' }),
  };
  return h;
}

/** The one-tap links of a message's text part, by the state they set. */
function linksOf(text: string) {
  const links = new Map<string, { url: string; token: string; random: string; signature: string }>();
  for (const m of text.matchAll(LINK)) links.set(m[1]!, { url: m[2]!, token: `${m[3]}.${m[4]}`, random: m[3]!, signature: m[4]! });
  return links;
}

/** One character of `s` at `i` replaced by another. */
const tamper = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

describe('email with one-tap links', () => {
  let h: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    h = await setup();
    await h.addEmail();
  });

  test('the message: subject, from, to, schema, type, the notify field only, one link per other state', async () => {
    const task = await h.newTask('acme:moderation', 'flag-content', { reason__notify: 'spam <b>bold</b>', internal_note: 'PLAIN-SECRET-VALUE' }, 'level1');
    const [got] = await h.deliverMail(1);
    const mail = got!.mail;
    expect(mail.subject).toBe('new flag-content (acme:moderation)');
    expect(mail.from?.value).toEqual([{ address: 'inbox@example.org', name: 'Task Inbox' }]);
    expect(got!.envelope.to).toEqual([MIA.email]);
    expect((Array.isArray(mail.to) ? mail.to[0] : mail.to)?.value[0]?.address).toBe(MIA.email);

    const text = mail.text ?? '';
    const html = typeof mail.html === 'string' ? mail.html : '';
    expect(html).not.toBe('');
    for (const part of [text, html]) {
      expect(part).toContain('acme:moderation');
      expect(part).toContain('flag-content');
      expect(part).toContain('reason');
      expect(part).not.toContain('PLAIN-SECRET-VALUE');
      expect(part).not.toContain('internal_note');
      expect(part).toContain(`${ORIGIN}/taskui/${task.id}`);
    }
    expect(text).toContain('reason: spam <b>bold</b>');
    expect(html).toContain('spam &#60;b&#62;bold&#60;/b&#62;');
    expect(html).not.toContain('<b>bold');

    // One link per state of the type except the current one (level1), each <base>/act/<random>.<signature>.
    const links = linksOf(text);
    expect([...links.keys()].sort()).toEqual(['allow', 'block', 'level2']);
    const hrefs = [...html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]!).filter((u) => u.includes('/act/'));
    expect(hrefs.sort()).toEqual([...links.values()].map((l) => l.url).sort());
    for (const l of links.values()) expect(l.url).toMatch(/^http:\/\/inbox\.test\/act\/[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{22}$/);
    expect(new Set([...links.values()].map((l) => l.token)).size).toBe(3);

    // The table holds hashes only: no token, random part or signature.
    const rows = await h.database.query<{ token_hash: string; state: string; user_id: string }>('SELECT * FROM action_links WHERE task_id = $1', [task.id]);
    expect(rows).toHaveLength(3);
    const dump = JSON.stringify(rows);
    for (const [state, l] of links) {
      expect(dump).not.toContain(l.random);
      expect(dump).not.toContain(l.signature);
      expect(rows.find((r) => r.token_hash === hashLinkToken(l.random))).toMatchObject({ state, user_id: h.mia.id });
    }
  });

  test('opening a link (twice) changes nothing; confirming with our Origin changes the state as the person', async () => {
    const task = await h.newTask('acme:moderation', 'flag-content', { reason__notify: 'spam' });
    const [got] = await h.deliverMail(1);
    const link = linksOf(got!.mail.text ?? '').get('block')!;

    for (let i = 0; i < 2; i++) {
      const page = await h.open(link.token);
      expect(page.statusCode, page.body).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.body).toMatch(/<form method="post">/);
      expect(page.body).toContain('Mia Member');
      expect(page.headers['content-security-policy']).toMatch(/default-src 'none'/);
      expect(page.headers['content-security-policy']).toMatch(/form-action 'self'/);
      expect(page.headers['referrer-policy']).toBe('no-referrer');
      expect(page.headers['cache-control']).toBe('no-store');
      expect(await h.stateOf(task.id)).toBeNull();
      expect(await h.historyOf(task.id)).toHaveLength(1);
    }

    const done = await h.confirm(link.token);
    expect(done.statusCode, done.body).toBe(200);
    expect(done.headers['content-type']).toMatch(/^text\/html/);
    expect(done.body).toContain('The task is now “block”');
    expect(await h.stateOf(task.id)).toBe('block');
    const history = await h.historyOf(task.id);
    expect(history).toHaveLength(2);
    expect(history[1]).toMatchObject({ state: 'block', editor_id: h.mia.id, editor_name: 'Mia Member' });
  });

  test('a confirm from a foreign Origin is refused (403) and changes nothing; the link still works', async () => {
    const task = await h.newTask('acme:moderation', 'flag-content', {});
    const [got] = await h.deliverMail(1);
    const link = linksOf(got!.mail.text ?? '').get('allow')!;
    const foreign = await h.confirm(link.token, 'https://evil.example');
    expect.soft(foreign.statusCode, foreign.body).toBe(403);
    expect(await h.stateOf(task.id)).toBeNull();
    expect(await h.historyOf(task.id)).toHaveLength(1);
    expect((await h.open(link.token)).statusCode).toBe(200);
    expect((await h.confirm(link.token)).statusCode).toBe(200);
    expect(await h.stateOf(task.id)).toBe('allow');
  });

  test('with a sync hook: a refusal is shown and changes nothing, the link still works, the webhook names the person', async () => {
    const receiver = await startReceiver(() => ({ status: 409, body: 'reviewer-says-no: this one is locked' }));
    cleanups.push(() => receiver.close());
    await installSchema(
      h.database,
      `name: 'hooked'\nsemver: '1'\ndefault_hook_url: ${receiver.url}\nhook_mode: sync\nhook_auth:\n  kind: standard\ntasktypes:\n- name: review\n  pending_states: [open, waiting]\n  resolved_states: [done, rejected]\n`,
    );
    const { key: whKey } = await createWebhookKey(h.database, h.secrets, { schemaName: 'hooked', graceMs: 0 });
    const task = await h.newTask('hooked', 'review', { title__notify: 'Check it' });
    const [got] = await h.deliverMail(1);
    const links = linksOf(got!.mail.text ?? '');
    expect([...links.keys()].sort()).toEqual(['done', 'open', 'rejected', 'waiting']);
    const done = links.get('done')!;

    const refused = await h.confirm(done.token);
    expect([409, 502]).toContain(refused.statusCode);
    expect(refused.headers['content-type']).toMatch(/^text\/html/);
    expect(refused.body).toContain('reviewer-says-no: this one is locked');
    expect(receiver.received).toHaveLength(1);
    expect(await h.stateOf(task.id)).toBeNull();
    expect(await h.historyOf(task.id)).toHaveLength(1);
    expect((await h.open(done.token)).statusCode).toBe(200);

    receiver.setAnswer(() => ({ status: 200 }));
    const ok = await h.confirm(done.token);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(await h.stateOf(task.id)).toBe('done');
    const history = await h.historyOf(task.id);
    expect(history).toHaveLength(2);
    expect(history[1]).toMatchObject({ state: 'done', editor_id: h.mia.id, editor_name: 'Mia Member' });
    expect(receiver.received).toHaveLength(2);
    const hook = receiver.received[1]!;
    const ts = Number(hook.headers['webhook-timestamp']);
    expect(verifyStandard([whKey], String(hook.headers['webhook-id']), ts, hook.body, String(hook.headers['webhook-signature']))).toBe(true);
    expect(JSON.parse(hook.body)).toMatchObject({ task: { id: task.id, state: 'done' }, editor: { id: h.mia.id, name: 'Mia Member' } });

    // Used once: the same link and the person's other links for the task are spent.
    for (const l of [done, links.get('open')!, links.get('rejected')!]) {
      expect((await h.confirm(l.token)).statusCode).toBe(410);
      expect((await h.open(l.token)).statusCode).toBe(410);
    }
    expect(await h.stateOf(task.id)).toBe('done');
    expect(await h.historyOf(task.id)).toHaveLength(2);
    expect(receiver.received).toHaveLength(2);
  });

  test('tampered links (404) and expired links (410) change nothing', async () => {
    const task = await h.newTask('acme:moderation', 'flag-content', { reason__notify: 'x' });
    const [got] = await h.deliverMail(1);
    const { random, signature, token } = linksOf(got!.mail.text ?? '').get('allow')!;

    for (const bad of [`${tamper(random, 10)}.${signature}`, `${random}.${tamper(signature, 0)}`, `${token}.x`, random]) {
      expect((await h.open(bad)).statusCode).toBe(404);
      expect((await h.confirm(bad)).statusCode).toBe(404);
    }
    expect(await h.stateOf(task.id)).toBeNull();
    expect((await h.open(token)).statusCode).toBe(200);

    await h.database.query("UPDATE action_links SET expires_at = now() - interval '1 second' WHERE token_hash = $1", [hashLinkToken(random)]);
    expect((await h.open(token)).statusCode).toBe(410);
    expect((await h.confirm(token)).statusCode).toBe(410);
    expect(await h.stateOf(task.id)).toBeNull();
    expect(await h.historyOf(task.id)).toHaveLength(1);
  });

  test('ACTION_LINK_TTL: a link sent with a 3 s lifetime is refused (410) once it passed', async () => {
    const config = testConfig({ PUBLIC_URL: ORIGIN, SMTP_URL: h.smtp.url, SMTP_FROM: FROM, ACTION_LINK_TTL: '3s' });
    const shortLived = new Notifications({ database: h.database, config, secrets: loadSecretBox(config), baseUrl: () => ORIGIN });
    cleanups.push(async () => shortLived.close());
    const task = await h.newTask('acme:moderation', 'flag-content', {});
    const [got] = await h.deliverMail(1, shortLived);
    const link = linksOf(got!.mail.text ?? '').get('level1')!;
    expect((await h.open(link.token)).statusCode).toBe(200);
    // Wait until the link's end (less than 3 s away), read from the link just sent.
    const [row] = await h.database.query<{ left_ms: number }>(
      'SELECT extract(epoch FROM expires_at - now()) * 1000 AS left_ms FROM action_links ORDER BY created DESC LIMIT 1',
    );
    expect(Number(row!.left_ms)).toBeLessThanOrEqual(3000);
    await new Promise((r) => setTimeout(r, Math.max(0, Number(row!.left_ms)) + 100));
    expect((await h.open(link.token)).statusCode).toBe(410);
    expect((await h.confirm(link.token)).statusCode).toBe(410);
    expect(await h.stateOf(task.id)).toBeNull();
  });

  test('a link of a person deactivated since is refused (403) and changes nothing', async () => {
    const dan = await createUser(h.database, cliActor, { username: 'dan', name: 'Dan', role: 'member', password: 'member-password-2' });
    await createChannel(h.database, h.config, h.secrets, dan.id, { kind: 'email', address: 'dan@example.org', digest_minutes: null });
    const task = await h.newTask('acme:moderation', 'flag-content', {});
    const mails = await h.deliverMail(2);
    const toDan = mails.find((m) => m.envelope.to[0] === 'dan@example.org')!;
    const link = linksOf(toDan.mail.text ?? '').get('level2')!;
    expect((await h.open(link.token)).statusCode).toBe(200);
    await updateUser(h.database, cliActor, 'dan', { active: false });
    expect((await h.open(link.token)).statusCode).toBe(403);
    expect((await h.confirm(link.token)).statusCode).toBe(403);
    expect(await h.stateOf(task.id)).toBeNull();
    expect(await h.historyOf(task.id)).toHaveLength(1);
  });
});
