import { sql } from 'drizzle-orm';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '../errors.js';
import { migrationsFolder, version } from '../paths.js';
import type { Database, Executor } from './database.js';
import { migrate } from './migrate.js';
import { rowsOf } from './transfer-catalog.js';

/*
 * An export file records the migrations its database had applied. Importing migrates the target
 * to exactly that level first, so the rows fit the tables as they were; after the rows are in,
 * the remaining migrations run as they would on the original (including ones that rewrite data).
 */

/** One migration, as the file records it: `when` is what drizzle keys migrations by. */
export interface MigrationRef {
  tag: string | null;
  when: number;
}

interface JournalEntry {
  tag: string;
  when: number;
}

function journal(): { entries: JournalEntry[] } {
  return JSON.parse(readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as { entries: JournalEntry[] };
}

/** The migrations this installation ships, oldest first. */
export function knownMigrations(): MigrationRef[] {
  return journal().entries.map((e) => ({ tag: e.tag, when: e.when }));
}

/** The migrations a database has applied, oldest first; empty before the first migration. */
export async function appliedMigrations(ex: Executor): Promise<MigrationRef[]> {
  const [table] = await rowsOf<{ present: boolean }>(ex, sql.raw(`SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`));
  if (!table?.present) return [];
  const applied = await rowsOf<{ created_at: string }>(ex, sql.raw('SELECT created_at::text AS created_at FROM drizzle.__drizzle_migrations ORDER BY created_at'));
  const tags = new Map(knownMigrations().map((m) => [m.when, m.tag]));
  return applied.map((r) => ({ when: Number(r.created_at), tag: tags.get(Number(r.created_at)) ?? null }));
}

const describe = (list: MigrationRef[]) => (list.length === 0 ? 'none' : `${list.length} (last: ${list.at(-1)!.tag ?? list.at(-1)!.when})`);

/**
 * Checks that a file's level is one this installation has, and that the target is not already
 * past it; returns how many migrations to apply before importing.
 */
export function levelToImportAt(file: MigrationRef[], target: MigrationRef[], fileVersion: string): number {
  const known = knownMigrations();
  if (file.some((m, i) => known[i]?.when !== m.when)) {
    throw new AppError(
      'bad-request',
      `The file was exported by task-inbox ${fileVersion} at migration level ${describe(file)}, which this task-inbox (${version}, level ${describe(known)}) does not have. ` +
        `Install task-inbox ${fileVersion} or newer here and import again.`,
    );
  }
  if (target.some((m, i) => file[i]?.when !== m.when)) {
    throw new AppError(
      'bad-request',
      `The target database is already at migration level ${describe(target)}, newer than the file's ${describe(file)} (task-inbox ${fileVersion}). ` +
        'Import into a new, empty database, or export again with this version of task-inbox.',
    );
  }
  return file.length;
}

/** Applies the first `count` of the installation's migrations (all of them: the usual `migrate`). */
export async function migrateTo(database: Database, count: number): Promise<void> {
  const { entries, ...rest } = journal();
  if (count >= entries.length) return migrate(database);
  const folder = mkdtempSync(path.join(os.tmpdir(), 'ti-migrations-'));
  try {
    mkdirSync(path.join(folder, 'meta'));
    const first = entries.slice(0, count);
    writeFileSync(path.join(folder, 'meta', '_journal.json'), JSON.stringify({ ...rest, entries: first }));
    for (const e of first) copyFileSync(path.join(migrationsFolder, `${e.tag}.sql`), path.join(folder, `${e.tag}.sql`));
    await migrate(database, folder);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}
