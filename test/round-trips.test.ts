import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Database } from '../src/db/index.js';
import { createTestApp, sampleSchema, type TestApp } from './helpers/app.js';
import { installSchema } from '../src/core/schemas/index.js';

// Issue 9: the hot routes cost the database as few round trips as they can. A POST of a task is
// one statement (key, type, task, history, live update and outbox row together); a page of the
// list is the key lookup and the page (task types are read once per process).

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

/** The SQL statements `fn` sends, on either database (the only traffic meanwhile: no workers run here). */
async function statementsOf(database: Database, fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const record = (config: unknown) => {
    const text = typeof config === 'string' ? config : (config as { text?: string } | null)?.text;
    if (text !== undefined) seen.push(text.replace(/\s+/g, ' ').trim());
  };
  // On PGlite the instance's own query (which the drizzle client calls); on PostgreSQL every pooled client's.
  const target = (database.pglite ?? pg.Client.prototype) as unknown as { query: (...a: unknown[]) => unknown };
  const original = target.query;
  target.query = function (this: unknown, ...args: unknown[]) {
    record(args[0]);
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    target.query = original;
  }
  return seen;
}

const post = (body: object) => t.call({ method: 'POST', url: '/api/v1/tasks/', payload: body, key: t.key });

describe('POST /api/v1/tasks/', () => {
  test('one statement: the key is checked by the statement that writes the task', async () => {
    expect((await post({ schema_name: 'acme:moderation', task: 'flag-content' })).statusCode).toBe(200); // stamps the key's last use
    let res!: Awaited<ReturnType<typeof post>>;
    const statements = await statementsOf(t.database, async () => {
      res = await post({ schema_name: 'acme:moderation', task: 'flag-content', state: 'level1', meta: { n: 1 } });
    });
    expect(res.statusCode).toBe(200);
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/FROM api_keys WHERE key_hash/);
    expect(statements[0]).toMatch(/INSERT INTO tasks/);
  });

  test('the one statement writes the task, its created entry and its outbox event, and sends the live update', async () => {
    const pending = (await post({ schema_name: 'acme:moderation', task: 'flag-content', state: 'level2', meta: { who: 'x' } })).json();
    const resolved = (await post({ schema_name: 'acme:moderation', task: 'flag-content', state: 'block' })).json();
    const unset = (await post({ schema_name: 'acme:moderation', task: 'flag-content' })).json();
    expect([pending.task.resolved, resolved.task.resolved, unset.task.resolved]).toEqual([false, true, false]);
    for (const task of [pending.task, resolved.task, unset.task]) {
      const [history] = await t.database.query<{ state: string | null; resolved: boolean; event: string; update_meta: unknown; api_key_id: string | null }>(
        'SELECT state, resolved, event, update_meta, api_key_id FROM task_history WHERE task_id = $1',
        [task.id],
      );
      expect(history).toMatchObject({ state: task.state, resolved: task.resolved, event: 'created', update_meta: task.meta });
      expect(history!.api_key_id).not.toBeNull();
    }
    const events = await t.database.query<{ task_id: string }>('SELECT task_id FROM notification_events WHERE task_id = ANY($1::uuid[])', [[pending.task.id, resolved.task.id, unset.task.id]]);
    // A task created resolved needs nobody: no notification event for it.
    expect(events.map((e) => e.task_id).sort()).toEqual([pending.task.id, unset.task.id].sort());
  });

  test('a refused POST (unknown type, state not of the type) writes nothing', async () => {
    const before = await t.database.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks');
    expect((await post({ schema_name: 'acme:moderation', task: 'nope' })).statusCode).toBe(404);
    expect((await post({ schema_name: 'acme:moderation', task: 'flag-content', state: 'nope' })).statusCode).toBe(422);
    const after = await t.database.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks');
    expect(after[0]!.n).toBe(before[0]!.n);
  });
});

describe('GET /api/v1/tasks/', () => {
  test('two statements for a page once its types are known: the key, then the page', async () => {
    await t.call({ method: 'GET', url: '/api/v1/tasks/?resolved=un', key: t.key });
    const statements = await statementsOf(t.database, async () => {
      const res = await t.call({ method: 'GET', url: '/api/v1/tasks/?resolved=un', key: t.key });
      expect(res.statusCode).toBe(200);
      expect(res.json().tasks.length).toBeGreaterThan(0);
    });
    expect(statements).toHaveLength(2);
    expect(statements[1]).toMatch(/FROM tasks WHERE NOT resolved ORDER BY seq ASC LIMIT/);
  });

  test("a new version's type is read when a page first shows one of its tasks, and described right", async () => {
    await installSchema(t.database, sampleSchema.replace("semver: '1'", "semver: '2'").replace("['level1', 'level2']", "['level1', 'level2', 'level3']"));
    const created = (await post({ schema_name: 'acme:moderation', task: 'flag-content', state: 'level3' })).json();
    const page = (await t.call({ method: 'GET', url: '/api/v1/tasks/?resolved=un&order=newest&limit=1', key: t.key })).json();
    expect(page.tasks[0].id).toBe(created.task.id);
    expect(page.types[String(created.task.ttype_id)]).toMatchObject({ version: 1, semver: '2', pending_states: ['level1', 'level2', 'level3'] });
  });
});

describe('POST checks its key in the statement that writes', () => {
  const count = async () => (await t.database.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks'))[0]!.n;

  test('a new key posts, and its first use is stamped; a revoked, unknown or other-schema key writes nothing', async () => {
    const { createApiKey, revokeApiKey } = await import('../src/core/keys/index.js');
    const body = { schema_name: 'acme:moderation', task: 'flag-content', state: 'level1' };
    const fresh = await createApiKey(t.database, { name: 'fresh' });
    const res = await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: body, key: fresh.key });
    expect(res.statusCode).toBe(200);
    const [used] = await t.database.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [fresh.id]);
    expect(used!.last_used_at).not.toBeNull();
    const [history] = await t.database.query<{ api_key_id: string }>('SELECT api_key_id FROM task_history WHERE task_id = $1', [res.json().task.id]);
    expect(history!.api_key_id).toBe(fresh.id);

    const other = await createApiKey(t.database, { name: 'other-schema', schemaName: 'acme:moderation' });
    await t.database.query("INSERT INTO task_schemas (name) VALUES ('acme:elsewhere')");
    await revokeApiKey(t.database, fresh.id);
    const before = await count();
    const refused = [
      await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: body, key: fresh.key }),
      await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: body, key: 'not-a-key' }),
      await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { ...body, schema_name: 'acme:elsewhere' }, key: other.key }),
    ];
    expect(refused.map((r) => [r.statusCode, r.json().type])).toEqual([
      [403, expect.stringContaining('api-key-invalid')],
      [403, expect.stringContaining('api-key-invalid')],
      [403, expect.stringContaining('api-key-wrong-schema')],
    ]);
    expect(await count()).toBe(before);
  });
});
