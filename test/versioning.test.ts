import { afterAll, beforeAll, expect, test } from 'vitest';
import { installSchema } from '../src/core/schemas/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';

// SPEC §2.1, issue 2 acceptance 4: tasks stay on the version they were created under.
let t: TestApp;
let oldTask: { id: string; ttype_id: number };
const v0 = `name: ver\nsemver: '1.0'\ntasktypes:\n- name: legacy\n  pending_states: [waiting]\n  resolved_states: [ok, no]\n- name: kept\n  resolved_states: [done]\n`;
const v1 = `name: ver\nsemver: '2.0'\ntasktypes:\n- name: kept\n  pending_states: [triage]\n  resolved_states: [done, dropped]\n`;

beforeAll(async () => {
  t = await createTestApp();
  await installSchema(t.database, v0);
  oldTask = (await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'ver', task: 'legacy' } })).json().task;
  const installed = await installSchema(t.database, v1);
  expect(installed.version).toBe(1);
});
afterAll(() => t.close());

test('new tasks use the latest version: its new states work, a dropped type is 404', async () => {
  const res = await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'ver', task: 'kept', state: 'triage' } });
  expect(res.statusCode).toBe(200);
  const type = (await t.call({ method: 'GET', url: `/api/v1/tasks/${res.json().task.id}` })).json().type;
  expect(type).toMatchObject({ version: 1, semver: '2.0' });
  expect((await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'ver', task: 'legacy' } })).statusCode).toBe(404);
});

test('a task of a dropped type is still listed, with its own version of the type', async () => {
  const body = (await t.call({ method: 'GET', url: '/api/v1/tasks/?schema=ver&resolved=un' })).json();
  const listed = body.tasks.find((x: { id: string }) => x.id === oldTask.id);
  expect(listed).toBeDefined();
  expect(body.types[String(oldTask.ttype_id)]).toMatchObject({ name: 'legacy', version: 0, pending_states: ['waiting'] });
  const byType = (await t.call({ method: 'GET', url: '/api/v1/tasks/?schema=ver&type=legacy' })).json();
  expect(byType.tasks.map((x: { id: string }) => x.id)).toEqual([oldTask.id]);
});

test("its state changes are checked against its own type, and its history stays readable", async () => {
  expect((await t.call({ method: 'PATCH', url: `/api/v1/tasks/${oldTask.id}/state?state=triage` })).statusCode).toBe(422);
  const ok = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${oldTask.id}/state?state=waiting` });
  expect(ok.statusCode).toBe(200);
  const done = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${oldTask.id}/state?state=ok` });
  expect(done.json().task).toMatchObject({ state: 'ok', resolved: true });
  const history = (await t.call({ method: 'GET', url: `/api/v1/tasks/${oldTask.id}/history` })).json().history;
  expect(history.map((h: { state: string | null }) => h.state)).toEqual([null, 'waiting', 'ok']);
});
