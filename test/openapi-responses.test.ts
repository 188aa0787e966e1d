/*
 * Responses match the document: the main flows run against a real app, and every answer is
 * matched to its operation in the OpenAPI document the server serves (GET /openapi.json) and
 * validated there — the status must be documented for the operation, the content type must be
 * the documented one, and the body must validate against the documented schema (JSON Schema
 * 2020-12, with formats). Webhook bodies the server POSTed to a local receiver are validated
 * against the document's `webhooks`. Nothing is loosened here: a mismatch is a finding.
 */
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import Ajv2020Module from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { Webhooks } from '../src/core/webhooks/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

// ajv and ajv-formats are CommonJS: under NodeNext their class / plugin is the `default` member.
const Ajv2020 = Ajv2020Module.default;
const addFormats = addFormatsModule.default;

type Json = any;
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
interface Req {
  method: Method;
  url: string;
  payload?: InjectOptions['payload'];
  headers?: Record<string, string>;
  /** As in TestApp.call: a key of its own, null for no credentials at all, or only this cookie. */
  key?: string | null;
  cookie?: string;
}

const DOC_ID = 'urn:task-inbox:openapi';
const HOOKS = 'acme:hooks';
const SYNC = 'acme:sync';
const JSON_TYPES = ['application/json', 'application/problem+json'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** JSON Pointer escaping of one reference token (RFC 6901). */
const esc = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');

/*
 * The (operation, status) pairs the flows below must exercise. Missing ones fail the coverage
 * test: a flow that silently stopped running would otherwise prove nothing.
 */
const REQUIRED: Record<string, number[]> = {
  // Integration API (application servers) and the inbox
  createTask: [200, 400, 401, 403, 404, 422],
  listTasks: [200, 400],
  countTasks: [200],
  listTaskTypes: [200],
  getTask: [200, 400, 404],
  getTaskHistory: [200],
  listTaskDeliveries: [200],
  setTaskState: [200, 422, 502],
  updateTask: [200],
  cancelTask: [200, 409],
  // People
  signIn: [200, 401],
  signOut: [200],
  getCurrentUser: [200, 401],
  listOwnSessions: [200],
  endOwnSession: [200],
  changeOwnPassword: [200, 400],
  getSetupStatus: [200],
  completeSetup: [403],
  streamTaskEvents: [401],
  // Admin
  listUsers: [200, 403],
  createUser: [200],
  updateUser: [200],
  resetUserPassword: [200],
  listUserSessions: [200],
  endSession: [200],
  listAuditEvents: [200],
  listSchemas: [200],
  installSchema: [200, 400],
  removeSchema: [200],
  createApiKey: [200],
  listApiKeys: [200],
  revokeApiKey: [200],
  createWebhookKey: [200, 404],
  listWebhookKeys: [200],
  revokeWebhookKey: [200],
  listDeliveries: [200],
  getDelivery: [200, 404],
  redeliverDelivery: [200, 400],
  redeliverFailedSince: [200],
  listDisabledEndpoints: [200],
  enableEndpoint: [200],
  getHealth: [200],
  // Notifications
  registerPush: [200, 400],
  unregisterPush: [200],
  testPush: [200],
  getNotificationSettings: [200, 401],
  setNotificationTopics: [200],
  createNotificationChannel: [200, 400],
  updateNotificationChannel: [200],
  deleteNotificationChannel: [200, 404],
  testNotificationChannel: [200],
  listNotifications: [200],
};

let t: TestApp;
let receiver: Receiver;
let webhooks: Webhooks;
let doc: Json;
let ajv: InstanceType<typeof Ajv2020>;
/** Whether the receiver answers 410 Gone (to pause the endpoint). */
let gone = false;

/** Every documented operation, with a matcher for its path template. */
interface Operation {
  operationId: string;
  method: Method;
  template: string;
  regex: RegExp;
  params: number;
  op: Json;
}
let operations: Operation[] = [];
const validators = new Map<string, ValidateFunction>();
const failures: string[] = [];
const exercised = new Map<string, number>();
let checked = 0;

function validator(pointer: string): ValidateFunction {
  let v = validators.get(pointer);
  if (!v) {
    v = ajv.compile({ $ref: `${DOC_ID}#${pointer}` });
    validators.set(pointer, v);
  }
  return v;
}

const describeErrors = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? []).map((e) => `    ${e.instancePath || '(body)'} ${e.message}${Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''} [${e.schemaPath}]`).join('\n');

const excerpt = (body: string) => (body.length > 600 ? `${body.slice(0, 600)}…` : body);

