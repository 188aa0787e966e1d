import { PGlite } from '@electric-sql/pglite';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { servePglite, type PgliteSocketServer } from '../src/db/embedded-socket.js';
import { dbKind } from './helpers/db.js';

// The embedded database served to CLI processes: clients never interleave with the server's own
// queries or with each other's transactions.
describe.skipIf(dbKind !== 'pglite')('PGlite over a local socket', () => {
  let dir: string;
  let pglite: PGlite;
  let server: PgliteSocketServer;
  const client = () => new pg.Client({ host: dir, port: 5432, user: 'postgres', database: 'postgres' });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ti-sock-'));
    pglite = await PGlite.create();
    await pglite.exec('CREATE TABLE t (x int)');
    server = await servePglite(pglite, { path: path.join(dir, '.s.PGSQL.5432') });
  });
  afterAll(async () => {
    await server.close();
    await pglite.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the server's own queries wait for a client's open transaction instead of running inside it", async () => {
    const c = client();
    await c.connect();
    await c.query('BEGIN');
    await c.query('INSERT INTO t VALUES ($1)', [1]);
    let inProcessDone = false;
    const inProcess = pglite.query<{ n: number }>('SELECT count(*)::int AS n FROM t').then((r) => {
      inProcessDone = true;
      return r.rows[0]!.n;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(inProcessDone).toBe(false);
    await c.query('ROLLBACK');
    expect(await inProcess).toBe(0);
    await c.end();
  });

  test("a client's session settings (pg_dump empties search_path) do not change how the server's queries run", async () => {
    const c = client();
    await c.connect();
    await c.query("SELECT pg_catalog.set_config('search_path', '', false)");
    await c.query('SET statement_timeout = 1');
    // Unqualified, as the server's own queries are; with the client's search_path this would fail.
    const r = await pglite.query<{ n: number }>('SELECT count(*)::int AS n FROM t');
    expect(r.rows[0]!.n).toBeGreaterThanOrEqual(0);
    expect((await pglite.query<{ s: string }>("SELECT current_setting('statement_timeout') AS s")).rows[0]!.s).toBe('0');
    await c.end();
  });

  test('an idle client connection does not hold up the server', async () => {
    const c = client();
    await c.connect();
    await c.query('SELECT 1');
    const r = await Promise.race([pglite.query('SELECT 1 AS one'), new Promise((r) => setTimeout(() => r('blocked'), 2000))]);
    expect(r).not.toBe('blocked');
    await c.end();
  });

  test('a client that disconnects mid-transaction is rolled back', async () => {
    const c = client();
    await c.connect();
    await c.query('BEGIN');
    await c.query('INSERT INTO t VALUES (99)');
    const stream = (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream;
    c.on('error', () => {});
    stream.destroy();
    const rows = await pglite.query<{ n: number }>('SELECT count(*)::int AS n FROM t WHERE x = 99');
    expect(rows.rows[0]!.n).toBe(0);
    expect(pglite.isInTransaction()).toBe(false);
  });

  test('several clients at once all get their turn, each transaction whole', async () => {
    const clients = Array.from({ length: 4 }, client);
    await Promise.all(clients.map((c) => c.connect()));
    await Promise.all(
      clients.map(async (c, i) => {
        await c.query('BEGIN');
        await c.query('INSERT INTO t VALUES ($1)', [100 + i]);
        await c.query('INSERT INTO t VALUES ($1)', [200 + i]);
        await c.query('COMMIT');
      }),
    );
    await Promise.all(clients.map((c) => c.end()));
    const rows = await pglite.query<{ n: number }>('SELECT count(*)::int AS n FROM t WHERE x >= 100');
    expect(rows.rows[0]!.n).toBe(8);
  });
});
