/*
 * Issue 4, sign-in throttling and the audit trail: the 11th failed sign-in within the window is
 * refused with 429 and Retry-After (per account and per address); unknown users and wrong
 * passwords are answered alike, in similar time; every audited event writes exactly one entry
 * with its actor and IP, through the HTTP API and the CLI; the audit API and `task-inbox audit`
 * filter; and no password, API key, webhook key or session token ever reaches the trail.
 * The tests of this file run in order on one database.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import { cliActor } from '../src/core/audit/audit.js';
import { createUser } from '../src/core/people/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';

const SECRET_KEY = 'test-secret-key-of-at-least-32-characters';
const ENV = { LOG_LEVEL: 'silent', SECRET_KEY };

let t: TestApp;
let tmp: string;

/** Every secret value used in this file: none may appear in the audit trail. */
const secrets = new Set<string>();
const secret = (s: string) => {
  secrets.add(s);
  return s;
};

beforeAll(async () => {
  t = await createTestApp();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'ti-audit-test-'));
  secret('admin-password-1');
  secret(t.key);
  secret(t.adminCookie.slice('ti_session='.length));
});

afterAll(async () => {
  await t?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// helpers

function login(username: string, password: string, remoteAddress = '127.0.0.1'): Promise<LightMyRequestResponse> {
  secret(password);
  return t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress });
}

/** Signs in (expecting success) and returns the session cookie. */
async function signIn(username: string, password: string, remoteAddress = '127.0.0.1'): Promise<string> {
  const res = await login(username, password, remoteAddress);
  expect(res.statusCode, res.body).toBe(200);
  const setCookie = String(res.headers['set-cookie']);
  const m = /^ti_session=([^;]+);/.exec(setCookie);
  expect(m, setCookie).not.toBeNull();
  secret(m![1]!);
  return `ti_session=${m![1]}`;
}

/** A call authenticated only by the admin's session cookie. */
const asAdmin = (opts: Parameters<TestApp['call']>[0]) => t.call({ ...opts, cookie: t.adminCookie });

const me = (cookie: string) => t.call({ method: 'GET', url: '/api/v1/me', cookie });

async function cli(args: string[], stdin?: string) {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    env: ENV,
    database: t.database,
    stdin: stdin === undefined ? undefined : Readable.from([stdin]),
  });
  return { code, out, err };
}

async function cliOk(args: string[], stdin?: string) {
  const r = await cli(args, stdin);
  expect(r.code, `task-inbox ${args.join(' ')}\nstdout: ${r.out}\nstderr: ${r.err}`).toBe(0);
  return r;
}

interface AuditRow {
  id: number;
  actor_kind: string;
  actor_name: string | null;
  ip: string | null;
  action: string;
  target: string | null;
  details: unknown;
}

async function lastAuditId(): Promise<number> {
  const rows = await t.database.query<{ n: number }>('SELECT coalesce(max(id), 0)::int AS n FROM audit_events');
  return Number(rows[0]!.n);
}

