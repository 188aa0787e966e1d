/*
 * Issue 7, web push (acceptance points on push): what reaches a push service is encrypted for the
 * subscription and carries a valid VAPID header (generated key sealed in the database, or the
 * earlier version's VAPID_PATH files); 404/410 delete a subscription, 500 is retried; the
 * `webpush` and `webpush_clear` commands. A real local push service (test/helpers/push-service.ts)
 * decrypts every message with the browser-side keys, as a browser would. The outbox is drained by
 * `claimDue()`/`deliver()` here; a running worker is covered in notify-processes.test.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import { cliActor } from '../src/core/audit/audit.js';
import { createApiKey } from '../src/core/keys/index.js';
import { Notifications } from '../src/core/notify/index.js';
import { createUser, signIn } from '../src/core/people/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { buildApp } from '../src/http/app.js';
import { sampleSchema, testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';
import { checkVapid, decryptFor, publicKeyOfRaw, startPushService, type Device, type PushHit, type PushService } from './helpers/push-service.js';

const SECRET_KEY = 'test-secret-key-of-at-least-32-characters';
const SUBJECT = 'mailto:ops@example.org';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function pushService(respond?: Parameters<typeof startPushService>[0]): Promise<PushService> {
  const service = await startPushService(respond);
  cleanups.push(() => service.close());
  return service;
}

/** An app on a fresh database (sample schema, an API key, a signed-in admin) with its Notifications at hand. */
async function pushApp(env: Record<string, string> = {}) {
  const { database } = await createTestDatabase();
  const config = testConfig({ VAPID_SUBJECT: SUBJECT, ...env });
  const newNotifications = () => new Notifications({ database, config, secrets: loadSecretBox(config), baseUrl: () => 'http://inbox.test' });
  const notifications = newNotifications();
  // Registered before the rest: the keys of two instances that start together are compared first.
  cleanups.push(() => database.close());
  cleanups.push(() => notifications.close());
  await installSchema(database, sampleSchema);
  const { key } = await createApiKey(database, { name: 'test' });
  await createUser(database, cliActor, { username: 'admin', name: 'Ada Admin', role: 'admin', password: 'admin-password-1' });
  const cookie = `ti_session=${(await signIn(database, config, { username: 'admin', password: 'admin-password-1', ip: '127.0.0.1' })).token}`;
  const app = await buildApp({ config, database, notifications });
  await app.ready();
  cleanups.push(() => app.close());
  return {
    app,
    database,
    config,
    notifications,
    newNotifications,
    cookie,
    async register(device: Device, as = cookie) {
      const res = await app.inject({ method: 'POST', url: '/push/register', headers: { cookie: as }, payload: { sub: device.sub } });
      expect(res.statusCode, res.body).toBe(200);
    },
    async createTask(meta: Record<string, unknown> | null = null): Promise<string> {
      const res = await app.inject({ method: 'POST', url: '/api/v1/tasks/', headers: { 'api-key': key }, payload: { schema_name: 'acme:moderation', task: 'flag-content', meta } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().task.id;
    },
    /** Fans out and sends whatever is due, as one round of the worker would. */
    async drain() {
      const batches = await notifications.claimDue(500);
      await Promise.all(batches.map((b) => notifications.deliver(b)));
      return batches.length;
    },
    async vapidPk() {
      const res = await app.inject({ method: 'GET', url: '/.vapid-pk' });
      expect(res.statusCode).toBe(200);
      return res.body;
    },
    async log() {
      const res = await app.inject({ method: 'GET', url: '/api/v1/admin/notifications', headers: { cookie } });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().notifications as { status: string; attempts: number; last_status: number | null; due: string; task_id: string | null; target: string }[];
    },
    async subscriptions() {
      return Number((await database.query<{ n: string }>('SELECT count(*) AS n FROM push_subscriptions'))[0]!.n);
    },
  };
}

/** What the service worker gets. */
interface Message {
  title: string;
  body: string;
  tag: string;
  renotify: boolean;
  url: string;
}
const messageOf = (device: Device, hit: PushHit) => JSON.parse(decryptFor(device, hit.body)) as Message;

/** The VAPID header is valid for this push service and names `sub`; returns its key. */
function expectVapid(hit: PushHit, service: PushService, sub: string): string {
  const { claims, k } = checkVapid(hit.headers.authorization);
  expect(claims.aud).toBe(service.origin);
  expect(claims.sub).toBe(sub);
  const now = Date.now() / 1000;
  expect(claims.exp).toBeGreaterThan(now);
  expect(claims.exp).toBeLessThanOrEqual(now + 24 * 3600);
  return k;
}

describe('a new task reaches each registered device, encrypted for it', () => {
  test('decrypted: title, schema and type, only the __notify fields, tag, renotify, url; VAPID header, TTL, aes128gcm; the log says sent', async () => {
    const service = await pushService();
    const t = await pushApp();
    const phone = service.device('phone');
    const laptop = service.device('laptop');
    await t.register(phone);
    await t.register(laptop);
    const id = await t.createTask({ reason__notify: 'spam wave', count__notify: 3, internal: 'SECRET-INTERNAL-NOTE' });
    expect(await t.drain()).toBe(2);

    const hits = await service.waitFor(2);
    const byPath = new Map(hits.map((h) => [h.path, h]));
    const pk = await t.vapidPk();
    for (const [device, p] of [[phone, '/push/phone'], [laptop, '/push/laptop']] as const) {
      const hit = byPath.get(p)!;
      expect(hit, `a request to ${p}`).toBeDefined();
      const msg = messageOf(device, hit);
      expect(msg).toEqual({ title: 'new flag-content', body: expect.any(String), tag: 'acme:moderation/flag-content', renotify: true, url: `/taskui/${id}` });
      expect(msg.body).toContain('acme:moderation');
      expect(msg.body).toContain('flag-content');
      expect(msg.body).toContain('reason: spam wave');
      expect(msg.body).toContain('count: 3');
      expect(msg.body).not.toContain('SECRET-INTERNAL-NOTE');
      expect(msg.body).not.toContain('internal');
      // Not readable by anyone else: the ciphertext is not the text, and the other device's keys fail.
      expect(hit.body.toString('latin1')).not.toContain('flag-content');
      expect(() => decryptFor(device === phone ? laptop : phone, hit.body)).toThrow();
      expect(hit.headers['content-encoding']).toBe('aes128gcm');
      // docs/operations.md: kept by the push service for 24 hours, Urgency high.
      expect(hit.headers.ttl).toBe('86400');
      expect(hit.headers.urgency).toBe('high');
      expect(expectVapid(hit, service, SUBJECT)).toBe(pk);
    }
    expect((await t.log()).map((e) => [e.status, e.attempts, e.last_status, e.task_id])).toEqual([
      ['sent', 1, 201, id],
      ['sent', 1, 201, id],
    ]);
  });

  test('generated keys: two instances starting together share one key; the private key is stored only sealed', async () => {
    const t = await pushApp();
    const other = t.newNotifications();
    cleanups.push(() => other.close());
    // Both instances find no key and generate one at once: the first stored wins for both.
    const [a, b] = await Promise.all([t.notifications.vapidKeys(), other.vapidKeys()]);
    expect(b.publicKey).toBe(a.publicKey);
    expect(b.privateKey).toBe(a.privateKey);
    expect(await t.vapidPk()).toBe(a.publicKey);
    const third = t.newNotifications();
    cleanups.push(() => third.close());
    expect((await third.vapidKeys()).publicKey).toBe(a.publicKey);

    const rows = await t.database.query<{ name: string; public_value: string; secret_enc: string }>('SELECT name, public_value, secret_enc FROM server_keys');
    const row = rows.find((r) => r.name === 'vapid')!;
    expect(row.public_value).toBe(a.publicKey);
    expect(row.secret_enc.startsWith('v1:')).toBe(true);
    expect(row.secret_enc).not.toContain(a.privateKey);
    expect(row.secret_enc).not.toContain(Buffer.from(a.privateKey, 'base64url').toString('hex'));
    expect(row.secret_enc).not.toContain(Buffer.from(a.privateKey, 'base64url').toString('base64'));
  });

  test.each(['pkcs8', 'sec1'] as const)('VAPID_PATH with a %s private_key.pem and claims.json: that key and that sub', async (type) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-vapid-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileSync(path.join(dir, 'private_key.pem'), pair.privateKey.export({ type, format: 'pem' }));
    writeFileSync(path.join(dir, 'claims.json'), JSON.stringify({ sub: 'mailto:old@example.org' }));
    const jwk = pair.publicKey.export({ format: 'jwk' });
    const expected = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]).toString('base64url');

    const service = await pushService();
    const t = await pushApp({ VAPID_PATH: dir });
    expect(await t.vapidPk()).toBe(expected);
    const phone = service.device('phone');
    await t.register(phone);
    const id = await t.createTask();
    await t.drain();
    const [hit] = await service.waitFor(1);
    // claims.json's sub wins over VAPID_SUBJECT; the JWT verifies under the file's key.
    expect(expectVapid(hit!, service, 'mailto:old@example.org')).toBe(expected);
    expect(publicKeyOfRaw(expected).export({ format: 'jwk' })).toMatchObject({ x: jwk.x, y: jwk.y });
    expect(messageOf(phone, hit!).url).toBe(`/taskui/${id}`);
    // Nothing was generated or stored.
    expect(await t.database.query('SELECT name FROM server_keys WHERE name = $1', ['vapid'])).toEqual([]);
  });
});

