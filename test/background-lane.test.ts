/*
 * Background statements (the workers'), src/db/background-lane.ts: on the embedded database they
 * give way to requests' statements and let the event loop run between them; on PostgreSQL they
 * use at most half the pool, so requests always find a connection.
 */
import { sql } from 'drizzle-orm';
import pg from 'pg';
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

describe.skipIf(dbKind !== 'postgres')('background statements on PostgreSQL', () => {
  test('use at most half the pool at once (transactions included); a request meanwhile gets a connection at once', async () => {
    const { database, url } = await createTestDatabase({ poolSize: 4 });
    // Watched from a connection of its own, outside the pool.
    const watcher = new pg.Client({ connectionString: url });
    await watcher.connect();
    try {
      const tag = `bg-${Date.now()}`;
      const sleepers = [
        ...Array.from({ length: 6 }, () => database.background.execute(sql.raw(`SELECT pg_sleep(0.5), '${tag}'`))),
        ...Array.from({ length: 2 }, () => database.background.transaction((tx) => tx.execute(sql.raw(`SELECT pg_sleep(0.5), '${tag}'`)))),
      ];
      let most = 0;
      const sampling = (async () => {
        for (let i = 0; i < 12; i++) {
          const { rows } = await watcher.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1`, [`SELECT pg_sleep(0.5), '${tag}'%`]);
          most = Math.max(most, Number(rows[0]!.n));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      await database.db.execute(sql`SELECT 1`);
      const requestMs = performance.now() - t0;
      await Promise.all([...sleepers, sampling]);
      expect(most).toBe(2);
      // The request did not wait for a sleeper to finish (each takes 500 ms).
      expect(requestMs).toBeLessThan(300);
    } finally {
      await watcher.end();
      await database.close();
    }
  });
});
