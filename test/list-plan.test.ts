import { afterAll, beforeAll, expect, test } from 'vitest';
import { schemasRepo } from '../src/core/schemas/index.js';
import { listTasksQuery, type TaskFilter } from '../src/core/tasks/tasks.repo.js';
import { createTestApp, type TestApp } from './helpers/app.js';

// Issue 2: the task list is backed by indexes, so a deep page costs what the first does: the
// plan walks an index in seq order from the cursor, with no sort and no scan of the table.
let t: TestApp;
let schemaId: number;
beforeAll(async () => {
  t = await createTestApp();
  schemaId = (await schemasRepo.findSchemaByName(t.database.db, 'acme:moderation'))!.id;
  const [type] = await t.database.query<{ id: number }>("SELECT id FROM task_types WHERE name = 'flag-content'");
  await t.database.query(
    `INSERT INTO tasks (ttype_id, schema_id, state, resolved)
     SELECT $1, $2, CASE WHEN i % 3 = 0 THEN 'block' ELSE NULL END, i % 3 = 0 FROM generate_series(1, 20000) AS i`,
    [type!.id, schemaId],
  );
  await t.database.query('ANALYZE tasks');
});
afterAll(() => t.close());

async function planOf(f: Partial<TaskFilter>): Promise<string> {
  const { statement, params } = listTasksQuery({ resolved: 'all', order: 'oldest', limit: 51, ...f });
  const rows = await t.database.query<Record<string, unknown>>(`EXPLAIN ${statement.text}`, params);
  return rows.map((r) => String(Object.values(r)[0])).join('\n');
}

test.each([
  ['unresolved, first page', { resolved: 'un' }, 'tasks_unresolved_seq_idx'],
  ['unresolved, deep page', { resolved: 'un', afterSeq: 15000 }, 'tasks_unresolved_seq_idx'],
  ['unresolved, newest first, deep page', { resolved: 'un', order: 'newest', afterSeq: 5000 }, 'tasks_unresolved_seq_idx'],
  ['all, deep page', { afterSeq: 15000 }, 'tasks_seq_uq'],
] as const)('%s: index scan in order, no sort', async (_name, filter, index) => {
  const plan = await planOf(filter as Partial<TaskFilter>);
  expect(plan).toContain(index);
  expect(plan).not.toMatch(/Sort|Seq Scan/);
});

test('schema filter, deep page: the (schema_id, seq) index', async () => {
  const plan = await planOf({ schemaId, afterSeq: 15000 });
  expect(plan).toMatch(/tasks_schema_seq_idx|tasks_seq_uq/);
  expect(plan).not.toMatch(/Sort|Seq Scan/);
});