describe('answers of the push service', () => {
  test.each([410, 404])('%i deletes that subscription (log: gone), and a later task sends nothing to it', async (status) => {
    const service = await pushService((hit) => ({ status: hit.path === '/push/old' ? status : 201 }));
    const t = await pushApp();
    const old = service.device('old');
    const current = service.device('current');
    await t.register(old);
    await t.register(current);
    expect(await t.subscriptions()).toBe(2);
    await t.createTask();
    await t.drain();
    await service.waitFor(2);
    expect(await t.subscriptions()).toBe(1);
    expect((await t.log()).map((e) => [e.target, e.status, e.last_status]).sort()).toEqual([
      [new URL(service.origin).host, 'gone', status],
      [new URL(service.origin).host, 'sent', 201],
    ]);

    const later = await t.createTask();
    await t.drain();
    await service.waitFor(3);
    await new Promise((r) => setTimeout(r, 200));
    expect(service.hits.map((h) => h.path)).toEqual(expect.arrayContaining(['/push/old', '/push/current', '/push/current']));
    expect(service.hits.filter((h) => h.path === '/push/old')).toHaveLength(1);
    expect(service.hits).toHaveLength(3);
    expect(messageOf(current, service.hits[2]!).url).toBe(`/taskui/${later}`);
  });

  test('500 keeps the subscription; the message stays pending (attempts 1, due later) and is retried', async () => {
    const service = await pushService((_h, n) => ({ status: n === 1 ? 500 : 201 }));
    const t = await pushApp({ WEBHOOK_RETRY_SCHEDULE: '2s,2s' });
    const phone = service.device('phone');
    await t.register(phone);
    const id = await t.createTask();
    await t.drain();
    await service.waitFor(1);
    const [entry] = await t.log();
    expect(entry).toMatchObject({ status: 'pending', attempts: 1, last_status: 500 });
    expect(Date.parse(entry!.due)).toBeGreaterThan(Date.now());
    expect(await t.subscriptions()).toBe(1);
    // Not due yet: nothing goes out.
    expect(await t.drain()).toBe(0);

    await new Promise((r) => setTimeout(r, Date.parse(entry!.due) - Date.now() + 50));
    expect(await t.drain()).toBe(1);
    const hits = await service.waitFor(2);
    expect(messageOf(phone, hits[1]!).url).toBe(`/taskui/${id}`);
    expect(await t.log()).toEqual([expect.objectContaining({ status: 'sent', attempts: 2, last_status: 201 })]);
  });
});

