import { sql, type SQL } from 'drizzle-orm';
import { AppError } from '../errors.js';
import type { Executor } from './database.js';

/** One table of the application, as the database's catalog describes it. */
export interface TableInfo {
  name: string;
  /** Columns a row is written with (generated columns are left out), in table order. */
  columns: string[];
  /** Rows are exported in this order; empty when the table has no primary key. */
  primaryKey: string[];
  /** Tables it references, itself excluded. */
  parents: string[];
  /** Identity and serial columns, with the sequence behind each. */
  sequences: { column: string; sequence: string }[];
}

/** Rows of a query on either driver (node-postgres and PGlite both answer with `rows`). */
export async function rowsOf<T>(ex: Executor, query: SQL): Promise<T[]> {
  return ((await ex.execute(query)) as unknown as { rows: T[] }).rows;
}

/** A quoted SQL identifier. */
export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/*
 * The tables come from the catalog, not from a list in the code: a table added by a later
 * migration is exported and imported without anyone remembering to add it here. JSON built in
 * SQL and read as text keeps both drivers' type parsing out of it.
 */
const catalogQuery = sql.raw(`
  SELECT c.relname AS name,
    (SELECT coalesce(json_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_attribute a
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')::text AS columns,
    (SELECT coalesce(json_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum)), '[]')
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = c.oid AND i.indisprimary)::text AS primary_key,
    (SELECT coalesce(json_agg(DISTINCT p.relname), '[]') FROM pg_constraint f JOIN pg_class p ON p.oid = f.confrelid
      WHERE f.conrelid = c.oid AND f.contype = 'f')::text AS parents,
    (SELECT coalesce(json_agg(json_build_object('column', a.attname, 'sequence', s.seq)), '[]')
      FROM pg_attribute a, LATERAL (SELECT pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS seq) s
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND s.seq IS NOT NULL)::text AS sequences
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  ORDER BY c.relname`);

/** Every table in the `public` schema (the migrations' bookkeeping lives in `drizzle`), parents before children. */
export async function listTables(ex: Executor): Promise<TableInfo[]> {
  const found = await rowsOf<{ name: string; columns: string; primary_key: string; parents: string; sequences: string }>(ex, catalogQuery);
  const tables = found.map((r) => {
    const parents = JSON.parse(r.parents) as string[];
    // Rows would have to be ordered by their references within the table, which export does not do.
    if (parents.includes(r.name)) {
      throw new AppError('bad-request', `Table ${r.name} references itself; export and import cannot order its rows yet.`);
    }
    return {
      name: r.name,
      columns: JSON.parse(r.columns) as string[],
      primaryKey: JSON.parse(r.primary_key) as string[],
      parents,
      sequences: JSON.parse(r.sequences) as TableInfo['sequences'],
    };
  });
  return orderByForeignKeys(tables);
}

/** Parents before children (alphabetical among equals, so that files compare); refuses a cycle. */
export function orderByForeignKeys<T extends { name: string; parents: string[] }>(tables: T[]): T[] {
  const left = new Map(tables.map((t) => [t.name, t]));
  const ordered: T[] = [];
  while (left.size > 0) {
    const ready = [...left.values()].filter((t) => t.parents.every((p) => !left.has(p))).sort((a, b) => a.name.localeCompare(b.name));
    if (ready.length === 0) {
      throw new AppError('bad-request', `The foreign keys of tables ${[...left.keys()].join(', ')} form a cycle; export and import cannot order them.`);
    }
    for (const t of ready) {
      ordered.push(t);
      left.delete(t.name);
    }
  }
  return ordered;
}

/** Row counts of the given tables, in one query. */
export async function countRows(ex: Executor, names: string[]): Promise<Map<string, number>> {
  if (names.length === 0) return new Map();
  const union = names.map((name) => `SELECT '${name.replace(/'/g, "''")}' AS name, count(*)::text AS n FROM ${ident(name)}`).join(' UNION ALL ');
  const counted = await rowsOf<{ name: string; n: string }>(ex, sql.raw(union));
  return new Map(counted.map((r) => [r.name, Number(r.n)]));
}
