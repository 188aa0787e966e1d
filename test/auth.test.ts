import { createHash, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { webDistFolder } from '../src/http/routes/web-app.js';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cliActor } from '../src/core/audit/audit.js';
import { createSetupToken, createUser } from '../src/core/people/index.js';
import type { Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import type { AuthRule } from '../src/http/auth.js';
import { createTestApp, testConfig, type TestApp } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';

// Issue 4: people, sign-in, roles, CSRF, sessions and first-run setup, through the HTTP API.

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LIFETIME = '30d';
const LIFETIME_S = 30 * 86_400;

interface SetCookie {
  name: string;
  value: string;
  /** Attribute names in lower case → their value ('' when the attribute has none). */
  attrs: Record<string, string>;
  raw: string;
}

function setCookieOf(res: LightMyRequestResponse): SetCookie {
  const header = res.headers['set-cookie'];
  const raw = Array.isArray(header) ? header : header === undefined ? [] : [String(header)];
  expect(raw, 'exactly one Set-Cookie header').toHaveLength(1);
  const [pair, ...rest] = raw[0]!.split(';').map((s) => s.trim());
  const eq = pair!.indexOf('=');
  const attrs: Record<string, string> = {};
  for (const a of rest) {
    const i = a.indexOf('=');
    attrs[(i < 0 ? a : a.slice(0, i)).toLowerCase()] = i < 0 ? '' : a.slice(i + 1);
  }
  return { name: pair!.slice(0, eq), value: pair!.slice(eq + 1), attrs, raw: raw[0]! };
}

/** Signs in through the API; returns the answer, the token and a ready-to-send Cookie header. */
async function login(app: FastifyInstance, username: string, password: string, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers, payload: { username, password } });
  if (res.statusCode !== 200) return { res, token: '', cookie: '', setCookie: undefined };
  const setCookie = setCookieOf(res);
  return { res, token: setCookie.value, cookie: `${setCookie.name}=${setCookie.value}`, setCookie };
}

const problemCode = (res: LightMyRequestResponse) => String(res.json().type ?? '').split(':').pop();

// One shared app: an admin (from the helper), a member, a task and a long-lived member cookie.
let t: TestApp;
const member = { username: 'mia', name: 'Mia Member', password: 'member-password-1', id: '' };
let memberCookie: string;

async function newTask(): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/api/v1/tasks/', key: t.key, payload: { schema_name: 'acme:moderation', task: 'flag-content' } });
  expect(res.statusCode).toBe(200);
  return res.json().task.id;
}

async function taskState(id: string): Promise<string | null> {
  const [row] = await t.database.query<{ state: string | null }>('SELECT state FROM tasks WHERE id = $1', [id]);
  return row!.state;
}

beforeAll(async () => {
  t = await createTestApp({ env: { SESSION_LIFETIME: LIFETIME } });
  member.id = (await createUser(t.database, cliActor, { username: member.username, name: member.name, role: 'member', password: member.password })).id;
  const signedIn = await login(t.app, member.username, member.password);
  expect(signedIn.res.statusCode).toBe(200);
  memberCookie = signedIn.cookie;
});
afterAll(() => t.close());