describe('webpush and webpush_clear', () => {
  async function cli(t: Awaited<ReturnType<typeof pushApp>>, args: string[], stdin?: string) {
    let out = '';
    let err = '';
    const code = await runCli(args, {
      out: (s) => void (out += s),
      err: (s) => void (err += s),
      env: { LOG_LEVEL: 'silent', SECRET_KEY, VAPID_SUBJECT: SUBJECT },
      database: t.database,
      stdin: stdin === undefined ? undefined : Readable.from([stdin]),
    });
    return { code, out, err };
  }

  test('webpush USER MESSAGE: that text, encrypted, to each device of that person; no device; unknown person', async () => {
    const service = await pushService();
    const t = await pushApp();
    const phone = service.device('phone');
    const laptop = service.device('laptop');
    await t.register(phone);
    await t.register(laptop);
    await createUser(t.database, cliActor, { username: 'bob', name: 'Bob', role: 'member', password: 'bob-password-1' });

    const r = await cli(t, ['webpush', 'admin', 'Deploy', 'starts', 'at', '5']);
    expect(r, r.err).toMatchObject({ code: 0 });
    expect(r.out).toContain('sent to 2 device(s)');
    const hits = await service.waitFor(2);
    for (const device of [phone, laptop]) {
      const hit = hits.find((h) => h.path === new URL(device.sub.endpoint).pathname)!;
      expect(messageOf(device, hit)).toMatchObject({ body: 'Deploy starts at 5' });
      expect(expectVapid(hit, service, SUBJECT)).toBe(await t.vapidPk());
    }
    expect((await t.log()).map((e) => e.status)).toEqual(['sent', 'sent']);

    const none = await cli(t, ['webpush', 'bob', 'hello']);
    expect(none.code).toBe(0);
    expect(none.err).toMatch(/'bob' has no device/);

    const unknown = await cli(t, ['webpush', 'nobody-here', 'hello']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.err).toContain("No person with id or username 'nobody-here'");
    expect(service.hits).toHaveLength(2);
  });

  test('webpush_clear: "n" deletes nothing, "y" deletes all, --yes deletes all without asking', async () => {
    const service = await pushService();
    const t = await pushApp();
    const registerTwo = async () => {
      await t.register(service.device(`a${Math.random()}`));
      await t.register(service.device(`b${Math.random()}`));
      expect(await t.subscriptions()).toBe(2);
    };
    await registerTwo();

    const no = await cli(t, ['webpush_clear'], 'n\n');
    expect(no.code).toBe(0);
    expect(no.err).toContain('Delete every push subscription');
    expect(no.err).toContain('Nothing deleted');
    expect(await t.subscriptions()).toBe(2);

    const yes = await cli(t, ['webpush_clear'], 'y\n');
    expect(yes.code).toBe(0);
    expect(yes.out).toContain('Deleted 2 push subscription(s)');
    expect(await t.subscriptions()).toBe(0);

    await registerTwo();
    const forced = await cli(t, ['webpush_clear', '--yes']);
    expect(forced.code).toBe(0);
    expect(forced.err).not.toContain('Delete every push subscription');
    expect(forced.out).toContain('Deleted 2 push subscription(s)');
    expect(await t.subscriptions()).toBe(0);
  });
});
