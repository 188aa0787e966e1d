/*
 * The embedded database's PostgreSQL settings (src/db/embedded.ts): sized for one backend in the
 * server's process rather than initdb's standalone defaults, whichever way the folder is opened,
 * and without rewriting the data folder's postgresql.conf.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openEmbeddedForCli, openEmbeddedForServer } from '../src/db/embedded.js';
import type { Database } from '../src/db/index.js';
import { dbKind } from './helpers/db.js';

const SETTINGS = ['shared_buffers', 'max_connections', 'wal_buffers', 'temp_buffers'] as const;

async function settingsOf(database: Database): Promise<Record<string, string>> {
  const rows = await database.query<{ name: string; value: string }>(
    `SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name`,
    [SETTINGS],
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

describe.skipIf(dbKind !== 'pglite')('embedded database settings', () => {
  let dataDir: string;

  beforeAll(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'ti-embedded-settings-'));
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the server opens the folder with small shared memory, and the data is kept across opens', async () => {
    const server = await openEmbeddedForServer(dataDir);
    try {
      expect(await settingsOf(server)).toEqual({ max_connections: '10', shared_buffers: '16MB', temp_buffers: '2MB', wal_buffers: '512kB' });
      await server.query('CREATE TABLE kept (x int)');
      await server.query('INSERT INTO kept VALUES (1), (2)');
    } finally {
      await server.close();
    }
    const cli = await openEmbeddedForCli(dataDir);
    try {
      expect(await settingsOf(cli)).toEqual({ max_connections: '10', shared_buffers: '16MB', temp_buffers: '2MB', wal_buffers: '512kB' });
      expect(await cli.query('SELECT count(*)::int AS n FROM kept')).toEqual([{ n: 2 }]);
    } finally {
      await cli.close();
    }
  });

  test("the folder's postgresql.conf keeps initdb's values: the settings are given at start only", () => {
    const conf = readFileSync(path.join(dataDir, 'pgdata', 'postgresql.conf'), 'utf8');
    expect(conf).toMatch(/^shared_buffers = 128MB/m);
  });
});