// ---------------------------------------------------------------------------------------------
describe('1. every route has a rule, and the rule is enforced', () => {
  const ALL_RULES: AuthRule[] = ['public', 'api-key', 'member', 'admin', 'member-or-api-key'];
  const norm = (url: string) => (url.length > 1 ? url.replace(/\/$/, '') : url);

  /** A syntactically valid request for a route pattern: real UUIDs, numeric delivery ids, a JSON body for unsafe methods. */
  function requestFor(route: { method: string; url: string }, extra: Partial<InjectOptions> = {}): InjectOptions {
    const url = route.url
      .replace(/:id/g, route.url.startsWith('/api/v1/deliveries/') ? '1' : randomUUID())
      .replace(/:name/g, 'acme:moderation')
      .replace(/^\/assets\/\*$/, `/assets/${readdirSync(path.join(webDistFolder, 'assets'))[0]}`)
      .replace(/\*$/, 'some/client/route');
    const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(route.method);
    return { method: route.method as InjectOptions['method'], url, ...(unsafe ? { payload: {} } : {}), ...extra };
  }

  /** Every method and path Fastify has registered, read from its route tree (HEAD excluded). */
  function registeredRoutes(app: FastifyInstance): { method: string; url: string }[] {
    const out: { method: string; url: string }[] = [];
    const stack: string[] = [];
    for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^((?:│ {3}| {4})*)[├└]── (\S+) \(([A-Z, ]+)\)$/.exec(line);
      if (!m) {
        expect(line.trim(), `unparsed route tree line: ${line}`).toBe('');
        continue;
      }
      const depth = m[1]!.length / 4;
      stack.length = depth;
      stack.push(m[2]!);
      const url = stack.join('');
      // printRoutes drops the static part of a wildcard route ('/assets/*' prints as '*'); those are checked with hasRoute below.
      if (url.endsWith('*')) continue;
      for (const method of m[3]!.split(',').map((s) => s.trim())) if (method !== 'HEAD') out.push({ method, url: norm(url) });
    }
    return out;
  }

  test('routeRules lists every registered route, each with a known rule, and every rule is used', () => {
    const rules = t.app.routeRules;
    expect(rules.length).toBeGreaterThan(20);
    for (const r of rules) expect(ALL_RULES, `${r.method} ${r.url}`).toContain(r.auth);
    for (const rule of ALL_RULES) expect(rules.filter((r) => r.auth === rule).length, `routes with rule ${rule}`).toBeGreaterThan(0);

    const listed = new Set(rules.filter((r) => !r.url.endsWith('*')).map((r) => `${r.method} ${norm(r.url)}`));
    const registered = registeredRoutes(t.app);
    expect(registered.length).toBe(listed.size);
    for (const r of registered) expect(listed.has(`${r.method} ${r.url}`), `${r.method} ${r.url} has no rule in routeRules`).toBe(true);
    for (const r of rules) expect(t.app.hasRoute({ method: r.method as 'GET', url: r.url }), `${r.method} ${r.url}`).toBe(true);
  });

  test('a route registered without an auth rule is refused', async () => {
    const app = await buildApp({ config: t.config, database: t.database });
    try {
      expect(() => app.get('/no-rule', async () => 'x')).toThrow(/no auth rule/);
    } finally {
      await app.close();
    }
  });

  test('without credentials every non-public route answers 401 (HEAD of GET routes too)', async () => {
    let checked = 0;
    for (const route of t.app.routeRules.filter((r) => r.auth !== 'public')) {
      const res = await t.app.inject(requestFor(route));
      expect(res.statusCode, `${route.method} ${route.url}: ${res.body}`).toBe(401);
      if (route.method === 'GET') {
        const head = await t.app.inject(requestFor({ ...route, method: 'HEAD' }));
        expect(head.statusCode, `HEAD ${route.url}`).toBe(401);
      }
      checked++;
    }
    expect(checked).toBeGreaterThan(20);
  });

  test('a garbage or unknown session cookie is no credential either', async () => {
    for (const cookie of ['ti_session=', 'ti_session=not-a-token', `ti_session=${'A'.repeat(43)}`, `__Host-ti_session=${'B'.repeat(43)}`]) {
      for (const route of t.app.routeRules.filter((r) => r.auth === 'member' || r.auth === 'admin')) {
        const res = await t.app.inject(requestFor(route, { headers: { cookie } }));
        expect(res.statusCode, `${route.method} ${route.url} with ${cookie}`).toBe(401);
      }
    }
  });

  test('public routes answer without credentials (GET 200; POST reaches validation: 400; a made-up one-tap link: 404)', async () => {
    for (const route of t.app.routeRules.filter((r) => r.auth === 'public')) {
      const res = await t.app.inject(requestFor(route));
      // /metrics is off unless METRICS_TOKEN or METRICS_PORT is set.
      const expected = route.url === '/act/:token' || route.url === '/metrics' ? 404 : route.method === 'GET' ? 200 : 400;
      expect(res.statusCode, `${route.method} ${route.url}: ${res.body}`).toBe(expected);
    }
  });

  test("with a member's session every admin route answers 403", async () => {
    const admins = t.app.routeRules.filter((r) => r.auth === 'admin');
    expect(admins.length).toBeGreaterThan(10);
    for (const route of admins) {
      const res = await t.app.inject(requestFor(route, { headers: { cookie: memberCookie } }));
      expect(res.statusCode, `${route.method} ${route.url}: ${res.body}`).toBe(403);
      expect(problemCode(res)).toBe('forbidden');
    }
    // The member was not created, changed or signed out by any of these.
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: memberCookie })).statusCode).toBe(200);
  });

  test('an API key reaches only the integration API: admin and member routes answer 401 to a key alone', async () => {
    for (const route of t.app.routeRules.filter((r) => r.auth === 'admin' || r.auth === 'member')) {
      const res = await t.app.inject(requestFor(route, { headers: { 'api-key': t.key } }));
      expect(res.statusCode, `${route.method} ${route.url}: ${res.body}`).toBe(401);
    }
  });

  test('api-key routes refuse a session cookie alone', async () => {
    const keyed = t.app.routeRules.filter((r) => r.auth === 'api-key');
    for (const route of keyed) {
      const res = await t.app.inject(requestFor(route, { headers: { cookie: t.adminCookie } }));
      expect(res.statusCode, `${route.method} ${route.url}: ${res.body}`).toBe(401);
    }
  });

  test('member-or-api-key routes work with a member session and with an API key', async () => {
    const id = await newTask();
    const routes = t.app.routeRules.filter((r) => r.auth === 'member-or-api-key');
    expect(routes.length).toBeGreaterThanOrEqual(4);
    for (const route of routes) {
      const url = route.url.replace(':id', id) + (route.url.endsWith('/state') ? '?state=level1' : '');
      for (const creds of [{ cookie: memberCookie }, { key: t.key }] as const) {
        const res = await t.call({ method: route.method as 'GET', url, ...creds });
        expect(res.statusCode, `${route.method} ${url} with ${Object.keys(creds)[0]}: ${res.body}`).toBe(200);
      }
    }
  });

  test('member routes work with a member session and an admin session', async () => {
    for (const cookie of [memberCookie, t.adminCookie]) {
      expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie })).statusCode).toBe(200);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('2. passwords and session tokens are not stored in plain text', () => {
  test('users hold an argon2id hash; sessions hold the SHA-256 of the token; a new sign-in gives a new token', async () => {
    const first = await login(t.app, member.username, member.password);
    expect(first.res.statusCode).toBe(200);
    const token = first.token;
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(16);

    const users = await t.database.query<Record<string, unknown>>('SELECT * FROM users');
    const mia = users.find((u) => u.username === member.username)!;
    expect(String(mia.password_hash)).toMatch(/^\$argon2id\$/);
    const usersText = JSON.stringify(users);
    expect(usersText).not.toContain(member.password);
    expect(usersText).not.toContain('admin-password-1');

    const sessions = await t.database.query<Record<string, unknown>>('SELECT * FROM sessions');
    const sessionsText = JSON.stringify(sessions);
    expect(sessionsText).not.toContain(token);
    expect(sessionsText).not.toContain(memberCookie.split('=')[1]);
    expect(sessions.filter((s) => s.token_hash === sha256(token))).toHaveLength(1);
    expect(sessions.find((s) => s.token_hash === sha256(token))!.user_id).toBe(member.id);

    // Nor in the audit trail.
    const audit = JSON.stringify(await t.database.query('SELECT * FROM audit_events'));
    expect(audit).not.toContain(member.password);
    expect(audit).not.toContain(token);

    const second = await login(t.app, member.username, member.password);
    expect(second.res.statusCode).toBe(200);
    expect(second.token).not.toBe(token);
    expect(second.token).not.toBe(memberCookie.split('=')[1]);
    const hashes = (await t.database.query<{ token_hash: string }>('SELECT token_hash FROM sessions')).map((s) => s.token_hash);
    expect(hashes).toContain(sha256(second.token));
    expect(new Set(hashes).size).toBe(hashes.length);
  });
});

