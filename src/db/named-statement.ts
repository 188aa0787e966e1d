import type { Executor } from './database.js';

/**
 * A fixed SQL statement for the hottest paths (creating a task, checking an API key, listing a
 * page of tasks): its text is written once, so nothing is built per call, and on PostgreSQL it runs
 * as a named prepared statement, parsed and planned once per pooled connection. It runs through
 * drizzle's session, so it joins the caller's transaction and, on the embedded database, counts
 * as a request statement for the background lane like every other.
 *
 * Rows come back as the driver gives them, with the column names of the SQL: timestamps as text
 * (as drizzle asks both drivers for them), arrays and JSON parsed.
 */
export interface NamedStatement<Row> {
  readonly name: string;
  readonly text: string;
  run(db: Executor, params: readonly unknown[]): Promise<Row[]>;
}

export function namedStatement<Row>(name: string, text: string): NamedStatement<Row> {
  return {
    name,
    text,
    async run(db, params) {
      const prepared = db._.session.prepareQuery({ sql: text, params: params as unknown[] }, undefined, name, false);
      const result = (await prepared.execute()) as { rows: Row[] };
      return result.rows;
    },
  };
}

/** A timestamp as the drivers return it for named statements (text), or null. */
export const toDate = (value: string | Date): Date => (value instanceof Date ? value : new Date(value));
export const toDateOrNull = (value: string | Date | null): Date | null => (value === null ? null : toDate(value));
