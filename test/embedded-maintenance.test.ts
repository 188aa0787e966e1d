/*
 * The embedded database has no autovacuum; src/db/embedded-maintenance.ts does its job with its
 * thresholds: tables whose dead or changed rows pass them are vacuumed and analyzed, others not.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { maintainEmbedded, startEmbeddedMaintenance, tablesDueForMaintenance } from '../src/db/embedded-maintenance.js';
import type { Database } from '../src/db/index.js';
import { createTestDatabase, dbKind } from './helpers/db.js';
import { sampleSchema } from './helpers/app.js';
import { installSchema } from '../src/core/schemas/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Stats {
  relname: string;
  n_dead_tup: number;
  last_vacuum: Date | null;
  last_analyze: Date | null;
}

describe.skipIf(dbKind !== 'pglite')('vacuum and analyze on the embedded database', () => {
  let database: Database;
  const stats = async (table: string) => (await database.query<Stats>('SELECT relname, n_dead_tup::int, last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = $1', [table]))[0]!;
  /** PostgreSQL publishes a statement's table counts at most once a second, when idle. */
  const settle = async () => {
    await sleep(1100);
    await database.query('SELECT 1');
    await sleep(50);
  };

  beforeAll(async () => {
    database = (await createTestDatabase()).database;
    await installSchema(database, sampleSchema);
  });
  afterAll(() => database.close());

  test('a table churned by an outbox is vacuumed and analyzed; an untouched one is left alone', async () => {
    const [type] = await database.query<{ id: number; schema_id: number }>("SELECT t.id, v.schema_id FROM task_types t JOIN schema_versions v ON v.id = t.version_id WHERE t.name = 'flag-content'");
    await database.query('INSERT INTO tasks (ttype_id, schema_id) VALUES ($1, $2)', [type!.id, type!.schema_id]);
    for (let i = 0; i < 5; i++) {
      await database.query('INSERT INTO notification_events (task_id) SELECT id FROM tasks, generate_series(1, 100)');
      await database.query('DELETE FROM notification_events');
    }
    await settle();
    expect((await stats('notification_events')).n_dead_tup).toBeGreaterThan(50);
    const due = await tablesDueForMaintenance(database);
    expect(due).toContainEqual({ table: 'notification_events', vacuum: true, analyze: true });
    expect(due.map((d) => d.table)).not.toContain('users');

    const done = await maintainEmbedded(database);
    expect(done).toEqual(due);
    await settle();
    const after = await stats('notification_events');
    expect(after.n_dead_tup).toBe(0);
    expect(after.last_vacuum).not.toBeNull();
    expect(after.last_analyze).not.toBeNull();
    expect((await stats('users')).last_vacuum).toBeNull();
    expect(await tablesDueForMaintenance(database)).not.toContainEqual(expect.objectContaining({ table: 'notification_events' }));
  });

  test('started, it runs on its interval until stopped', async () => {
    await database.query('INSERT INTO notification_events (task_id) SELECT id FROM tasks, generate_series(1, 200)');
    await database.query('DELETE FROM notification_events');
    await settle();
    const before = (await stats('notification_events')).last_vacuum;
    const maintenance = startEmbeddedMaintenance(database, { intervalMs: 100 });
    for (let i = 0; i < 50 && (await stats('notification_events')).last_vacuum?.getTime() === before?.getTime(); i++) await sleep(100);
    await maintenance.stop();
    expect((await stats('notification_events')).last_vacuum!.getTime()).toBeGreaterThan(before!.getTime());
  });
});
