import { PGlite } from '@electric-sql/pglite';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { inject } from 'vitest';
import { openPostgres, wrapPglite, type Database } from '../../src/db/index.js';

/** Which database this run of the suite uses. */
export const dbKind = (process.env.TEST_DB ?? 'pglite') as 'pglite' | 'postgres';
const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function urlOf(database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  database: Database;
  /** PostgreSQL only: the URL of this test's own database, for CLI processes. */
  url?: string;
}

/** A freshly migrated database of its own: PGlite in memory, or a copy of the PostgreSQL template. */
export async function createTestDatabase(opts: { poolSize?: number } = {}): Promise<TestDatabase> {
  if (dbKind === 'pglite') {
    const snapshot = readFileSync(inject('pgliteSnapshot'));
    const client = await PGlite.create({ loadDataDir: new Blob([snapshot]) });
    return { database: wrapPglite(client) };
  }
  const name = `ti_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}`));
  const url = urlOf(name);
  const database = openPostgres({
    connection: url,
    poolSize: opts.poolSize ?? 10,
    onClose: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  });
  return { database, url };
}
