import type { Config } from '../config.js';
import type { Database } from './database.js';
import { openEmbeddedForCli, openEmbeddedForServer } from './embedded.js';
import { openPostgres } from './open.js';

export type { Database, Db, Executor, Tx } from './database.js';
export { DataDirBusy, embeddedDatabaseExists } from './embedded.js';
export { migrate, pendingMigrations } from './migrate.js';
export { openPostgres, wrapPglite } from './open.js';
export * as tables from './tables.js';

/**
 * Opens the configured database: PostgreSQL when `DATABASE_URL` is set, otherwise the embedded
 * one. `role` decides how the embedded folder is shared (see embedded.ts).
 */
export async function openDatabase(config: Config, role: 'server' | 'cli'): Promise<Database> {
  if (config.databaseUrl) return openPostgres({ connection: config.databaseUrl, poolSize: role === 'server' ? config.dbPoolSize : 2 });
  return role === 'server' ? openEmbeddedForServer(config.dataDir) : openEmbeddedForCli(config.dataDir);
}