async function auditSince(id: number): Promise<AuditRow[]> {
  const rows = await t.database.query<AuditRow>(
    'SELECT id::int AS id, actor_kind, actor_name, ip, action, target, details FROM audit_events WHERE id > $1 ORDER BY id',
    [id],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

interface Expected {
  action: string;
  kind: 'person' | 'api-key' | 'cli' | 'anonymous';
  name: string | null;
  ip: string | null;
  target?: string | null;
}

/** Runs `fn` and checks it wrote exactly one audit entry, with this action, actor and IP. */
async function audited<T>(e: Expected, fn: () => Promise<T>): Promise<T> {
  const before = await lastAuditId();
  const result = await fn();
  const rows = await auditSince(before);
  expect(
    rows.map((r) => r.action),
    `audit entries written for ${e.action}: ${JSON.stringify(rows)}`,
  ).toEqual([e.action]);
  expect(rows[0]).toMatchObject({
    action: e.action,
    actor_kind: e.kind,
    actor_name: e.name,
    ip: e.ip,
    ...(e.target !== undefined ? { target: e.target } : {}),
  });
  return result;
}

const person = (action: string, ip = '127.0.0.1', name = 'admin'): Expected => ({ action, kind: 'person', name, ip });
const byCli = (action: string): Expected => ({ action, kind: 'cli', name: cliActor.name ?? null, ip: null });

const expectStatus = (res: LightMyRequestResponse, status: number) => expect(res.statusCode, res.body).toBe(status);

const hookSchema = (name: string, semver = '1') => `name: '${name}'
semver: '${semver}'
default_hook_url: 'http://127.0.0.1:9/hook'
hook_mode: async
hook_auth:
  kind: head
  val: ti-key
tasktypes:
- name: review
  pending_states: ['open', 'held']
  resolved_states: ['done']
`;

// ---------------------------------------------------------------------------------------------

describe('sign-in throttling', () => {
  function expectThrottled(res: LightMyRequestResponse) {
    expect(res.statusCode, res.body).toBe(429);
    const retryAfter = res.headers['retry-after'];
    expect(retryAfter, 'Retry-After header').toBeDefined();
    expect(String(retryAfter)).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(900);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.json()).toMatchObject({ status: 429, type: 'urn:task-inbox:problem:too-many-requests' });
  }

  test('per account: ten failures from ten addresses, then the 11th (and even the right password) → 429', async () => {
    await createUser(t.database, cliActor, { username: 'victim', name: 'Vic Tim', role: 'member', password: secret('victim-password-1') });
    for (let i = 1; i <= 10; i++) {
      const res = await login('victim', `wrong-password-${i}`, `10.1.0.${i}`);
      expect(res.statusCode, `try ${i}: ${res.body}`).toBe(401);
      expect(res.headers['retry-after']).toBeUndefined();
    }
    expectThrottled(await login('victim', 'wrong-password-11', '10.1.0.11'));
    // The correct password is refused too while the account is throttled, from any address.
    expectThrottled(await login('victim', 'victim-password-1', '10.1.0.12'));
    expectThrottled(await login('victim', 'victim-password-1', '10.1.0.1'));
    // Usernames ignore case, and so does the throttle.
    expectThrottled(await login('VICTIM', 'victim-password-1', '10.1.0.13'));
  });

  test('per account: another account, from another address or one of those addresses, is unaffected', async () => {
    await createUser(t.database, cliActor, { username: 'bystander', name: 'By Stander', role: 'member', password: secret('bystander-password-1') });
    const cookie = await signIn('bystander', 'bystander-password-1', '10.9.9.9');
    expectStatus(await me(cookie), 200);
    // 10.1.0.1 failed once only (for victim): its address is not throttled.
    await signIn('bystander', 'bystander-password-1', '10.1.0.1');
  });

  test('per address: ten failures for ten different usernames from one address, then the 11th → 429', async () => {
    await createUser(t.database, cliActor, { username: 'ipuser', name: 'Ip User', role: 'member', password: secret('ipuser-password-1') });
    for (let i = 1; i <= 10; i++) {
      // Unknown people and a wrong password for a real one: all count against the address.
      const res = i === 5 ? await login('ipuser', 'ipuser-wrong-pass', '10.2.0.1') : await login(`nobody-${i}`, `nobody-password-${i}`, '10.2.0.1');
      expect(res.statusCode, `try ${i}: ${res.body}`).toBe(401);
    }
    expectThrottled(await login('nobody-11', 'nobody-password-11', '10.2.0.1'));
    // The right password from the throttled address is refused too …
    expectThrottled(await login('ipuser', 'ipuser-password-1', '10.2.0.1'));
    // … while the same account from another address works (it failed once only),
    await signIn('ipuser', 'ipuser-password-1', '10.2.0.2');
    // and another account from another address is unaffected.
    await signIn('bystander', 'bystander-password-1', '10.2.0.3');
  });

  test('concurrent failures cannot get past the limit: of 20 wrong passwords sent at once, at most 10 are checked', async () => {
    // The limit must hold however the tries arrive: a burst of parallel requests must not get
    // more than SIGN_IN_LIMIT password guesses in the window.
    await createUser(t.database, cliActor, { username: 'racer', name: 'Ra Cer', role: 'member', password: secret('racer-password-1') });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => login('racer', `racer-guess-${i}`, `10.60.0.${i + 1}`)));
    const statuses = answers.map((r) => r.statusCode);
    expect(statuses.every((s) => s === 401 || s === 429), statuses.join(',')).toBe(true);
    expect(statuses.filter((s) => s === 401).length, `answers: ${statuses.join(',')}`).toBeLessThanOrEqual(10);
  });
});

