import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApiKey, revokeApiKey } from '../src/core/keys/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { buildApp } from '../src/http/app.js';
import { createTestApp, testConfig, type TestApp } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';

// SPEC §2.2: POST /api/v1/tasks/ and every status code it lists.
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await installSchema(t.database, "name: other\nsemver: '1'\ntasktypes:\n- name: review\n  resolved_states: [done]\n");
});
afterAll(() => t.close());

const post = (payload: unknown, opts: { key?: string | null; url?: string; headers?: Record<string, string> } = {}) =>
  t.call({ method: 'POST', url: opts.url ?? '/api/v1/tasks/', payload: payload as object, key: opts.key, headers: opts.headers });

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number, code: string) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body).toMatchObject({ type: `urn:task-inbox:problem:${code}`, status });
  expect(typeof body.detail).toBe('string');
  expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/); // no stack traces
  return body;
}

describe('success', () => {
  test('answers the task object and the type name; no state means state null, not resolved', async () => {
    const res = await post({ schema_name: 'acme:moderation', task: 'flag-content', meta: { post: 42 } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.ttype).toBe('flag-content');
    expect(body.task).toMatchObject({ state: null, resolved: false, user_id: null, meta: { post: 42 } });
    expect(body.task.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Date(body.task.created).toISOString()).toBe(body.task.created);
    expect(typeof body.task.ttype_id).toBe('number');
  });

  test('resolved follows the initial state; the first history entry records it with meta as update_meta', async () => {
    const pending = (await post({ schema_name: 'acme:moderation', task: 'flag-content', state: 'level1' })).json();
    expect(pending.task).toMatchObject({ state: 'level1', resolved: false });
    const done = (await post({ schema_name: 'acme:moderation', task: 'flag-content', state: 'block', meta: { why: 'spam' } })).json();
    expect(done.task).toMatchObject({ state: 'block', resolved: true });
    const history = (await t.call({ method: 'GET', url: `/api/v1/tasks/${done.task.id}/history` })).json().history;
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ task_id: done.task.id, state: 'block', resolved: true, update_meta: { why: 'spam' }, editor_id: null, assigned_id: null });
  });

  test('the path without the trailing slash works too', async () => {
    const res = await post({ schema_name: 'acme:moderation', task: 'delete-acct', state: null, meta: null }, { url: '/api/v1/tasks' });
    expect(res.statusCode).toBe(200);
    expect(res.json().task.meta).toBeNull();
  });
});

describe('authentication', () => {
  test('missing api-key header → 401', async () => {
    expectProblem(await post({ schema_name: 'acme:moderation', task: 'delete-acct' }, { key: null }), 401, 'api-key-missing');
  });

  test('unknown key → 403', async () => {
    expectProblem(await post({ schema_name: 'acme:moderation', task: 'delete-acct' }, { key: 'ti_nope' }), 403, 'api-key-invalid');
  });

  test('revoked key → 403', async () => {
    const k = await createApiKey(t.database, { name: 'soon revoked' });
    expect((await post({ schema_name: 'acme:moderation', task: 'delete-acct' }, { key: k.key })).statusCode).toBe(200);
    await revokeApiKey(t.database, k.id);
    const body = expectProblem(await post({ schema_name: 'acme:moderation', task: 'delete-acct' }, { key: k.key }), 403, 'api-key-invalid');
    expect(body.detail).toMatch(/revoked/);
  });

  test('key limited to another schema → 403; to this schema → 200', async () => {
    const k = await createApiKey(t.database, { schemaName: 'other' });
    expectProblem(await post({ schema_name: 'acme:moderation', task: 'delete-acct' }, { key: k.key }), 403, 'api-key-wrong-schema');
    expect((await post({ schema_name: 'other', task: 'review' }, { key: k.key })).statusCode).toBe(200);
  });

  test('no API key on the server at all → 501 that says it is a setup step', async () => {
    const { database } = await createTestDatabase();
    const app = await buildApp({ config: testConfig(), database });
    try {
      for (const headers of [{}, { 'api-key': 'ti_anything' }]) {
        const res = await app.inject({ method: 'POST', url: '/api/v1/tasks/', headers, payload: { schema_name: 'x', task: 'y' } });
        const body = expectProblem(res, 501, 'no-api-keys');
        expect(body.detail).toMatch(/task-inbox api_key/);
      }
    } finally {
      await app.close();
      await database.close();
    }
  });
});

describe('not found and invalid', () => {
  test('unknown schema → 404', async () => {
    expectProblem(await post({ schema_name: 'nope', task: 'delete-acct' }), 404, 'schema-not-found');
  });

  test('task type not in the schema → 404 naming the known types', async () => {
    const body = expectProblem(await post({ schema_name: 'acme:moderation', task: 'nope' }), 404, 'task-type-not-found');
    expect(body.detail).toMatch(/delete-acct, flag-content/);
  });

  test('a state the type does not have → 422', async () => {
    const body = expectProblem(await post({ schema_name: 'acme:moderation', task: 'delete-acct', state: 'level1' }), 422, 'state-not-in-type');
    expect(body.detail).toMatch(/deleted/);
  });

  test('malformed JSON → 400', async () => {
    const res = await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: '{"schema_name": "acme', headers: { 'content-type': 'application/json' } });
    expect(expectProblem(res, 400, 'bad-request').detail).toMatch(/JSON/);
  });

  test('wrong field types → 400 naming each field', async () => {
    const res = await post({ schema_name: 1, task: 'delete-acct', meta: [1, 2], state: 5 });
    const body = expectProblem(res, 400, 'bad-request');
    expect(body.detail).toMatch(/body\.schema_name/);
    expect(body.detail).toMatch(/body\.meta/);
    expect(body.detail).toMatch(/body\.state/);
  });

  test('missing fields → 400', async () => {
    expect(expectProblem(await post({ schema_name: 'acme:moderation' }), 400, 'bad-request').detail).toMatch(/body\.task/);
  });

  test('a body over 1 MiB → 413', async () => {
    const res = await post({ schema_name: 'acme:moderation', task: 'delete-acct', meta: { blob: 'x'.repeat(1024 * 1024 + 10) } });
    expectProblem(res, 413, 'body-too-large');
  });

  test('nothing was written by the refused requests', async () => {
    const rows = await t.database.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks t JOIN task_types tt ON tt.id = t.ttype_id WHERE tt.name = 'delete-acct' AND t.state = 'level1'");
    expect(rows[0]!.n).toBe(0);
  });

  test('an unknown route is a 404 problem', async () => {
    expectProblem(await t.call({ method: 'GET', url: '/api/v1/nothing' }), 404, 'not-found');
  });
});