// ---------------------------------------------------------------------------------------------
describe('3. CSRF', () => {
  const HOST = 'inbox.test:8080';
  const sameOrigin = { host: HOST, origin: `http://${HOST}`, 'sec-fetch-site': 'same-origin' };
  const crossSite: Record<string, Record<string, string>> = {
    'sec-fetch-site: cross-site': { host: HOST, 'sec-fetch-site': 'cross-site' },
    'a foreign Origin': { host: HOST, origin: 'https://evil.example' },
    'a foreign Origin claiming same-origin': { host: HOST, origin: 'https://evil.example', 'sec-fetch-site': 'same-origin' },
    'Origin: null': { host: HOST, origin: 'null' },
    'our host over another scheme': { host: HOST, origin: `https://${HOST}` },
  };

  const patchState = (id: string, state: string, headers: Record<string, string>, creds: { cookie?: string; key?: string }) =>
    t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=${state}`, headers, ...creds });

  test('a cookie-authenticated cross-site PATCH of a task state is refused with 403 and changes nothing', async () => {
    const id = await newTask();
    for (const [what, headers] of Object.entries(crossSite)) {
      const res = await patchState(id, 'level1', headers, { cookie: memberCookie });
      expect(res.statusCode, what).toBe(403);
      expect(problemCode(res), what).toBe('cross-site-request');
    }
    expect(await taskState(id)).toBeNull();
  });

  test('a cookie-authenticated cross-site POST is refused: sign-out does not happen, no user is created', async () => {
    for (const [what, headers] of Object.entries(crossSite)) {
      const out = await t.call({ method: 'POST', url: '/api/v1/auth/logout', headers, cookie: memberCookie });
      expect(out.statusCode, what).toBe(403);
      expect(out.headers['set-cookie'], what).toBeUndefined();
      const add = await t.call({
        method: 'POST',
        url: '/api/v1/users',
        headers,
        cookie: t.adminCookie,
        payload: { username: 'csrf-victim', name: 'Nobody', password: 'csrf-password-1', role: 'admin' },
      });
      expect(add.statusCode, what).toBe(403);
      expect(problemCode(add), what).toBe('cross-site-request');
    }
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: memberCookie })).statusCode).toBe(200);
    expect(await t.database.query("SELECT id FROM users WHERE username = 'csrf-victim'")).toHaveLength(0);
  });

  test('the headers a same-origin browser fetch sends are accepted', async () => {
    const id = await newTask();
    expect((await patchState(id, 'level1', sameOrigin, { cookie: memberCookie })).statusCode).toBe(200);
    expect(await taskState(id)).toBe('level1');
    // Origin alone, or Sec-Fetch-Site alone, as some browsers send.
    expect((await patchState(id, 'level2', { host: HOST, origin: `http://${HOST}` }, { cookie: memberCookie })).statusCode).toBe(200);
    expect((await patchState(id, 'allow', { host: HOST, 'sec-fetch-site': 'same-origin' }, { cookie: memberCookie })).statusCode).toBe(200);
    expect(await taskState(id)).toBe('allow');

    const add = await t.call({
      method: 'POST',
      url: '/api/v1/users',
      headers: sameOrigin,
      cookie: t.adminCookie,
      payload: { username: 'sam', name: 'Sam Same-Origin', password: 'sam-password-1' },
    });
    expect(add.statusCode, add.body).toBe(200);

    const extra = await login(t.app, member.username, member.password);
    const out = await t.call({ method: 'POST', url: '/api/v1/auth/logout', headers: sameOrigin, cookie: extra.cookie });
    expect(out.statusCode).toBe(200);
  });

  test("the earlier inbox's PATCH works: same-origin fetch, JSON content type, no body, no extra header", async () => {
    const id = await newTask();
    const res = await t.call({
      method: 'PATCH',
      url: `/api/v1/tasks/${id}/state?state=block`,
      headers: { ...sameOrigin, 'content-type': 'application/json' },
      cookie: memberCookie,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(await taskState(id)).toBe('block');
  });

  test('old clients that send neither Origin nor Sec-Fetch-Site are accepted', async () => {
    const id = await newTask();
    expect((await patchState(id, 'level2', {}, { cookie: memberCookie })).statusCode).toBe(200);
    const extra = await login(t.app, member.username, member.password);
    expect((await t.call({ method: 'POST', url: '/api/v1/auth/logout', cookie: extra.cookie })).statusCode).toBe(200);
  });

  test('safe methods are not refused for being cross-site (top-level navigation)', async () => {
    const res = await t.call({ method: 'GET', url: '/api/v1/me', headers: crossSite['sec-fetch-site: cross-site']!, cookie: memberCookie });
    expect(res.statusCode).toBe(200);
  });

  test('an API-key request is never subject to the check', async () => {
    const id = await newTask();
    for (const [what, headers] of Object.entries(crossSite)) {
      expect((await patchState(id, 'level1', headers, { key: t.key })).statusCode, what).toBe(200);
      const created = await t.call({ method: 'POST', url: '/api/v1/tasks/', headers, key: t.key, payload: { schema_name: 'acme:moderation', task: 'delete-acct' } });
      expect(created.statusCode, what).toBe(200);
    }
  });

  test('JSON routes refuse text/plain and form bodies with 415 (cookie, key, and the public sign-in)', async () => {
    const bodies = [
      { 'content-type': 'text/plain', payload: '{"username":"x","name":"X","password":"x-password-1"}' },
      { 'content-type': 'text/plain;charset=UTF-8', payload: '{"username":"x","name":"X","password":"x-password-1"}' },
      { 'content-type': 'application/x-www-form-urlencoded', payload: 'username=x&name=X&password=x-password-1' },
      { 'content-type': 'multipart/form-data; boundary=b', payload: '--b\r\nContent-Disposition: form-data; name="username"\r\n\r\nx\r\n--b--\r\n' },
    ];
    const id = await newTask();
    for (const { 'content-type': type, payload } of bodies) {
      const users = await t.call({ method: 'POST', url: '/api/v1/users', headers: { 'content-type': type }, cookie: t.adminCookie, payload });
      expect(users.statusCode, `POST /users ${type}`).toBe(415);
      const state = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=level1`, headers: { 'content-type': type }, cookie: memberCookie, payload });
      expect(state.statusCode, `PATCH state ${type}`).toBe(415);
      const task = await t.call({ method: 'POST', url: '/api/v1/tasks/', headers: { 'content-type': type }, key: t.key, payload });
      expect(task.statusCode, `POST /tasks ${type}`).toBe(415);
      const signIn = await t.app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'content-type': type }, payload: `username=${member.username}&password=${member.password}` });
      expect(signIn.statusCode, `login ${type}`).toBe(415);
      expect(signIn.headers['set-cookie']).toBeUndefined();
    }
    expect(await taskState(id)).toBeNull();
    expect(await t.database.query("SELECT id FROM users WHERE username = 'x'")).toHaveLength(0);
  });

  test('with PUBLIC_URL set, only its origin may make cookie-authenticated changes', async () => {
    const p = await createTestApp({ env: { PUBLIC_URL: 'https://inbox.example.org/some/path' } });
    try {
      const task = await p.call({ method: 'POST', url: '/api/v1/tasks/', key: p.key, payload: { schema_name: 'acme:moderation', task: 'flag-content' } });
      const url = `/api/v1/tasks/${task.json().task.id}/state?state=level1`;
      const ok = await p.call({ method: 'PATCH', url, headers: { host: 'inbox.example.org', origin: 'https://inbox.example.org', 'sec-fetch-site': 'same-origin' }, cookie: p.adminCookie });
      expect(ok.statusCode, ok.body).toBe(200);
      // The request's own host is not enough once PUBLIC_URL names the origin.
      const other = await p.call({ method: 'PATCH', url, headers: { host: 'internal:8080', origin: 'http://internal:8080' }, cookie: p.adminCookie });
      expect(other.statusCode).toBe(403);
    } finally {
      await p.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('4. the session cookie', () => {
  test('HttpOnly, SameSite=Lax, Path=/, persistent with Max-Age = the lifetime; not Secure over http', async () => {
    const { res, setCookie } = await login(t.app, member.username, member.password);
    expect(res.statusCode).toBe(200);
    expect(res.json().user).toMatchObject({ id: member.id, username: member.username, name: member.name, role: 'member' });
    const c = setCookie!;
    expect(c.name).toBe('ti_session');
    expect(c.attrs).toHaveProperty('httponly');
    expect(c.attrs.samesite?.toLowerCase()).toBe('lax');
    expect(c.attrs.path).toBe('/');
    expect(Number(c.attrs['max-age'])).toBe(LIFETIME_S);
    expect(c.attrs).not.toHaveProperty('secure');
    expect(c.attrs).not.toHaveProperty('domain');
    // The session's absolute end matches the cookie.
    const [row] = await t.database.query<{ secs: string | number }>('SELECT extract(epoch FROM expires_at - created) AS secs FROM sessions WHERE token_hash = $1', [sha256(c.value)]);
    expect(Math.abs(Number(row!.secs) - LIFETIME_S)).toBeLessThan(60);
  });

  test('sign-out ends the session at once and clears the cookie', async () => {
    const s = await login(t.app, member.username, member.password);
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie })).statusCode).toBe(200);
    const out = await t.call({ method: 'POST', url: '/api/v1/auth/logout', cookie: s.cookie });
    expect(out.statusCode).toBe(200);
    const cleared = setCookieOf(out);
    expect(cleared.name).toBe('ti_session');
    expect(cleared.value).toBe('');
    expect(Number(cleared.attrs['max-age'])).toBe(0);
    expect(cleared.attrs.path).toBe('/');
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie })).statusCode).toBe(401);
    expect(await t.database.query('SELECT id FROM sessions WHERE token_hash = $1', [sha256(s.token)])).toHaveLength(0);
    // Only that session ended.
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: memberCookie })).statusCode).toBe(200);
  });

  test('over https (TRUST_PROXY + X-Forwarded-Proto) the cookie is __Host-ti_session, Secure, Path=/, no Domain', async () => {
    const h = await createTestApp({ env: { TRUST_PROXY: 'true', SESSION_LIFETIME: '7d' } });
    try {
      const https = { 'x-forwarded-proto': 'https', host: 'inbox.example.org' };
      const s = await login(h.app, 'admin', 'admin-password-1', https);
      expect(s.res.statusCode).toBe(200);
      const c = s.setCookie!;
      expect(c.name).toBe('__Host-ti_session');
      expect(c.attrs).toHaveProperty('secure');
      expect(c.attrs).toHaveProperty('httponly');
      expect(c.attrs.samesite?.toLowerCase()).toBe('lax');
      expect(c.attrs.path).toBe('/');
      expect(c.attrs).not.toHaveProperty('domain');
      expect(Number(c.attrs['max-age'])).toBe(7 * 86_400);
      expect(s.cookie.startsWith('__Host-ti_session=')).toBe(true);

      expect((await h.call({ method: 'GET', url: '/api/v1/me', headers: https, cookie: s.cookie })).statusCode).toBe(200);
      // A same-origin change over https, and a cross-site one.
      const task = await h.call({ method: 'POST', url: '/api/v1/tasks/', key: h.key, payload: { schema_name: 'acme:moderation', task: 'flag-content' } });
      const url = `/api/v1/tasks/${task.json().task.id}/state?state=level1`;
      const same = await h.call({ method: 'PATCH', url, headers: { ...https, origin: 'https://inbox.example.org', 'sec-fetch-site': 'same-origin' }, cookie: s.cookie });
      expect(same.statusCode, same.body).toBe(200);
      const cross = await h.call({ method: 'PATCH', url, headers: { ...https, origin: 'http://inbox.example.org' }, cookie: s.cookie });
      expect(cross.statusCode).toBe(403);

      const out = await h.call({ method: 'POST', url: '/api/v1/auth/logout', headers: https, cookie: s.cookie });
      expect(out.statusCode).toBe(200);
      const cleared = setCookieOf(out);
      expect(cleared.name).toBe('__Host-ti_session');
      expect(cleared.value).toBe('');
      expect(cleared.attrs).toHaveProperty('secure');
      expect(Number(cleared.attrs['max-age'])).toBe(0);
      expect((await h.call({ method: 'GET', url: '/api/v1/me', headers: https, cookie: s.cookie })).statusCode).toBe(401);
    } finally {
      await h.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('5. deactivation and session revocation', () => {
  test('an admin lists a person’s sessions and revokes one: that one answers 401 at once, the other still works', async () => {
    const add = await t.call({ method: 'POST', url: '/api/v1/users', cookie: t.adminCookie, payload: { username: 'rita', name: 'Rita Revoked', password: 'rita-password-1' } });
    expect(add.statusCode, add.body).toBe(200);
    const rita = add.json().user;
    expect(rita.role).toBe('member');
    const a = await login(t.app, 'rita', 'rita-password-1', { 'user-agent': 'browser-a' });
    const b = await login(t.app, 'rita', 'rita-password-1', { 'user-agent': 'browser-b' });

    const list = await t.call({ method: 'GET', url: `/api/v1/users/${rita.id}/sessions`, cookie: t.adminCookie });
    expect(list.statusCode).toBe(200);
    const sessions = list.json().sessions as { id: string; user_agent: string | null }[];
    expect(sessions.map((s) => s.user_agent).sort()).toEqual(['browser-a', 'browser-b']);
    expect(JSON.stringify(sessions)).not.toContain(a.token);
    expect(JSON.stringify(sessions)).not.toContain(sha256(a.token));

    const revoke = await t.call({ method: 'DELETE', url: `/api/v1/sessions/${sessions.find((s) => s.user_agent === 'browser-a')!.id}`, cookie: t.adminCookie });
    expect(revoke.statusCode).toBe(200);
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: a.cookie })).statusCode).toBe(401);
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: b.cookie })).statusCode).toBe(200);
    const after = (await t.call({ method: 'GET', url: `/api/v1/users/${rita.id}/sessions`, cookie: t.adminCookie })).json().sessions;
    expect(after.map((s: { user_agent: string }) => s.user_agent)).toEqual(['browser-b']);
    // Revoking it again: not found.
    expect((await t.call({ method: 'DELETE', url: `/api/v1/sessions/${sessions[0]!.id}`, cookie: t.adminCookie })).statusCode).toBe(404);
  });

  test('deactivating a person ends all their sessions at once, and they cannot sign in again', async () => {
    const add = await t.call({ method: 'POST', url: '/api/v1/users', cookie: t.adminCookie, payload: { username: 'dora', name: 'Dora Deactivated', password: 'dora-password-1' } });
    const dora = add.json().user;
    const a = await login(t.app, 'dora', 'dora-password-1');
    const b = await login(t.app, 'dora', 'dora-password-1');
    const id = await newTask();
    for (const s of [a, b]) expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie })).statusCode).toBe(200);

    const off = await t.call({ method: 'PATCH', url: `/api/v1/users/${dora.id}`, cookie: t.adminCookie, payload: { active: false } });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json().user.active).toBe(false);

    for (const s of [a, b]) {
      expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie })).statusCode).toBe(401);
      expect((await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=level1`, cookie: s.cookie })).statusCode).toBe(401);
    }
    expect(await taskState(id)).toBeNull();
    expect(await t.database.query('SELECT id FROM sessions WHERE user_id = $1', [dora.id])).toHaveLength(0);

    const again = await login(t.app, 'dora', 'dora-password-1');
    expect(again.res.statusCode).toBe(401);
    expect(again.res.headers['set-cookie']).toBeUndefined();
    // The same answer as a wrong password.
    const wrong = await login(t.app, 'dora', 'not-the-password');
    expect(again.res.json()).toEqual(wrong.res.json());

    // Reactivated, they can sign in again (so the refusal above was the deactivation).
    expect((await t.call({ method: 'PATCH', url: `/api/v1/users/${dora.id}`, cookie: t.adminCookie, payload: { active: true } })).statusCode).toBe(200);
    expect((await login(t.app, 'dora', 'dora-password-1')).res.statusCode).toBe(200);
    // The old sessions stay ended.
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: a.cookie })).statusCode).toBe(401);
  });
});