describe('unknown user and wrong password look alike', () => {
  beforeAll(async () => {
    await createUser(t.database, cliActor, { username: 'known', name: 'Known Person', role: 'member', password: secret('known-password-1') });
  });

  const comparable = (res: LightMyRequestResponse) => {
    const { date: _d, 'content-length': _l, ...headers } = res.headers;
    return { status: res.statusCode, headers, body: res.body };
  };

  test('identical status, headers (but date and length) and body', async () => {
    const unknown = await login('no-such-person', 'some-password-123', '10.3.0.1');
    const wrong = await login('known', 'some-password-123', '10.3.0.2');
    expect(unknown.statusCode).toBe(401);
    expect(comparable(wrong)).toEqual(comparable(unknown));
    // A deactivated account answers the same as well.
    await createUser(t.database, cliActor, { username: 'gone', name: 'Gone Person', role: 'member', password: secret('gone-password-1') });
    expectStatus(await asAdmin({ method: 'PATCH', url: '/api/v1/users/gone', payload: { active: false } }), 200);
    const inactive = await login('gone', 'gone-password-1', '10.3.0.3');
    expect(comparable(inactive)).toEqual(comparable(unknown));
  });

  test('similar timing: the medians of a few tries each are within a factor of 2', async () => {
    // Warm up both paths (the dummy hash is made on first use).
    await login('no-such-timing', 'timing-password-0', '10.4.0.100');
    await login('known', 'timing-password-0', '10.4.0.101');
    const unknown: number[] = [];
    const wrong: number[] = [];
    const time = async (username: string, ip: string) => {
      const start = performance.now();
      const res = await login(username, 'timing-password-1', ip);
      const ms = performance.now() - start;
      expect(res.statusCode).toBe(401);
      return ms;
    };
    for (let i = 0; i < 6; i++) {
      unknown.push(await time('no-such-timing', `10.4.0.${2 * i + 1}`));
      wrong.push(await time('known', `10.4.0.${2 * i + 2}`));
    }
    const median = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
    };
    const ratio = median(unknown) / median(wrong);
    expect(ratio, `unknown ${unknown.map(Math.round)} ms vs wrong password ${wrong.map(Math.round)} ms`).toBeGreaterThan(0.5);
    expect(ratio, `unknown ${unknown.map(Math.round)} ms vs wrong password ${wrong.map(Math.round)} ms`).toBeLessThan(2);
  });
});

