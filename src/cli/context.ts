import { loadConfig, type Config } from '../config.js';
import { migrate, openDatabase, type Database } from '../db/index.js';
import type { Output } from './output.js';

/** What the CLI runs against. Tests inject a database and collect the output. */
export interface CliIo extends Output {
  /** Environment to read the configuration from (default: process.env and .env). */
  env?: Record<string, string | undefined>;
  /** An already open, migrated database to use instead of the configured one. */
  database?: Database;
  /** Standard input, for commands that read it. */
  stdin?: NodeJS.ReadableStream;
  /** Whether `err` goes to a terminal: long commands then draw a progress bar instead of printing lines. */
  errIsTty?: boolean;
}

export function configOf(io: CliIo): Config {
  return loadConfig(io.env);
}

/** Runs `fn` with the configured database (migrated), closing it afterwards. */
export async function withDatabase<T>(io: CliIo, fn: (database: Database, config: Config) => Promise<T>): Promise<T> {
  const config = configOf(io);
  if (io.database) return fn(io.database, config);
  const database = await openDatabase(config, 'cli');
  try {
    await migrate(database);
    return await fn(database, config);
  } finally {
    await database.close();
  }
}