// ---------------------------------------------------------------------------------------------
describe('6. idle timeout and absolute lifetime', () => {
  let s6: TestApp;
  beforeAll(async () => {
    s6 = await createTestApp({ env: { SESSION_IDLE_TIMEOUT: '1s', SESSION_LIFETIME: '1h' } });
  });
  afterAll(() => s6.close());

  const me = (cookie: string) => s6.call({ method: 'GET', url: '/api/v1/me', cookie });

  const refresh = (token: string) => s6.database.query('UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1', [sha256(token)]);

  test('a session unused for longer than SESSION_IDLE_TIMEOUT answers 401', async () => {
    const s = await login(s6.app, 'admin', 'admin-password-1');
    // Just used: works (refreshed by hand so that a slow sign-in cannot eat the 1 s).
    await refresh(s.token);
    expect((await me(s.cookie)).statusCode).toBe(200);
    await s6.database.query("UPDATE sessions SET last_seen_at = now() - interval '1 hour' WHERE token_hash = $1", [sha256(s.token)]);
    expect((await me(s.cookie)).statusCode).toBe(401);
  });

  test('a session unused for 1.2 s really times out (no aging by hand)', async () => {
    const s = await login(s6.app, 'admin', 'admin-password-1');
    await sleep(1200);
    expect((await me(s.cookie)).statusCode).toBe(401);
  });

  test('a session past its absolute lifetime answers 401, however active', async () => {
    // On the main app (14 d idle timeout), so that only the lifetime can end it.
    const s = await login(t.app, member.username, member.password);
    const meT = () => t.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie });
    expect((await meT()).statusCode).toBe(200);
    await t.database.query("UPDATE sessions SET expires_at = now() - interval '1 second', last_seen_at = now() WHERE token_hash = $1", [sha256(s.token)]);
    expect((await meT()).statusCode).toBe(401);
  });

  test('the defaults: 14 days idle, 90 days lifetime', async () => {
    const d = testConfig();
    expect(d.sessionIdleMs).toBe(14 * 86_400_000);
    expect(d.sessionLifetimeMs).toBe(90 * 86_400_000);
  });

  test('use keeps a session alive: a session used within the idle timeout survives (default-length timeout)', async () => {
    // Default 14 d idle: a session last seen 13 days ago still works, and the use moves last_seen_at.
    const s = await login(t.app, member.username, member.password);
    await t.database.query("UPDATE sessions SET last_seen_at = now() - interval '13 days' WHERE token_hash = $1", [sha256(s.token)]);
    expect((await t.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie })).statusCode).toBe(200);
    const [row] = await t.database.query<{ age: string | number }>('SELECT extract(epoch FROM now() - last_seen_at) AS age FROM sessions WHERE token_hash = $1', [sha256(s.token)]);
    expect(Number(row!.age)).toBeLessThan(60);
  });

  test('use keeps a session alive with a short idle timeout too (SESSION_IDLE_TIMEOUT=3s)', async () => {
    // Used at T (2 s after its last use, within the 3 s timeout), then again at T + 1.5 s: it was
    // idle for 1.5 s only, so it must still work.
    const s3 = await createTestApp({ env: { SESSION_IDLE_TIMEOUT: '3s' } });
    try {
      const s = await login(s3.app, 'admin', 'admin-password-1');
      await s3.database.query("UPDATE sessions SET last_seen_at = now() - interval '2 seconds' WHERE token_hash = $1", [sha256(s.token)]);
      expect((await s3.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie })).statusCode).toBe(200);
      await sleep(1500);
      expect((await s3.call({ method: 'GET', url: '/api/v1/me', cookie: s.cookie })).statusCode).toBe(200);
    } finally {
      await s3.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('7. who changed a task, and who is signed in', () => {
  test("a member's state change records editor_id; history carries editor_name; an API key's change has no editor", async () => {
    const id = await newTask();
    const res = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=level1`, cookie: memberCookie });
    expect(res.statusCode, res.body).toBe(200);
    expect((await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=level2`, key: t.key })).statusCode).toBe(200);

    const rows = await t.database.query<{ state: string | null; editor_id: string | null; api_key_id: string | null }>(
      'SELECT state, editor_id, api_key_id FROM task_history WHERE task_id = $1 ORDER BY id',
      [id],
    );
    const byMember = rows.find((r) => r.state === 'level1')!;
    expect(byMember.editor_id).toBe(member.id);
    expect(byMember.api_key_id).toBeNull();
    expect(rows.find((r) => r.state === 'level2')!.editor_id).toBeNull();

    for (const creds of [{ cookie: memberCookie }, { key: t.key }]) {
      const history = (await t.call({ method: 'GET', url: `/api/v1/tasks/${id}/history`, ...creds })).json().history as { state: string | null; editor_id: string | null; editor_name: string | null }[];
      expect(history.find((h) => h.state === 'level1')).toMatchObject({ editor_id: member.id, editor_name: member.name });
      expect(history.find((h) => h.state === 'level2')).toMatchObject({ editor_id: null, editor_name: null });
    }
  });

  test('GET /api/v1/me returns the signed-in person, without secrets', async () => {
    const res = await t.call({ method: 'GET', url: '/api/v1/me', cookie: memberCookie });
    expect(res.statusCode).toBe(200);
    const { user } = res.json();
    expect(user).toMatchObject({ id: member.id, username: member.username, name: member.name, role: 'member', active: true });
    expect(JSON.stringify(res.json())).not.toMatch(/password|argon|token/i);
    const admin = (await t.call({ method: 'GET', url: '/api/v1/me', cookie: t.adminCookie })).json().user;
    expect(admin).toMatchObject({ username: 'admin', name: 'Ada Admin', role: 'admin' });
  });
});

