import { readFileSync } from 'node:fs';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/node-postgres';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrationsFolder } from '../paths.js';
import type { Database } from './database.js';

/** Arbitrary constant: the advisory lock that serialises migrations of several instances. */
const MIGRATION_LOCK = 74_616_001;

/**
 * Applies every pending migration; safe to call from several processes at once. `folder` is
 * another migrations folder, e.g. one holding only the first few (see transfer-levels.ts).
 */
export async function migrate(database: Database, folder: string = migrationsFolder): Promise<void> {
  if (!database.pool) {
    await migratePglite(database.db as never, { migrationsFolder: folder });
    return;
  }
  // A session-level lock belongs to one connection, so the whole run uses one client.
  const client = await database.pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await migratePg(drizzle({ client }), { migrationsFolder: folder });
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

/** Names of the migrations in the package that the database has not applied yet (e.g. `0004_notifications`). */
export async function pendingMigrations(database: Database): Promise<string[]> {
  const files = readMigrationFiles({ migrationsFolder });
  const journal = JSON.parse(readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as { entries: { when: number; tag: string }[] };
  const tagOf = new Map(journal.entries.map((e) => [e.when, e.tag]));
  let applied: { created_at: string | number }[] = [];
  try {
    applied = await database.query<{ created_at: string | number }>('SELECT created_at FROM drizzle.__drizzle_migrations');
  } catch {
    applied = [];
  }
  const done = new Set(applied.map((r) => Number(r.created_at)));
  return files.filter((f) => !done.has(f.folderMillis)).map((f) => tagOf.get(f.folderMillis) ?? String(f.folderMillis));
}