describe('each audited event writes one entry with its actor and IP (HTTP API as the admin)', () => {
  let memberCookie: string;
  let memberId: string;

  test('sign-in success and failure (known and unknown user); the IP is the caller’s', async () => {
    await audited({ ...person('auth.sign-in', '10.5.0.1'), target: 'admin' }, () => signIn('admin', 'admin-password-1', '10.5.0.1'));
    await audited({ action: 'auth.sign-in-failed', kind: 'anonymous', name: 'admin', ip: '10.5.0.2', target: 'admin' }, async () =>
      expectStatus(await login('admin', 'admin-wrong-password-9', '10.5.0.2'), 401),
    );
    await audited({ action: 'auth.sign-in-failed', kind: 'anonymous', name: 'ghost', ip: '10.5.0.3', target: 'ghost' }, async () =>
      expectStatus(await login('ghost', 'ghost-password-77', '10.5.0.3'), 401),
    );
  });

  test('user create, reset-password, deactivate and activate', async () => {
    const created = await audited({ ...person('user.create'), target: 'member1' }, async () => {
      const res = await asAdmin({ method: 'POST', url: '/api/v1/users', payload: { username: 'member1', name: 'Mem Ber', role: 'member', password: secret('member1-password-1') } });
      expectStatus(res, 200);
      return res.json().user as { id: string };
    });
    memberId = created.id;
    memberCookie = await signIn('member1', 'member1-password-1', '10.5.0.4');
    await audited({ ...person('user.reset-password'), target: 'member1' }, async () =>
      expectStatus(await asAdmin({ method: 'POST', url: `/api/v1/users/${memberId}/password`, payload: { password: secret('member1-password-2') } }), 200),
    );
    expectStatus(await me(memberCookie), 401);
    await audited({ ...person('user.update'), target: 'member1' }, async () =>
      expectStatus(await asAdmin({ method: 'PATCH', url: '/api/v1/users/member1', payload: { name: 'Mem Ber Two' } }), 200),
    );
    await audited({ ...person('user.deactivate'), target: 'member1' }, async () =>
      expectStatus(await asAdmin({ method: 'PATCH', url: '/api/v1/users/member1', payload: { active: false } }), 200),
    );
    await audited({ ...person('user.activate'), target: 'member1' }, async () =>
      expectStatus(await asAdmin({ method: 'PATCH', url: '/api/v1/users/member1', payload: { active: true } }), 200),
    );
  });

  test('sign-out by the person, from their address', async () => {
    memberCookie = await signIn('member1', 'member1-password-2', '10.5.0.5');
    await audited(person('auth.sign-out', '10.5.0.6', 'member1'), async () =>
      expectStatus(await t.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { cookie: memberCookie }, remoteAddress: '10.5.0.6' }), 200),
    );
    expectStatus(await me(memberCookie), 401);
  });

  test('session revoke by the admin', async () => {
    memberCookie = await signIn('member1', 'member1-password-2', '10.5.0.7');
    const res = await asAdmin({ method: 'GET', url: '/api/v1/users/member1/sessions' });
    expectStatus(res, 200);
    const sessions = res.json().sessions as { id: string; ip: string }[];
    expect(sessions).toHaveLength(1);
    await audited({ ...person('session.revoke'), target: sessions[0]!.id }, async () =>
      expectStatus(await asAdmin({ method: 'DELETE', url: `/api/v1/sessions/${sessions[0]!.id}` }), 200),
    );
    expectStatus(await me(memberCookie), 401);
  });

  test('API key create and revoke', async () => {
    const created = await audited({ ...person('api-key.create'), target: 'audited-key' }, async () => {
      const res = await asAdmin({ method: 'POST', url: '/api/v1/api-keys', payload: { name: 'audited-key' } });
      expectStatus(res, 200);
      return res.json().api_key as { id: string; key: string };
    });
    secret(created.key);
    await audited({ ...person('api-key.revoke'), target: 'audited-key' }, async () =>
      expectStatus(await asAdmin({ method: 'DELETE', url: `/api/v1/api-keys/${created.id}` }), 200),
    );
  });

  test('schema install, webhook key create/rotate/revoke, redelivery (one and since), schema removal', async () => {
    await audited({ ...person('schema.install'), target: 'acme:audited' }, async () =>
      expectStatus(await asAdmin({ method: 'POST', url: '/api/v1/schemas', payload: { yaml: hookSchema('acme:audited') } }), 200),
    );
    const created = await audited({ ...person('webhook-key.create'), target: 'acme:audited' }, async () => {
      const res = await asAdmin({ method: 'POST', url: '/api/v1/webhook-keys', payload: { schema_name: 'acme:audited' } });
      expectStatus(res, 200);
      return res.json().webhook_key as { id: string; key: string };
    });
    secret(created.key);
    const rotated = await audited({ ...person('webhook-key.rotate'), target: 'acme:audited' }, async () => {
      const res = await asAdmin({ method: 'POST', url: '/api/v1/webhook-keys', payload: { schema_name: 'acme:audited', rotate: true } });
      expectStatus(res, 200);
      return res.json().webhook_key as { id: string; key: string };
    });
    secret(rotated.key);
    const given = await audited({ ...person('webhook-key.create'), target: 'acme:audited' }, async () => {
      const res = await asAdmin({ method: 'POST', url: '/api/v1/webhook-keys', payload: { schema_name: 'acme:audited', key: secret('given-webhook-key-0123456789abcdef') } });
      expectStatus(res, 200);
      return res.json().webhook_key as { id: string; key: string };
    });
    expect(given.key).toBe('given-webhook-key-0123456789abcdef');
    await audited({ ...person('webhook-key.revoke'), target: 'acme:audited' }, async () =>
      expectStatus(await asAdmin({ method: 'DELETE', url: `/api/v1/webhook-keys/${created.id}` }), 200),
    );

    // A state change makes an async delivery (no worker runs here, so it stays pending).
    const task = await t.call({ key: t.key, method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:audited', task: 'review', state: 'open' } });
    expectStatus(task, 200);
    expectStatus(await t.call({ key: t.key, method: 'PATCH', url: `/api/v1/tasks/${task.json().task.id}/state?state=held` }), 200);
    const list = await asAdmin({ method: 'GET', url: '/api/v1/deliveries/?schema=acme:audited' });
    expectStatus(list, 200);
    const delivery = (list.json().deliveries as { id: number }[])[0]!;
    expect(delivery).toBeDefined();
    await audited({ ...person('delivery.redeliver'), target: String(delivery.id) }, async () =>
      expectStatus(await asAdmin({ method: 'POST', url: `/api/v1/deliveries/${delivery.id}/redeliver` }), 200),
    );
    await audited({ ...person('delivery.redeliver-since'), target: 'acme:audited' }, async () =>
      expectStatus(await asAdmin({ method: 'POST', url: '/api/v1/deliveries/redeliver', payload: { since: new Date(Date.now() - 3600_000).toISOString(), schema: 'acme:audited' } }), 200),
    );

    await audited({ ...person('schema.remove'), target: 'acme:audited' }, async () =>
      expectStatus(await asAdmin({ method: 'DELETE', url: `/api/v1/schemas/${encodeURIComponent('acme:audited')}` }), 200),
    );
  });

  test('the admin’s request from another address is recorded with that address', async () => {
    await audited({ ...person('api-key.create', '192.0.2.44'), target: 'from-elsewhere' }, async () => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/api-keys', payload: { name: 'from-elsewhere' }, headers: { cookie: t.adminCookie }, remoteAddress: '192.0.2.44' });
      expectStatus(res, 200);
      secret(res.json().api_key.key);
    });
  });

  test('a refused request writes nothing', async () => {
    const before = await lastAuditId();
    expectStatus(await t.call({ key: null, method: 'POST', url: '/api/v1/api-keys', payload: { name: 'nope' } }), 401);
    expectStatus(await asAdmin({ method: 'POST', url: '/api/v1/users', payload: { username: 'ADMIN', name: 'Dup', password: secret('duplicate-password-1') } }), 409);
    expectStatus(await asAdmin({ method: 'POST', url: '/api/v1/users/member1/password', payload: { password: secret('short-pw') } }), 400);
    expect(await auditSince(before)).toEqual([]);
  });
});

