import { entityKind } from 'drizzle-orm';
import type pg from 'pg';
import type { Executor } from './database.js';

/**
 * A fixed SQL statement for the hottest paths (creating a task, checking an API key, listing a
 * page of tasks): its text is written once, so nothing is built per call, and on PostgreSQL it runs
 * as a named prepared statement, parsed and planned once per pooled connection. It runs on the
 * driver client of the executor's drizzle session, so it joins the caller's transaction and, on the
 * embedded database, counts as a request statement for the background lane like every other; but
 * without drizzle's per-query wrapping (its result options alone cost PGlite a fifth of its
 * throughput on the POST path).
 *
 * Rows come back as the driver parses them, with the column names of the SQL: timestamps as Date,
 * arrays and JSON parsed, bigint as a number (see open.ts).
 */
export interface NamedStatement<Row> {
  readonly name: string;
  readonly text: string;
  run(db: Executor, params: readonly unknown[]): Promise<Row[]>;
}

type DriverClient = { query(...args: unknown[]): Promise<{ rows: unknown[] }> };

/** Pools (and their clients) whose statements must not be named: see withoutNamedStatements. */
const unnamed = new WeakSet<object>();

/**
 * Runs this pool's named statements unnamed. For a socket onto the embedded database: every
 * process connected to it shares the one PGlite session, where a second client's Parse of a name
 * another already prepared fails, and the session is reset between clients.
 */
export function withoutNamedStatements(pool: pg.Pool): void {
  unnamed.add(pool);
  pool.on('connect', (client) => unnamed.add(client));
}

export function namedStatement<Row>(name: string, text: string): NamedStatement<Row> {
  return {
    name,
    text,
    async run(db, params) {
      const session = db._.session as unknown as { client: DriverClient; constructor: { [entityKind]?: string } };
      const values = params as unknown[];
      const plain = session.constructor[entityKind] === 'PgliteSession' || unnamed.has(session.client);
      const result = plain ? await session.client.query(text, values) : await session.client.query({ name, text, values });
      return result.rows as Row[];
    },
  };
}
