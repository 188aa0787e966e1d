import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApiKey } from '../src/core/keys/index.js';
import { installSchema } from '../src/core/schemas/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';

// SPEC §2.3 and issue 2: list, read, history and state, with every status code.
let t: TestApp;
const ids = {} as Record<'a' | 'b' | 'c' | 'd' | 'e', string>;

async function post(task: string, state?: string, schema = 'acme:moderation', meta?: object) {
  const res = await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: schema, task, state, meta } });
  expect(res.statusCode).toBe(200);
  return res.json().task as { id: string; state: string | null; resolved: boolean; ttype_id: number };
}

beforeAll(async () => {
  t = await createTestApp();
  await installSchema(t.database, "name: other\nsemver: '1'\ntasktypes:\n- name: review\n  resolved_states: [done]\n");
  ids.a = (await post('flag-content')).id;
  ids.b = (await post('flag-content', 'block')).id;
  ids.c = (await post('delete-acct', undefined, 'acme:moderation', { user: 7 })).id;
  ids.d = (await post('review', undefined, 'other')).id;
  ids.e = (await post('flag-content', 'level2')).id;
});
afterAll(() => t.close());

const get = (url: string, key?: string | null) => t.call({ method: 'GET', url, key });
const patch = (id: string, state: string | undefined, key?: string) =>
  t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state${state === undefined ? '' : `?state=${encodeURIComponent(state)}`}`, key });

describe('GET /api/v1/tasks/', () => {
  test('no parameter and resolved=all list every task, oldest first, with their types', async () => {
    for (const url of ['/api/v1/tasks/', '/api/v1/tasks/?resolved=all', '/api/v1/tasks']) {
      const body = (await get(url)).json();
      expect(body.tasks.map((x: { id: string }) => x.id)).toEqual([ids.a, ids.b, ids.c, ids.d, ids.e]);
      expect(body.next_cursor).toBeNull();
      for (const task of body.tasks) {
        const type = body.types[String(task.ttype_id)];
        expect(type).toBeDefined();
        expect(Object.keys(type)).toEqual(expect.arrayContaining(['id', 'name', 'schema_name', 'pending_states', 'resolved_states']));
      }
      expect(Object.keys(body.types)).toHaveLength(3);
      expect(body.types[String(body.tasks[0].ttype_id)]).toMatchObject({ name: 'flag-content', schema_name: 'acme:moderation', pending_states: ['level1', 'level2'], resolved_states: ['block', 'allow'] });
    }
  });

  test('resolved=un lists unresolved tasks only; types only of listed tasks', async () => {
    const body = (await get('/api/v1/tasks/?resolved=un')).json();
    expect(body.tasks.map((x: { id: string }) => x.id)).toEqual([ids.a, ids.c, ids.d, ids.e]);
    expect(body.tasks.every((x: { resolved: boolean }) => !x.resolved)).toBe(true);
    const done = (await get('/api/v1/tasks/?resolved=done')).json();
    expect(done.tasks.map((x: { id: string }) => x.id)).toEqual([ids.b]);
    expect(Object.values(done.types).map((ty) => (ty as { name: string }).name)).toEqual(['flag-content']);
  });

  test('filters by schema, type and state (empty state = no state)', async () => {
    const ids_ = async (q: string) => (await get(`/api/v1/tasks/?${q}`)).json().tasks.map((x: { id: string }) => x.id);
    expect(await ids_('schema=other')).toEqual([ids.d]);
    expect(await ids_('schema=acme:moderation&type=flag-content')).toEqual([ids.a, ids.b, ids.e]);
    expect(await ids_('type=flag-content&state=level2')).toEqual([ids.e]);
    expect(await ids_('schema=acme:moderation&state=')).toEqual([ids.a, ids.c]);
    expect(await ids_('schema=unknown')).toEqual([]);
    expect(await ids_('order=newest&resolved=un')).toEqual([ids.e, ids.d, ids.c, ids.a]);
  });

  test('keyset pages: limit and cursor walk the whole list without gaps or repeats', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const body: { tasks: { id: string }[]; next_cursor: string | null } = (await get(`/api/v1/tasks/?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json();
      expect(body.tasks.length).toBeLessThanOrEqual(2);
      seen.push(...body.tasks.map((x: { id: string }) => x.id));
      cursor = body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([ids.a, ids.b, ids.c, ids.d, ids.e]);
  });

  test('bad parameters → 400', async () => {
    for (const q of ['resolved=maybe', 'limit=0', 'limit=201', 'limit=abc', 'cursor=xyz', 'cursor=99999999999999999999']) {
      const res = await get(`/api/v1/tasks/?${q}`);
      expect(res.statusCode, q).toBe(400);
      expect(res.json().type).toBe('urn:task-inbox:problem:bad-request');
    }
  });

  test('without a key → 401; unknown key → 403', async () => {
    expect((await get('/api/v1/tasks/', null)).statusCode).toBe(401);
    expect((await get('/api/v1/tasks/', 'ti_wrong')).statusCode).toBe(403);
  });
});

