/*
 * The embedded database's background lane: the workers' statements give way to requests' ones and
 * let the event loop run between them (src/db/background-lane.ts). On PostgreSQL the background
 * handle is the same pool, and nothing here applies.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Database } from '../src/db/index.js';
import { createTestDatabase, dbKind } from './helpers/db.js';

describe.skipIf(dbKind !== 'pglite')('background statements on the embedded database', () => {
  let database: Database;
  beforeAll(async () => {
    database = (await createTestDatabase()).database;
  });
  afterAll(() => database.close());

  test("a request's statement runs after at most one queued background statement, not after all of them", async () => {
    const order: string[] = [];
    const background = Array.from({ length: 40 }, (_, i) => database.background.execute(sql`SELECT ${i}::int AS i`).then(() => order.push(`b${i}`)));
    // Queued after all forty, as a request arriving while the worker records outcomes.
    const request = database.db.execute(sql`SELECT 'request' AS r`).then(() => order.push('request'));
    await Promise.all([...background, request]);
    expect(order.indexOf('request')).toBeLessThanOrEqual(1);
    expect(order.filter((o) => o.startsWith('b'))).toEqual(Array.from({ length: 40 }, (_, i) => `b${i}`));
  });

  test('the event loop runs between background statements: a timer due meanwhile fires before the last one', async () => {
    const order: string[] = [];
    const background = Array.from({ length: 40 }, (_, i) => database.background.execute(sql`SELECT ${i}::int AS i`).then(() => order.push(`b${i}`)));
    const timer = new Promise<void>((resolve) => setTimeout(resolve, 0)).then(() => order.push('timer'));
    await Promise.all([...background, timer]);
    expect(order.indexOf('timer')).toBeLessThan(order.length - 1);
  });

  test('a background transaction and a failing background statement leave the lane working', async () => {
    await expect(database.background.execute(sql`SELECT 1/0`)).rejects.toThrow();
    const n = await database.background.transaction(async (tx) => ((await tx.execute(sql`SELECT 41 + 1 AS n`)) as unknown as { rows: unknown[] }).rows[0]);
    expect(n).toEqual({ n: 42 });
    await expect(database.background.execute(sql`SELECT 'still' AS s`)).resolves.toMatchObject({ rows: [{ s: 'still' }] });
  });
});