function findOperation(method: string, url: string): Operation | undefined {
  const path = url.split('?')[0]!;
  // Static segments win over parameters, as in the router: /api/v1/tasks/count is not /api/v1/tasks/{id}.
  return operations.filter((o) => o.method === method && o.regex.test(path)).sort((a, b) => a.params - b.params)[0];
}

/** Matches one answer to its operation and checks status, content type and body against the document. */
function checkResponse(req: Req, res: LightMyRequestResponse) {
  checked++;
  const op = findOperation(req.method, req.url);
  const status = res.statusCode;
  if (!op) {
    failures.push(`${req.method} ${req.url} → ${status}: no operation in the document matches this request`);
    return;
  }
  const where = `${op.operationId} (${op.method} ${op.template}) → ${status}`;
  exercised.set(`${op.operationId} ${status}`, (exercised.get(`${op.operationId} ${status}`) ?? 0) + 1);
  const responses = op.op.responses as Record<string, Json>;
  const key = [String(status), `${String(status)[0]}XX`, 'default'].find((k) => k in responses);
  if (!key) {
    failures.push(`${where}: status ${status} is not documented (documented: ${Object.keys(responses).join(', ')}); body: ${excerpt(res.body)}`);
    return;
  }
  const content = (responses[key].content ?? {}) as Record<string, Json>;
  const mediaTypes = Object.keys(content);
  const contentType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (mediaTypes.length === 0) {
    if (res.body !== '') failures.push(`${where}: documented without content, answered ${contentType}: ${excerpt(res.body)}`);
    return;
  }
  if (!mediaTypes.includes(contentType)) {
    failures.push(`${where}: content type ${contentType || '(none)'} is not the documented ${mediaTypes.join(' or ')}`);
  }
  const jsonType = mediaTypes.find((m) => JSON_TYPES.includes(m));
  if (!jsonType) return; // e.g. text/event-stream: nothing to validate as JSON
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    failures.push(`${where}: the body is not JSON: ${excerpt(res.body)}`);
    return;
  }
  const pointer = `/paths/${esc(op.template)}/${op.method.toLowerCase()}/responses/${esc(key)}/content/${esc(jsonType)}/schema`;
  const validate = validator(pointer);
  if (!validate(body)) {
    failures.push(`${where}: the body does not match #${pointer}\n${describeErrors(validate.errors)}\n    body: ${excerpt(res.body)}`);
  }
}

/** TestApp.call, with every answer checked against the document. */
async function call(req: Req): Promise<LightMyRequestResponse> {
  const res = await t.call(req);
  checkResponse(req, res);
  return res;
}

/** `call`, and the status the flow expects (with the body in the message when it differs). */
async function expectCall(req: Req, status: number): Promise<LightMyRequestResponse> {
  const res = await call(req);
  expect(res.statusCode, `${req.method} ${req.url}: ${res.body}`).toBe(status);
  return res;
}

/** The session cookie a sign-in set. */
function cookieOf(res: LightMyRequestResponse): string {
  const set = [res.headers['set-cookie'] ?? []].flat();
  const cookie = set.map((c) => String(c).split(';')[0]!).find((c) => /^(__Host-)?ti_session=./.test(c));
  expect(cookie, 'a session cookie').toBeDefined();
  return cookie!;
}