describe('GET /api/v1/tasks/{id} and /history', () => {
  test('a task with its type and meta', async () => {
    const body = (await get(`/api/v1/tasks/${ids.c}`)).json();
    expect(body.task.id).toBe(ids.c);
    expect(body.type).toMatchObject({ name: 'delete-acct', schema_name: 'acme:moderation', version: 0, semver: '1' });
    expect(body.meta).toEqual({ user: 7 });
  });

  test('unknown task → 404; not a UUID → 400', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    expect((await get(`/api/v1/tasks/${missing}`)).statusCode).toBe(404);
    expect((await get(`/api/v1/tasks/${missing}/history`)).statusCode).toBe(404);
    expect((await get('/api/v1/tasks/not-a-uuid')).statusCode).toBe(400);
  });

  test('history entries have the SPEC fields, oldest first', async () => {
    const body = (await get(`/api/v1/tasks/${ids.e}/history`)).json();
    expect(body.history).toHaveLength(1);
    expect(Object.keys(body.history[0]).sort()).toEqual(['assigned_id', 'created', 'editor_id', 'editor_name', 'event', 'id', 'reason', 'resolved', 'state', 'task_id', 'update_meta']);
    expect(body.history[0]).toMatchObject({ event: 'created', reason: null });
  });
});

describe('PATCH /api/v1/tasks/{id}/state', () => {
  test('changes the state, follows resolved, and appends history', async () => {
    const id = (await post('flag-content')).id;
    const r1 = await patch(id, 'level1');
    expect(r1.statusCode).toBe(200);
    expect(r1.json().task).toMatchObject({ id, state: 'level1', resolved: false });
    const r2 = await patch(id, 'allow');
    expect(r2.json().task).toMatchObject({ state: 'allow', resolved: true });
    const history = (await get(`/api/v1/tasks/${id}/history`)).json().history;
    expect(history.map((h: { state: string | null; resolved: boolean }) => [h.state, h.resolved])).toEqual([
      [null, false],
      ['level1', false],
      ['allow', true],
    ]);
  });

  test('an empty state unsets it (null, not resolved)', async () => {
    const id = (await post('flag-content', 'block')).id;
    for (const state of ['', undefined]) {
      await patch(id, 'block');
      const res = await patch(id, state);
      expect(res.statusCode).toBe(200);
      expect(res.json().task).toMatchObject({ state: null, resolved: false });
    }
  });

  test('setting the state it already has changes nothing: no history entry', async () => {
    const id = (await post('flag-content', 'level1')).id;
    const before = (await get(`/api/v1/tasks/${id}`)).json().task;
    const res = await patch(id, 'level1');
    expect(res.statusCode).toBe(200);
    expect(res.json().task).toEqual(before);
    expect((await get(`/api/v1/tasks/${id}/history`)).json().history).toHaveLength(1);
  });

  test('a state the type does not have → 422, task unchanged', async () => {
    const id = (await post('flag-content', 'level1')).id;
    const res = await patch(id, 'deleted');
    expect(res.statusCode).toBe(422);
    expect(res.json().type).toBe('urn:task-inbox:problem:state-not-in-type');
    expect((await get(`/api/v1/tasks/${id}`)).json().task.state).toBe('level1');
  });

  test('unknown task → 404; bad id → 400; no key → 401', async () => {
    expect((await patch('00000000-0000-4000-8000-000000000000', 'block')).statusCode).toBe(404);
    expect((await patch('nope', 'block')).statusCode).toBe(400);
    expect((await t.call({ method: 'PATCH', url: `/api/v1/tasks/${ids.a}/state?state=block`, key: null })).statusCode).toBe(401);
  });

  test('works with a JSON content type and an empty body, as the earlier inbox sends it', async () => {
    const id = (await post('flag-content')).id;
    const res = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=level2`, headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(200);
    expect(res.json().task.state).toBe('level2');
  });
});

describe('a key limited to one schema', () => {
  test("reaches only that schema's tasks: others are invisible and unchangeable", async () => {
    const { key } = await createApiKey(t.database, { schemaName: 'other' });
    const list = (await get('/api/v1/tasks/', key)).json();
    expect(list.tasks.map((x: { id: string }) => x.id)).toEqual([ids.d]);
    expect((await get('/api/v1/tasks/?schema=acme:moderation', key)).json().tasks).toEqual([]);
    expect((await get(`/api/v1/tasks/${ids.a}`, key)).statusCode).toBe(404);
    expect((await get(`/api/v1/tasks/${ids.a}/history`, key)).statusCode).toBe(404);
    expect((await patch(ids.a, 'block', key)).statusCode).toBe(404);
    expect((await get(`/api/v1/tasks/${ids.a}`)).json().task.state).toBeNull();
    expect((await patch(ids.d, 'done', key)).statusCode).toBe(200);
  });
});