// ---------------------------------------------------------------------------------------------
describe('8. first-run setup', () => {
  let database: Database;
  let app: FastifyInstance;
  const setup = (body: Record<string, unknown>) => app.inject({ method: 'POST', url: '/api/v1/setup', payload: body });
  const first = { username: 'root', name: 'Rosa Root', email: 'rosa@example.org', password: 'root-password-1' };

  beforeAll(async () => {
    ({ database } = await createTestDatabase());
    app = await buildApp({ config: testConfig(), database });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await database.close();
  });

  test('GET /setup serves the web inbox page, which completes the setup', async () => {
    const res = await app.inject({ method: 'GET', url: '/setup' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toMatch(/^<!doctype html>/i);
    expect(res.body).toContain('<div id="root">');
  });

  test('unknown and expired tokens are refused with 403; only the hash of a token is stored', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/setup' })).json()).toEqual({ needed: true });

    const unknown = await setup({ ...first, token: 'not-a-setup-token' });
    expect(unknown.statusCode).toBe(403);
    expect(problemCode(unknown)).toBe('setup-link-invalid');

    const expired = (await createSetupToken(database))!;
    expect(expired).toBeTypeOf('string');
    const stored = await database.query<{ token_hash: string }>('SELECT * FROM setup_tokens');
    expect(JSON.stringify(stored)).not.toContain(expired);
    expect(stored.map((r) => r.token_hash)).toContain(sha256(expired));
    await database.query("UPDATE setup_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1", [sha256(expired)]);
    const late = await setup({ ...first, token: expired });
    expect(late.statusCode).toBe(403);
    expect(problemCode(late)).toBe('setup-link-invalid');

    expect(await database.query('SELECT id FROM users')).toHaveLength(0);
    expect((await app.inject({ method: 'GET', url: '/api/v1/setup' })).json()).toEqual({ needed: true });
  });

  test('a valid token creates the first admin and signs them in; the same token again → 403', async () => {
    const token = (await createSetupToken(database))!;
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(16);

    const res = await setup({ ...first, token });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user).toMatchObject({ username: first.username, name: first.name, email: first.email, role: 'admin', active: true });
    const c = setCookieOf(res);
    expect(c.name).toBe('ti_session');
    expect(c.attrs).toHaveProperty('httponly');

    const me = await app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: `${c.name}=${c.value}` } });
    expect(me.statusCode).toBe(200);
    expect(me.json().user).toMatchObject({ username: first.username, role: 'admin' });
    // An admin indeed: admin routes answer.
    expect((await app.inject({ method: 'GET', url: '/api/v1/users', headers: { cookie: `${c.name}=${c.value}` } })).statusCode).toBe(200);

    expect((await app.inject({ method: 'GET', url: '/api/v1/setup' })).json()).toEqual({ needed: false });
    expect(await createSetupToken(database)).toBeNull();

    const again = await setup({ ...first, username: 'second', token });
    expect(again.statusCode).toBe(403);
    expect(problemCode(again)).toBe('setup-link-invalid');
    expect(again.headers['set-cookie']).toBeUndefined();

    // The token itself is spent: even were the accounts gone, it would not work again.
    const [row] = await database.query<{ used_at: unknown }>('SELECT used_at FROM setup_tokens WHERE token_hash = $1', [sha256(token)]);
    expect(row!.used_at).not.toBeNull();
    await database.query('DELETE FROM users');
    const reused = await setup({ ...first, username: 'third', token });
    expect(reused.statusCode).toBe(403);
    expect(problemCode(reused)).toBe('setup-link-invalid');
    expect(await database.query('SELECT id FROM users')).toHaveLength(0);
  });

  test('a setup refused as invalid input does not spend the one-time token', async () => {
    await database.query('DELETE FROM users');
    const token = (await createSetupToken(database))!;
    const bad = await setup({ ...first, name: '   ', token });
    expect(bad.statusCode).toBe(400);
    const good = await setup({ ...first, token });
    expect(good.statusCode, good.body).toBe(200);
  });
});