/** Runs due deliveries until `done` holds. */
async function drain(what: string, done: () => boolean | Promise<boolean>, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    await webhooks.runDue();
    if (await done()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

function schemaYaml(name: string, mode: 'sync' | 'async', standard: boolean): string {
  return `name: '${name}'
semver: '1'
default_hook_url: '${receiver.url}'
hook_mode: ${mode}
${standard ? 'hook_auth:\n  kind: standard\n' : ''}tasktypes:
- name: review
  pending_states: ['open', 'held']
  resolved_states: ['done']
`;
}

beforeAll(async () => {
  t = await createTestApp({ env: { WEBHOOK_RETRY_SCHEDULE: '100ms,100ms,100ms,100ms,100ms' } });
  // The sync schema's application server refuses every change; the async one accepts (or is gone).
  receiver = await startReceiver((r) => {
    const schema = (JSON.parse(r.body) as { type?: { schema_name?: string } }).type?.schema_name;
    if (schema === SYNC) return { status: 403, body: 'account has an open invoice' };
    return gone ? { status: 410, body: 'gone' } : { status: 200, body: 'ok' };
  });
  // Drives the outbox as a delivery worker would (the app and the test share the database).
  webhooks = new Webhooks({ database: t.database, config: t.config, secrets: loadSecretBox(t.config) });

  const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  doc = res.json();
  expect(doc.openapi).toMatch(/^3\.1\./);
  // OpenAPI 3.1 schemas are JSON Schema 2020-12. The whole document is one schema resource, so
  // `#/components/schemas/…` references resolve inside it as they are written.
  ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  // Strict mode stays on (unknown keywords and formats are errors); known as annotations only:
  // the document's own top-level fields (Ajv compiles the root resource when resolving into it)
  // and the OpenAPI 3.1 base vocabulary that schema objects may carry.
  ajv.addVocabulary(['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags']);
  ajv.addVocabulary(['discriminator', 'xml', 'externalDocs', 'example']);
  ajv.addSchema(doc, DOC_ID);
  operations = Object.entries(doc.paths as Record<string, Record<string, Json>>).flatMap(([template, item]) =>
    (['get', 'post', 'patch', 'put', 'delete'] as const)
      .filter((m) => item[m])
      .map((m) => ({
        operationId: item[m].operationId as string,
        method: m.toUpperCase() as Method,
        template,
        // Paths work with and without a trailing slash.
        regex: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}/]+\}/g, '[^/]+')}/?$`),
        params: (template.match(/\{/g) ?? []).length,
        op: item[m],
      })),
  );
  expect(operations.length).toBeGreaterThan(30);
  // Every operation's JSON answers compile (a dangling $ref or an unknown format fails here, not later).
  for (const o of operations) {
    for (const [status, response] of Object.entries(o.op.responses as Record<string, Json>)) {
      for (const mediaType of Object.keys(response.content ?? {}).filter((m) => JSON_TYPES.includes(m))) {
        validator(`/paths/${esc(o.template)}/${o.method.toLowerCase()}/responses/${esc(status)}/content/${esc(mediaType)}/schema`);
      }
    }
  }
});

afterAll(async () => {
  await receiver?.close();
  await t?.close();
});

describe('every answer of the main flows matches the OpenAPI document', () => {
  const ids: { moderation?: string; flag?: string; hooked?: string; member?: string; webhookKey?: string } = {};

  test('tasks: create (with Idempotency-Key, and its errors), list, count, types, read, history, state, meta, long poll, cancel', async () => {
    // Schemas with hooks, installed through the API; the async one gets its webhook key there too.
    await expectCall({ method: 'POST', url: '/api/v1/schemas', payload: { yaml: schemaYaml(HOOKS, 'async', true), dryrun: true } }, 200);
    await expectCall({ method: 'POST', url: '/api/v1/schemas', payload: { yaml: schemaYaml(HOOKS, 'async', true) } }, 200);
    await expectCall({ method: 'POST', url: '/api/v1/schemas', payload: { yaml: schemaYaml(SYNC, 'sync', false) } }, 200);
    ids.webhookKey = (await expectCall({ method: 'POST', url: '/api/v1/webhook-keys', payload: { schema_name: HOOKS } }, 200)).json().webhook_key.id;

    // Create
    const created = await expectCall(
      { method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:moderation', task: 'delete-acct', meta: { account: 'ann', reason: 'Spam wave' } } },
      200,
    );
    ids.moderation = created.json().task.id;
    const flag = await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:moderation', task: 'flag-content', state: 'level1', meta: { post: 42 } } }, 200);
    ids.flag = flag.json().task.id;
    const once = { schema_name: 'acme:moderation', task: 'flag-content', state: 'level2', meta: { post: 43 } };
    const first = await expectCall({ method: 'POST', url: '/api/v1/tasks/', headers: { 'idempotency-key': 'order-43' }, payload: once }, 200);
    const replay = await expectCall({ method: 'POST', url: '/api/v1/tasks/', headers: { 'idempotency-key': 'order-43' }, payload: once }, 200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json().task.id).toBe(first.json().task.id);
    const reused = await expectCall({ method: 'POST', url: '/api/v1/tasks/', headers: { 'idempotency-key': 'order-43' }, payload: { ...once, meta: { post: 44 } } }, 422);
    expect(reused.json().type).toBe('urn:task-inbox:problem:idempotency-key-reused');
    const hooked = await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: HOOKS, task: 'review', state: 'open', meta: { ticket: 7 } } }, 200);
    ids.hooked = hooked.json().task.id;

    // Create: errors
    await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:moderation', task: 7 } }, 400);
    await expectCall({ method: 'POST', url: '/api/v1/tasks/', headers: { 'content-type': 'application/json' }, payload: '{"schema_name":' }, 400);
    await expectCall({ method: 'POST', url: '/api/v1/tasks/', key: null, payload: { schema_name: 'acme:moderation', task: 'delete-acct' } }, 401);
    await expectCall({ method: 'POST', url: '/api/v1/tasks/', key: 'ti_nope', payload: { schema_name: 'acme:moderation', task: 'delete-acct' } }, 403);
    const noSchema = await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:none', task: 'delete-acct' } }, 404);
    expect(noSchema.json().type).toBe('urn:task-inbox:problem:schema-not-found');
    await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:moderation', task: 'no-such-type' } }, 404);
    const badState = await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:moderation', task: 'flag-content', state: 'nope' } }, 422);
    expect(badState.json().type).toBe('urn:task-inbox:problem:state-not-in-type');

    // State: 200 (resolving), 422, and a refused sync webhook (502 with `receiver`)
    const moved = await expectCall({ method: 'PATCH', url: `/api/v1/tasks/${ids.flag}/state?state=block` }, 200);
    expect(moved.json().task.resolved).toBe(true);
    await expectCall({ method: 'PATCH', url: `/api/v1/tasks/${ids.flag}/state?state=nope` }, 422);
    await expectCall({ method: 'PATCH', url: `/api/v1/tasks/${ids.hooked}/state?state=held` }, 200);
    const syncTask = (await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: SYNC, task: 'review', state: 'open' } }, 200)).json().task.id;
    const refused = await expectCall({ method: 'PATCH', url: `/api/v1/tasks/${syncTask}/state?state=done` }, 502);
    expect(refused.json().receiver).toMatchObject({ status: 403, body: 'account has an open invoice' });

    // Meta
    const meta = await expectCall({ method: 'PATCH', url: `/api/v1/tasks/${ids.moderation}`, payload: { meta: { checked_by: 'bot', reason: null } } }, 200);
    expect(meta.json().task.meta).toMatchObject({ checked_by: 'bot' });

    // List: all / un / done, filters, search, order, cursor page 2; a bad query
    for (const resolved of ['all', 'un', 'done']) await expectCall({ method: 'GET', url: `/api/v1/tasks/?resolved=${resolved}` }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/tasks' }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/tasks/?schema=acme:moderation&type=flag-content&state=level2' }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/tasks/?state=' }, 200);
    const found = await expectCall({ method: 'GET', url: '/api/v1/tasks/?q=BOT%20ann' }, 200);
    expect(found.json().tasks.map((x: Json) => x.id)).toEqual([ids.moderation]);
    const page1 = await expectCall({ method: 'GET', url: '/api/v1/tasks/?limit=2&order=newest' }, 200);
    expect(page1.json().next_cursor).toEqual(expect.any(String));
    const page2 = await expectCall({ method: 'GET', url: `/api/v1/tasks/?limit=2&order=newest&cursor=${page1.json().next_cursor}` }, 200);
    expect(page2.json().tasks.length).toBeGreaterThan(0);
    await expectCall({ method: 'GET', url: '/api/v1/tasks/?limit=0' }, 400);
    // The inbox's own view, by a person (cookie only)
    await expectCall({ method: 'GET', url: '/api/v1/tasks/?resolved=un', cookie: t.adminCookie }, 200);

    // Count, types, one task, history
    for (const resolved of ['un', 'all', 'done']) await expectCall({ method: 'GET', url: `/api/v1/tasks/count?resolved=${resolved}` }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/types' }, 200);
    await expectCall({ method: 'GET', url: `/api/v1/tasks/${ids.moderation}` }, 200);
    await expectCall({ method: 'GET', url: `/api/v1/tasks/${ids.flag}`, cookie: t.adminCookie }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/tasks/00000000-0000-4000-8000-000000000000' }, 404);
    await expectCall({ method: 'GET', url: '/api/v1/tasks/not-a-uuid' }, 400);
    const history = await expectCall({ method: 'GET', url: `/api/v1/tasks/${ids.moderation}/history` }, 200);
    expect(history.json().history.length).toBeGreaterThanOrEqual(2); // created, meta

    // Long poll: nothing happens, so the task is answered as it is once the wait is over.
    const started = Date.now();
    const polled = await expectCall({ method: 'GET', url: `/api/v1/tasks/${ids.moderation}?wait=1` }, 200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(polled.json().task.id).toBe(ids.moderation);

    // Cancel (200; again: 200, nothing changes), and a task a person already resolved (409 task-resolved)
    const cancelled = await expectCall({ method: 'POST', url: `/api/v1/tasks/${ids.hooked}/cancel`, payload: { reason: 'The customer withdrew the request.' } }, 200);
    expect(cancelled.json().task.cancelled).toMatchObject({ reason: 'The customer withdrew the request.' });
    await expectCall({ method: 'POST', url: `/api/v1/tasks/${ids.hooked}/cancel`, payload: { reason: 'again' } }, 200);
    const resolved = await expectCall({ method: 'POST', url: `/api/v1/tasks/${ids.flag}/cancel`, payload: { reason: 'too late' } }, 409);
    expect(resolved.json().type).toBe('urn:task-inbox:problem:task-resolved');
    await expectCall({ method: 'GET', url: `/api/v1/tasks/${ids.hooked}/history` }, 200);

    // The outbox delivers both events of the hooked task (state change, then cancellation).
    await drain('the hooked task’s two webhooks', () => receiver.received.filter((r) => r.body.includes(ids.hooked!)).length >= 2);
    const deliveries = await expectCall({ method: 'GET', url: `/api/v1/tasks/${ids.hooked}/deliveries` }, 200);
    expect(deliveries.json().deliveries.map((d: Json) => d.attempts.length)).toEqual([1, 1]);
    await expectCall({ method: 'GET', url: `/api/v1/tasks/${syncTask}/deliveries`, cookie: t.adminCookie }, 200);
  });

  test('people: sign-in, me, sessions, password, sign-out; setup; admin users, sessions and audit', async () => {
    await expectCall({ method: 'GET', url: '/api/v1/setup', key: null }, 200);
    await expectCall({ method: 'POST', url: '/api/v1/setup', key: null, payload: { token: 'not-a-token', username: 'eve', name: 'Eve', password: 'eve-password-1' } }, 403);
    await expectCall({ method: 'GET', url: '/api/v1/events', key: null }, 401);

    // Admin: users
    const mia = await expectCall({ method: 'POST', url: '/api/v1/users', payload: { username: 'mia', name: 'Mia', email: 'mia@example.com', password: 'mia-password-1' } }, 200);
    ids.member = mia.json().user.id;
    await expectCall({ method: 'PATCH', url: `/api/v1/users/${ids.member}`, payload: { name: 'Mia Member', email: null } }, 200);
    await expectCall({ method: 'POST', url: `/api/v1/users/${ids.member}/password`, payload: { password: 'mia-password-2' } }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/users' }, 200);

    // Sign-in: 401, then 200 (twice: two sessions)
    const wrong = await expectCall({ method: 'POST', url: '/api/v1/auth/login', key: null, payload: { username: 'mia', password: 'mia-password-1' } }, 401);
    expect(wrong.json().type).toBe('urn:task-inbox:problem:sign-in-failed');
    const a = cookieOf(await expectCall({ method: 'POST', url: '/api/v1/auth/login', key: null, payload: { username: 'mia', password: 'mia-password-2' } }, 200));
    const b = cookieOf(await expectCall({ method: 'POST', url: '/api/v1/auth/login', key: null, payload: { username: 'mia', password: 'mia-password-2' } }, 200));

    // Me
    await expectCall({ method: 'GET', url: '/api/v1/me', cookie: a }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/me', key: null }, 401);
    const mine = await expectCall({ method: 'GET', url: '/api/v1/me/sessions', cookie: a }, 200);
    const sessions = mine.json().sessions as { id: string; current?: boolean }[];
    expect(sessions).toHaveLength(2);
    const other = sessions.find((s) => !s.current)!;
    await expectCall({ method: 'DELETE', url: `/api/v1/me/sessions/${other.id}`, cookie: a }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/me', cookie: b }, 401);
    await expectCall({ method: 'POST', url: '/api/v1/me/password', cookie: a, payload: { current_password: 'wrong-password', password: 'mia-password-3' } }, 400);
    await expectCall({ method: 'POST', url: '/api/v1/me/password', cookie: a, payload: { current_password: 'mia-password-2', password: 'mia-password-3' } }, 200);
    // A member on an admin route
    await expectCall({ method: 'GET', url: '/api/v1/users', cookie: a }, 403);

    // Admin: a member's sessions, ending one
    const c = cookieOf(await expectCall({ method: 'POST', url: '/api/v1/auth/login', key: null, payload: { username: 'mia', password: 'mia-password-3' } }, 200));
    const theirs = await expectCall({ method: 'GET', url: `/api/v1/users/${ids.member}/sessions` }, 200);
    expect(theirs.json().sessions).toHaveLength(2);
    const own = await expectCall({ method: 'GET', url: '/api/v1/me/sessions', cookie: c }, 200);
    const current = (own.json().sessions as { id: string; current?: boolean }[]).find((s) => s.current)!;
    await expectCall({ method: 'DELETE', url: `/api/v1/sessions/${current.id}` }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/me', cookie: c }, 401);

    // Sign-out
    await expectCall({ method: 'POST', url: '/api/v1/auth/logout', cookie: a }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/me', cookie: a }, 401);
    await expectCall({ method: 'GET', url: '/api/v1/me', cookie: t.adminCookie }, 200);

    // Audit: a page, the next page, a filter
    const audit1 = await expectCall({ method: 'GET', url: '/api/v1/audit?limit=3' }, 200);
    expect(audit1.json().next_cursor).toEqual(expect.any(String));
    await expectCall({ method: 'GET', url: `/api/v1/audit?limit=3&cursor=${audit1.json().next_cursor}` }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/audit?actor=admin&since=2020-01-01T00:00:00Z' }, 200);
  });

  test('admin: schemas, API keys, webhook keys', async () => {
    await expectCall({ method: 'GET', url: '/api/v1/schemas' }, 200);
    const invalid = await expectCall({ method: 'POST', url: '/api/v1/schemas', payload: { yaml: "name: 'acme:broken'\nsemver: '1'\ntasktypes:\n- name: x\n  resolved_states: 7\n" } }, 400);
    expect(invalid.json().type).toBe('urn:task-inbox:problem:invalid-schema-file');
    expect(invalid.json().errors).toEqual(expect.arrayContaining([expect.any(Object)]));
    await expectCall({ method: 'POST', url: '/api/v1/schemas', payload: { yaml: "name: 'acme:tmp'\nsemver: '1'\ntasktypes:\n- name: x\n  resolved_states: ['y']\n" } }, 200);
    await expectCall({ method: 'DELETE', url: '/api/v1/schemas/acme:tmp' }, 200);

    // API keys: create (limited to a schema), list, use, revoke
    const created = await expectCall({ method: 'POST', url: '/api/v1/api-keys', payload: { name: 'moderation bot', schema_name: 'acme:moderation' } }, 200);
    const limited = created.json().api_key as { id: string; key: string };
    await expectCall({ method: 'GET', url: '/api/v1/api-keys' }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/tasks/', key: limited.key }, 200);
    const wrongSchema = await expectCall({ method: 'POST', url: '/api/v1/tasks/', key: limited.key, payload: { schema_name: HOOKS, task: 'review' } }, 403);
    expect(wrongSchema.json().type).toBe('urn:task-inbox:problem:api-key-wrong-schema');
    await expectCall({ method: 'DELETE', url: `/api/v1/api-keys/${limited.id}` }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/api-keys' }, 200); // with a used and a revoked key
    const revoked = await expectCall({ method: 'POST', url: '/api/v1/tasks/', key: limited.key, payload: { schema_name: 'acme:moderation', task: 'delete-acct' } }, 403);
    expect(revoked.json().type).toBe('urn:task-inbox:problem:api-key-invalid');

    // Webhook keys: rotate (create another), list, revoke the old one; an unknown schema
    await expectCall({ method: 'POST', url: '/api/v1/webhook-keys', payload: { schema_name: HOOKS, rotate: true } }, 200);
    const keys = await expectCall({ method: 'GET', url: '/api/v1/webhook-keys' }, 200);
    expect(keys.json().webhook_keys.find((k: Json) => k.id === ids.webhookKey).expires).toEqual(expect.any(String)); // rotated out
    await expectCall({ method: 'DELETE', url: `/api/v1/webhook-keys/${ids.webhookKey}` }, 200);
    await expectCall({ method: 'POST', url: '/api/v1/webhook-keys', payload: { schema_name: 'acme:none' } }, 404);
  });

  test('notifications: push registration, topics, channels (create, test, change, delete), the log', async () => {
    const sub = { endpoint: 'https://push.example.org/device-1', keys: { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' } };
    await expectCall({ method: 'POST', url: '/push/register', payload: { sub } }, 200);
    await expectCall({ method: 'POST', url: '/push/register', payload: { sub: { endpoint: 'not a url' } } }, 400);
    await expectCall({ method: 'GET', url: '/api/v1/me/notifications', key: null, cookie: '' }, 401);
    const settings = await expectCall({ method: 'GET', url: '/api/v1/me/notifications' }, 200);
    expect(settings.json().push.devices).toBe(1);
    await expectCall({ method: 'POST', url: '/push/unregister', payload: { endpoint: sub.endpoint } }, 200);
    await expectCall({ method: 'POST', url: '/api/v1/me/push/test' }, 200);
    await expectCall({ method: 'PUT', url: '/api/v1/me/notifications/topics', payload: { topics: [{ schema: 'acme:moderation', type: null }] } }, 200);
    await expectCall({ method: 'PUT', url: '/api/v1/me/notifications/topics', payload: { topics: null } }, 200);
    await expectCall({ method: 'POST', url: '/api/v1/me/channels', payload: { kind: 'email', address: 'ada@example.org' } }, 400); // no SMTP_URL
    // A receiver of its own: the flows' receiver gets only webhooks (checked below).
    const chat = await startReceiver();
    const channel = (await expectCall({ method: 'POST', url: '/api/v1/me/channels', payload: { kind: 'webhook', url: `${chat.url}/notify` } }, 200)).json().channel;
    expect((await expectCall({ method: 'POST', url: `/api/v1/me/channels/${channel.id}/test` }, 200)).json().ok).toBe(true);
    await chat.close();
    await expectCall({ method: 'PATCH', url: `/api/v1/me/channels/${channel.id}`, payload: { digest_minutes: 60 } }, 200);
    await expectCall({ method: 'GET', url: '/api/v1/me/notifications' }, 200); // with a channel
    await expectCall({ method: 'DELETE', url: `/api/v1/me/channels/${channel.id}` }, 200);
    await expectCall({ method: 'DELETE', url: `/api/v1/me/channels/${channel.id}` }, 404);
    await expectCall({ method: 'GET', url: '/api/v1/admin/notifications?status=pending&limit=5' }, 200);
  });

  test('delivery log: list (pages, filters), one delivery, redeliver, redeliver since; a paused endpoint, listed and enabled', async () => {
    const all = await expectCall({ method: 'GET', url: '/api/v1/deliveries/' }, 200);
    const list = all.json().deliveries as { id: number; mode: string; status: string; task_id: string }[];
    expect(list.map((d) => d.status).sort()).toEqual(['delivered', 'delivered', 'failed']);
    const page1 = await expectCall({ method: 'GET', url: '/api/v1/deliveries?limit=1' }, 200);
    await expectCall({ method: 'GET', url: `/api/v1/deliveries?limit=1&cursor=${page1.json().next_cursor}` }, 200);
    await expectCall({ method: 'GET', url: `/api/v1/deliveries/?task=${ids.hooked}&schema=${HOOKS}&status=delivered` }, 200);
    const asyncOne = list.find((d) => d.mode === 'async')!;
    const syncOne = list.find((d) => d.mode === 'sync')!;
    await expectCall({ method: 'GET', url: `/api/v1/deliveries/${asyncOne.id}` }, 200);
    await expectCall({ method: 'GET', url: `/api/v1/deliveries/${syncOne.id}` }, 200); // a refused sync webhook: no history_id
    await expectCall({ method: 'GET', url: '/api/v1/deliveries/999999' }, 404);

    const again = await expectCall({ method: 'POST', url: `/api/v1/deliveries/${asyncOne.id}/redeliver` }, 200);
    expect(again.json().delivery.status).toBe('pending');
    await expectCall({ method: 'POST', url: `/api/v1/deliveries/${syncOne.id}/redeliver` }, 400);
    const before = receiver.received.length;
    await drain('the redelivery', () => receiver.received.length > before);
    await drain('the redelivery to be logged', async () => (await call({ method: 'GET', url: `/api/v1/deliveries/${asyncOne.id}` })).json().delivery.status === 'delivered');
    await expectCall({ method: 'GET', url: `/api/v1/deliveries/${asyncOne.id}` }, 200); // two attempts

    // The endpoint answers 410 Gone: the delivery pauses and the endpoint is listed as disabled.
    gone = true;
    const task = (await expectCall({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: HOOKS, task: 'review', state: 'open' } }, 200)).json().task.id;
    await expectCall({ method: 'PATCH', url: `/api/v1/tasks/${task}/state?state=done` }, 200);
    await drain('the delivery to pause', async () => (await call({ method: 'GET', url: `/api/v1/deliveries/?task=${task}` })).json().deliveries[0]?.status === 'paused');
    const endpoints = await expectCall({ method: 'GET', url: '/api/v1/endpoints' }, 200);
    expect(endpoints.json().endpoints).toEqual([expect.objectContaining({ url: receiver.url })]);
    await expectCall({ method: 'POST', url: '/api/v1/deliveries/redeliver', payload: { since: '2020-01-01T00:00:00Z', schema: HOOKS } }, 200);
    gone = false;
    await expectCall({ method: 'POST', url: '/api/v1/endpoints/enable', payload: { url: receiver.url } }, 200);
    await drain('the paused delivery to go out', async () => (await call({ method: 'GET', url: `/api/v1/deliveries/?task=${task}` })).json().deliveries[0]?.status === 'delivered');
    await expectCall({ method: 'GET', url: '/api/v1/endpoints' }, 200);
    await expectCall({ method: 'GET', url: `/api/v1/tasks/${task}/deliveries` }, 200);
    await expectCall({ method: 'GET', url: '/health', key: null }, 200);
  });

  test('the webhook bodies task-inbox POSTed match the document’s `webhooks` (task.state_changed and task.cancelled)', () => {
    const webhookDocs = doc.webhooks as Record<string, Json>;
    const events = new Map<string, number>();
    const problems: string[] = [];
    for (const r of receiver.received) {
      const body = JSON.parse(r.body) as { event?: string };
      const event = String(body.event);
      events.set(event, (events.get(event) ?? 0) + 1);
      const post = webhookDocs[event]?.post;
      if (!post) {
        problems.push(`webhook ${event}: no such entry under \`webhooks\` in the document`);
        continue;
      }
      const validate = validator(`/webhooks/${esc(event)}/post/requestBody/content/application~1json/schema`);
      if (!validate(body)) problems.push(`webhook ${event}: the body does not match\n${describeErrors(validate.errors)}\n    body: ${excerpt(r.body)}`);
      // The documented headers: required ones are there, and each value fits its schema.
      (post.parameters as Json[]).forEach((p, i) => {
        const raw = r.headers[p.name];
        if (raw === undefined) {
          if (p.required) problems.push(`webhook ${event}: header ${p.name} is missing`);
          return;
        }
        const value = p.schema.type === 'integer' ? Number(raw) : raw;
        const check = validator(`/webhooks/${esc(event)}/post/parameters/${i}/schema`);
        if (!check(value)) problems.push(`webhook ${event}: header ${p.name}: ${JSON.stringify(raw)}\n${describeErrors(check.errors)}`);
      });
    }
    expect(problems).toEqual([]);
    expect(events.get('task.state_changed') ?? 0).toBeGreaterThanOrEqual(1);
    expect(events.get('task.cancelled') ?? 0).toBeGreaterThanOrEqual(1);
    // The async schema's webhooks are signed with its key (hook_auth: standard).
    const signed = receiver.received.filter((r) => (JSON.parse(r.body) as Json).type.schema_name === HOOKS);
    expect(signed.length).toBeGreaterThanOrEqual(3);
    for (const r of signed) expect(String(r.headers['webhook-signature'])).toMatch(/^v1,/);
  });

  test('the validation is not vacuous: references resolve, and wrong bodies are refused', () => {
    const created = validator('/paths/~1api~1v1~1tasks/post/responses/200/content/application~1json/schema');
    const task = { id: '9d6c1f0e-5a55-4d8c-9b8e-0e6f3d1c2a77', created: '2026-11-29T22:36:25.249Z', updated: '2026-11-29T22:36:25.249Z', ttype_id: 2, state: null, user_id: null, resolved: false, meta: null, cancelled: null };
    expect(created({ task, ttype: 'flag-content' }), describeErrors(created.errors)).toBe(true);
    expect(created({ task: { ...task, created: '29/11/2026' }, ttype: 'flag-content' })).toBe(false); // format: date-time
    expect(created({ task: { ...task, id: 'nope' }, ttype: 'flag-content' })).toBe(false); // format: uuid
    expect(created({ task: { ...task, resolved: undefined }, ttype: 'flag-content' })).toBe(false); // required, through $ref Task
    expect(created({ task, ttype: 'flag-content', more: 1 })).toBe(true); // answers are open
    const problem = validator('/paths/~1api~1v1~1tasks/post/responses/422/content/application~1problem+json/schema');
    expect(problem({ type: 'urn:task-inbox:problem:x', title: 'X', status: '422', detail: 'd' })).toBe(false);
  });

  test('no answer contradicted the document', () => {
    expect(checked).toBeGreaterThan(100);
    expect(failures, `${failures.length} of ${checked} answers do not match the document:\n\n${failures.join('\n\n')}`).toEqual([]);
  });

  test('the flows exercised every (operation, status) pair they are meant to', () => {
    const known = new Set(operations.map((o) => o.operationId));
    const missing: string[] = [];
    for (const [operationId, statuses] of Object.entries(REQUIRED)) {
      if (!known.has(operationId)) missing.push(`${operationId}: not in the document`);
      for (const status of statuses) if (!exercised.has(`${operationId} ${status}`)) missing.push(`${operationId} ${status}`);
    }
    expect(missing, `not exercised; seen: ${[...exercised.keys()].sort().join(', ')}`).toEqual([]);
  });
});
