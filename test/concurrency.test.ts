import { afterAll, beforeAll, expect, test } from 'vitest';
import { installSchema } from '../src/core/schemas/index.js';
import { createTestApp, type TestApp } from './helpers/app.js';

// Issue 2: concurrent changes to one task never lose an update.
let t: TestApp;
const states = Array.from({ length: 20 }, (_, i) => `s${i}`);
beforeAll(async () => {
  t = await createTestApp({ poolSize: 20 });
  await installSchema(t.database, `name: many\nsemver: '1'\ntasktypes:\n- name: t\n  pending_states: [${states.join(', ')}]\n  resolved_states: [done]\n`);
});
afterAll(() => t.close());

async function newTask() {
  return (await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'many', task: 't' } })).json().task.id as string;
}
const patch = (id: string, state: string) => t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=${state}` });
const historyOf = async (id: string) =>
  (await t.call({ method: 'GET', url: `/api/v1/tasks/${id}/history` })).json().history as { id: number; state: string | null }[];

test('20 concurrent PATCHes to different states: one history entry each, and the state is the newest entry', async () => {
  const id = await newTask();
  const answers = await Promise.all(states.map((s) => patch(id, s)));
  expect(answers.map((r) => r.statusCode)).toEqual(states.map(() => 200));
  const history = await historyOf(id);
  expect(history).toHaveLength(1 + states.length);
  expect(new Set(history.slice(1).map((h) => h.state))).toEqual(new Set(states));
  const task = (await t.call({ method: 'GET', url: `/api/v1/tasks/${id}` })).json().task;
  expect(task.state).toBe(history[history.length - 1]!.state);
});

test('20 concurrent PATCHes with repeats: entries only for actual changes', async () => {
  const id = await newTask();
  const targets = Array.from({ length: 20 }, (_, i) => states[i % 3]!);
  await Promise.all(targets.map((s) => patch(id, s)));
  const history = await historyOf(id);
  for (let i = 1; i < history.length; i++) expect(history[i]!.state).not.toBe(history[i - 1]!.state);
  expect(history.length).toBeGreaterThanOrEqual(2);
  const task = (await t.call({ method: 'GET', url: `/api/v1/tasks/${id}` })).json().task;
  expect(task.state).toBe(history[history.length - 1]!.state);
});