describe('each audited event writes one entry with its actor (the CLI)', () => {
  let yamlFile: string;

  beforeAll(() => {
    yamlFile = path.join(tmp, 'cli-schema.yml');
    writeFileSync(yamlFile, hookSchema('acme:cli-audited'));
  });

  test('create-admin, user add, reset-password, deactivate', async () => {
    await audited({ ...byCli('user.create'), target: 'cli-admin' }, () =>
      cliOk(['create-admin', '--username', 'cli-admin', '--name', 'Cli Admin', '--email', 'cli-admin@example.org', '--password-stdin'], `${secret('cli-admin-password-1')}\n`),
    );
    await audited({ ...byCli('user.create'), target: 'cli-member' }, () =>
      cliOk(['user', 'add', '--role', 'member', '--username', 'cli-member', '--name', 'Cli Member', '--password-stdin'], `${secret('cli-member-password-1')}\n`),
    );
    const cookie = await signIn('cli-member', 'cli-member-password-1', '10.6.0.1');
    await audited({ ...byCli('user.reset-password'), target: 'cli-member' }, () =>
      cliOk(['user', 'reset-password', 'cli-member', '--password-stdin'], `${secret('cli-member-password-2')}\n`),
    );
    expectStatus(await me(cookie), 401);
    const cookie2 = await signIn('cli-member', 'cli-member-password-2', '10.6.0.2');
    await audited({ ...byCli('user.deactivate'), target: 'cli-member' }, () => cliOk(['user', 'deactivate', 'cli-member']));
    expectStatus(await me(cookie2), 401);
  });

  test('API key create and revoke', async () => {
    const created = await audited({ ...byCli('api-key.create'), target: 'cli-key' }, async () => JSON.parse((await cliOk(['api-key', 'create', '--name', 'cli-key', '--json'])).out) as { key: string });
    secret(created.key);
    await audited({ ...byCli('api-key.revoke'), target: 'cli-key' }, () => cliOk(['api-key', 'revoke', 'cli-key']));
  });

  test('schema install, webhook key create/rotate/revoke, redelivery, schema removal', async () => {
    await audited({ ...byCli('schema.install'), target: 'acme:cli-audited' }, () => cliOk(['taskschema', yamlFile]));
    const created = await audited({ ...byCli('webhook-key.create'), target: 'acme:cli-audited' }, async () =>
      JSON.parse((await cliOk(['webhook-key', 'create', 'acme:cli-audited', '--json'])).out) as { id: string; key: string },
    );
    secret(created.key);
    const rotated = await audited({ ...byCli('webhook-key.rotate'), target: 'acme:cli-audited' }, async () =>
      JSON.parse((await cliOk(['webhook-key', 'rotate', 'acme:cli-audited', '--json'])).out) as { id: string; key: string },
    );
    secret(rotated.key);
    await audited({ ...byCli('webhook-key.revoke'), target: 'acme:cli-audited' }, () => cliOk(['webhook-key', 'revoke', created.id]));

    const task = await t.call({ key: t.key, method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:cli-audited', task: 'review', state: 'open' } });
    expectStatus(task, 200);
    expectStatus(await t.call({ key: t.key, method: 'PATCH', url: `/api/v1/tasks/${task.json().task.id}/state?state=held` }), 200);
    const list = await asAdmin({ method: 'GET', url: '/api/v1/deliveries/?schema=acme:cli-audited' });
    const delivery = (list.json().deliveries as { id: number }[])[0]!;
    expect(delivery).toBeDefined();
    await audited({ ...byCli('delivery.redeliver'), target: String(delivery.id) }, () => cliOk(['deliveries', 'redeliver', String(delivery.id)]));
    await audited({ ...byCli('delivery.redeliver-since'), target: 'acme:cli-audited' }, () =>
      cliOk(['deliveries', 'redeliver', '--failed-since', new Date(Date.now() - 3600_000).toISOString(), '--schema', 'acme:cli-audited']),
    );
    await audited({ ...byCli('schema.remove'), target: 'acme:cli-audited' }, () => cliOk(['rmschema', 'acme:cli-audited']));
  });

  test('a failing command writes nothing', async () => {
    const before = await lastAuditId();
    expect((await cli(['user', 'add', '--username', 'CLI-ADMIN', '--name', 'Dup', '--password-stdin'], `${secret('cli-dup-password-1')}\n`)).code).toBe(1);
    expect((await cli(['user', 'deactivate', 'no-such-user'])).code).toBe(1);
    expect(await auditSince(before)).toEqual([]);
  });
});

describe('filtering the trail', () => {
  interface ApiEvent {
    id: number;
    created: string;
    actor: { kind: string; id: string | null; name: string | null };
    ip: string | null;
    action: string;
    target: string | null;
  }

  async function audit(query: Record<string, string>): Promise<ApiEvent[]> {
    const res = await asAdmin({ method: 'GET', url: `/api/v1/audit?${new URLSearchParams({ limit: '200', ...query })}` });
    expectStatus(res, 200);
    expect(res.json().next_cursor).toBeNull();
    return res.json().events as ApiEvent[];
  }

  test('GET /api/v1/audit by action, by actor, by both, and since', async () => {
    const all = await audit({});
    expect(all.length).toBeGreaterThan(30);
    // Newest first.
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => b - a));

    const creates = await audit({ action: 'user.create' });
    expect(creates.every((e) => e.action === 'user.create')).toBe(true);
    expect(creates.map((e) => e.target).sort()).toEqual(all.filter((e) => e.action === 'user.create').map((e) => e.target).sort());
    expect(creates.map((e) => e.target)).toEqual(expect.arrayContaining(['member1', 'cli-admin', 'cli-member', 'victim']));

    const byAdmin = await audit({ actor: 'admin' });
    expect(byAdmin.length).toBeGreaterThan(0);
    expect(byAdmin.every((e) => e.actor.name === 'admin')).toBe(true);
    expect(byAdmin.map((e) => e.id)).toEqual(all.filter((e) => e.actor.name === 'admin').map((e) => e.id));

    const memberSignIns = await audit({ action: 'auth.sign-in', actor: 'member1' });
    expect(memberSignIns.length).toBe(3);
    expect(memberSignIns.every((e) => e.action === 'auth.sign-in' && e.actor.name === 'member1' && e.actor.kind === 'person')).toBe(true);
    expect(memberSignIns.map((e) => e.ip)).toEqual(['10.5.0.7', '10.5.0.5', '10.5.0.4']);

    const failedGhost = await audit({ action: 'auth.sign-in-failed', actor: 'ghost' });
    expect(failedGhost).toHaveLength(1);
    expect(failedGhost[0]).toMatchObject({ actor: { kind: 'anonymous', name: 'ghost' }, ip: '10.5.0.3' });

    const middle = all[Math.floor(all.length / 2)]!;
    const since = await audit({ since: middle.created });
    expect(since.every((e) => e.created >= middle.created)).toBe(true);
    expect(since.map((e) => e.id)).toEqual(all.filter((e) => e.created >= middle.created).map((e) => e.id));
    expect(await audit({ since: new Date(Date.now() + 3600_000).toISOString() })).toEqual([]);
    expect(await audit({ action: 'no.such-action' })).toEqual([]);
  });

  test('GET /api/v1/audit is for admins only', async () => {
    expectStatus(await t.call({ key: t.key, method: 'GET', url: '/api/v1/audit' }), 401);
    await createUser(t.database, cliActor, { username: 'plain', name: 'Plain Member', role: 'member', password: secret('plain-password-1') });
    const cookie = await signIn('plain', 'plain-password-1', '10.7.0.1');
    expectStatus(await t.call({ cookie, method: 'GET', url: '/api/v1/audit' }), 403);
  });

  test('task-inbox audit --json filters by action, actor and since; the table too', async () => {
    const cliEvents = JSON.parse((await cliOk(['audit', '--json', '--actor', cliActor.name!, '--limit', '999'])).out) as ApiEvent[];
    expect(cliEvents.length).toBeGreaterThanOrEqual(15);
    expect(cliEvents.every((e) => e.actor.kind === 'cli' && e.actor.name === cliActor.name && e.ip === null)).toBe(true);

    const deactivations = JSON.parse((await cliOk(['audit', '--json', '--action', 'user.deactivate', '--limit', '999'])).out) as ApiEvent[];
    expect(deactivations.every((e) => e.action === 'user.deactivate')).toBe(true);
    expect(deactivations.map((e) => `${e.actor.kind}:${e.target}`).sort()).toEqual(['cli:cli-member', 'person:gone', 'person:member1']);

    const both = JSON.parse((await cliOk(['audit', '--json', '--action', 'user.create', '--actor', 'admin'])).out) as ApiEvent[];
    expect(both.map((e) => e.target)).toEqual(['member1']);

    const all = JSON.parse((await cliOk(['audit', '--json', '--limit', '999'])).out) as ApiEvent[];
    const middle = all[Math.floor(all.length / 2)]!;
    const since = JSON.parse((await cliOk(['audit', '--json', '--since', middle.created, '--limit', '999'])).out) as ApiEvent[];
    expect(since.map((e) => e.id)).toEqual(all.filter((e) => e.created >= middle.created).map((e) => e.id));

    const table = await cliOk(['audit', '--action', 'auth.sign-in-failed', '--actor', 'ghost']);
    expect(table.out).toMatch(/TIME\s+WHO\s+IP\s+ACTION/);
    expect(table.out).toContain('anonymous:ghost');
    expect(table.out).toContain('10.5.0.3');

    const empty = await cliOk(['audit', '--action', 'no.such-action']);
    expect(empty.out).toBe('');
    expect((await cli(['audit', '--since', 'yesterday'])).code).toBe(1);
  });
});

describe('no secret in the trail', () => {
  test('no password, API key, webhook key or session token in audit_events, the audit API or `audit --json`', async () => {
    expect(secrets.size).toBeGreaterThan(40);
    const table = (await t.database.query<{ row: string }>('SELECT a::text AS row FROM audit_events a ORDER BY id')).map((r) => r.row).join('\n');
    expect(table.length).toBeGreaterThan(1000);

    let api = '';
    let cursor: string | null = null;
    do {
      const res = await asAdmin({ method: 'GET', url: `/api/v1/audit?limit=200${cursor ? `&cursor=${cursor}` : ''}` });
      expectStatus(res, 200);
      api += res.body;
      cursor = res.json().next_cursor;
    } while (cursor);
    const cliOut = (await cliOk(['audit', '--json', '--limit', '999'])).out + (await cliOk(['audit', '--limit', '999'])).out;

    for (const s of secrets) {
      expect(table.includes(s), `audit_events holds the secret ${s}`).toBe(false);
      expect(api.includes(s), `the audit API shows the secret ${s}`).toBe(false);
      expect(cliOut.includes(s), `task-inbox audit shows the secret ${s}`).toBe(false);
    }
  });
});
