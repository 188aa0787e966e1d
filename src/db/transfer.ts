import { sql } from 'drizzle-orm';
import { AppError } from '../errors.js';
import type { Database, Tx } from './database.js';
import { countRows, ident, listTables, rowsOf, type TableInfo } from './transfer-catalog.js';
import { appliedMigrations, type MigrationRef } from './transfer-levels.js';

/*
 * The export file: NDJSON, one header line, then one line per row, `{"t":"<table>","r":{…}}`,
 * tables parents first. Rows are PostgreSQL's own `row_to_json` on the way out and
 * `json_populate_recordset` on the way in, so every type (timestamps to the microsecond, arrays,
 * jsonb, bigints) crosses unchanged without passing through JavaScript values, and a batch of rows
 * is one query parameter (far from the 65,535-parameter limit).
 */

export const FORMAT = 'task-inbox-export';
export const FORMAT_VERSION = 1;

/** The first line of an export file. */
export interface ExportHeader {
  format: typeof FORMAT;
  formatVersion: number;
  /** The task-inbox version that wrote it. */
  taskInbox: string;
  exportedAt: string;
  source: 'embedded' | 'postgres';
  /** The migrations the exported database had applied. */
  migrations: MigrationRef[];
  /** An HMAC of a fixed text under SECRET_KEY (never the key): the importer must have the same key. Null: no key existed. */
  secretKeyCheck: string | null;
  /** Where the source's key was, for the importer's message. */
  secretKeyFrom: string | null;
  tables: { name: string; columns: string[]; rows: number }[];
  /** Each identity or serial column's sequence, so new rows continue after the old ones. */
  sequences: { table: string; column: string; lastValue: number; isCalled: boolean }[];
}

/** Called as rows are read or written: the table and how many of its rows are done. */
export type TransferProgress = (table: string, done: number) => void;

export interface ExportOptions {
  about: Pick<ExportHeader, 'taskInbox' | 'source' | 'secretKeyCheck' | 'secretKeyFrom'>;
  /** Writes the file's lines (handed over in pages, each line ending in a newline); resolves when all is written. */
  write(lines: AsyncIterable<string>): Promise<void>;
  /** Called with the header before the first row. */
  onStart?(header: ExportHeader): void;
  onProgress?: TransferProgress;
}

const PAGE_ROWS = 500;
const BATCH_ROWS = 1000;
const BATCH_BYTES = 2 * 1024 * 1024;

/** The line prefix of a row of `table`. */
const rowPrefix = (table: string) => `{"t":${JSON.stringify(table)},"r":`;

/** Reads the whole database in one read-only REPEATABLE READ transaction: a consistent snapshot, however long it takes. */
export async function exportDatabase(database: Database, opts: ExportOptions): Promise<ExportHeader> {
  return database.db.transaction(
    async (tx) => {
      const tables = await listTables(tx);
      const counts = await countRows(
        tx,
        tables.map((t) => t.name),
      );
      const sequences: ExportHeader['sequences'] = [];
      for (const t of tables) {
        for (const s of t.sequences) {
          const [state] = await rowsOf<{ last_value: string; is_called: boolean }>(tx, sql.raw(`SELECT last_value::text AS last_value, is_called FROM ${s.sequence}`));
          sequences.push({ table: t.name, column: s.column, lastValue: Number(state!.last_value), isCalled: state!.is_called });
        }
      }
      const header: ExportHeader = {
        format: FORMAT,
        formatVersion: FORMAT_VERSION,
        ...opts.about,
        exportedAt: new Date().toISOString(),
        migrations: await appliedMigrations(tx),
        tables: tables.map((t) => ({ name: t.name, columns: t.columns, rows: counts.get(t.name) ?? 0 })),
        sequences,
      };
      opts.onStart?.(header);
      await opts.write(fileLines(tx, header, tables, opts.onProgress));
      return header;
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

async function* fileLines(tx: Tx, header: ExportHeader, tables: TableInfo[], onProgress?: TransferProgress): AsyncGenerator<string> {
  yield JSON.stringify(header) + '\n';
  for (const table of tables) {
    const prefix = rowPrefix(table.name);
    const order = table.primaryKey.length > 0 ? ` ORDER BY ${table.primaryKey.map(ident).join(', ')}` : '';
    // A cursor reads the table in pages without holding it in memory, whatever its key.
    await tx.execute(sql.raw(`DECLARE ti_export NO SCROLL CURSOR FOR SELECT row_to_json(r.*)::text AS line FROM ${ident(table.name)} AS r${order}`));
    let done = 0;
    for (;;) {
      const page = await rowsOf<{ line: string }>(tx, sql.raw(`FETCH ${PAGE_ROWS} FROM ti_export`));
      if (page.length === 0) break;
      // jsonb never prints a raw newline, but a future `json` column could keep one from its input.
      yield page.map((r) => prefix + (r.line.includes('\n') ? JSON.stringify(JSON.parse(r.line)) : r.line) + '}\n').join('');
      done += page.length;
      onProgress?.(table.name, done);
    }
    await tx.execute(sql.raw('CLOSE ti_export'));
    if (done === 0) onProgress?.(table.name, 0);
  }
}

/** The header line, checked; throws a message for people when the file is not one of ours. */
export function parseHeader(line: string | undefined): ExportHeader {
  const notOurs = (why: string) => new AppError('bad-request', `This is not a task-inbox export file (${why}). Make one with: task-inbox export FILE`);
  if (line === undefined || line.trim() === '') throw notOurs('it is empty');
  let header: Partial<ExportHeader>;
  try {
    header = JSON.parse(line) as Partial<ExportHeader>;
  } catch {
    throw notOurs('its first line is not JSON');
  }
  if (header?.format !== FORMAT) throw notOurs('its first line is not a task-inbox export header');
  if (typeof header.formatVersion !== 'number' || header.formatVersion > FORMAT_VERSION) {
    throw new AppError('bad-request', `The file has export format ${header.formatVersion} (task-inbox ${header.taskInbox}); this task-inbox reads format ${FORMAT_VERSION}. Install a newer task-inbox here.`);
  }
  if (!Array.isArray(header.tables) || !Array.isArray(header.migrations) || !Array.isArray(header.sequences)) throw notOurs('its header is incomplete');
  return header as ExportHeader;
}

export interface ImportOptions {
  /** Empty every table first (in the same transaction) instead of refusing a target that holds data. */
  replace: boolean;
  onProgress?: TransferProgress;
}

/** A damaged file: nothing is imported, and the message says where. */
const damaged = (lineNo: number, why: string) => new AppError('bad-request', `The file is damaged at line ${lineNo}: ${why}. Nothing was imported.`);

/**
 * Writes the rows after `header` into the target in one transaction, keeping every id, then moves
 * each sequence past the highest id. The target must already be at the file's migration level.
 */
export async function importDatabase(database: Database, header: ExportHeader, lines: AsyncIterable<string>, opts: ImportOptions): Promise<void> {
  await database.db.transaction(async (tx) => {
    const tables = await listTables(tx);
    const names = tables.map((t) => t.name);
    const missing = header.tables.filter((t) => !names.includes(t.name)).map((t) => t.name);
    const unknown = names.filter((n) => !header.tables.some((t) => t.name === n));
    if (missing.length > 0 || unknown.length > 0) {
      throw new AppError(
        'bad-request',
        `The file's tables do not match the target's at the same migration level (${[...missing.map((n) => `${n} only in the file`), ...unknown.map((n) => `${n} only in the target`)].join(', ')}). Nothing was imported.`,
      );
    }
    for (const t of header.tables) {
      const extra = t.columns.filter((c) => !tables.find((x) => x.name === t.name)!.columns.includes(c));
      if (extra.length > 0) throw new AppError('bad-request', `Table ${t.name} of the target has no column ${extra.join(', ')}. Nothing was imported.`);
    }
    // Nobody else writes while the rows go in (a server already running on the target waits).
    await tx.execute(sql.raw(`LOCK TABLE ${names.map(ident).join(', ')} IN ACCESS EXCLUSIVE MODE`));
    const counts = await countRows(tx, names);
    const held = names.filter((n) => (counts.get(n) ?? 0) > 0);
    if (held.length > 0 && !opts.replace) {
      throw new AppError(
        'bad-request',
        `The target database is not empty: it holds ${held.map((n) => `${n} (${counts.get(n)})`).join(', ')}. Nothing was imported. ` +
          'Import into an empty database, or add --replace to delete all of this first (in the same transaction: if the import fails, it stays).',
      );
    }
    if (held.length > 0) await tx.execute(sql.raw(`TRUNCATE ${names.map(ident).join(', ')}`));

    const done = await insertRows(tx, header, lines, opts.onProgress);
    const wrong = header.tables.filter((t) => (done.get(t.name) ?? 0) !== t.rows);
    if (wrong.length > 0) {
      throw new AppError(
        'bad-request',
        `The file is incomplete: ${wrong.map((t) => `${t.name} has ${done.get(t.name) ?? 0} of ${t.rows} rows`).join(', ')}. Nothing was imported.`,
      );
    }
    for (const t of tables) {
      for (const s of t.sequences) {
        const was = header.sequences.find((x) => x.table === t.name && x.column === s.column);
        const floor = was ? (was.isCalled ? was.lastValue : was.lastValue - 1) : 0;
        await tx.execute(
          sql.raw(
            `SELECT CASE WHEN v > 0 THEN setval('${s.sequence.replace(/'/g, "''")}', v, true) ELSE setval('${s.sequence.replace(/'/g, "''")}', 1, false) END ` +
              `FROM (SELECT GREATEST(${Math.trunc(floor)}, (SELECT coalesce(max(${ident(s.column)}), 0) FROM ${ident(t.name)})) AS v) x`,
          ),
        );
      }
    }
  });
}

/** Inserts the rows in batches, table by table in the file's order; returns the rows per table. */
async function insertRows(tx: Tx, header: ExportHeader, lines: AsyncIterable<string>, onProgress?: TransferProgress): Promise<Map<string, number>> {
  const position = new Map(header.tables.map((t, i) => [t.name, i]));
  const done = new Map<string, number>();
  let current = -1;
  let batch: string[] = [];
  let bytes = 0;
  let firstLine = 0;
  let lastLine = 0;
  let lineNo = 1;

  const flush = async () => {
    if (batch.length === 0) return;
    const table = header.tables[current]!;
    const columns = table.columns.map(ident).join(', ');
    try {
      await tx.execute(
        sql`INSERT INTO ${sql.raw(ident(table.name))} (${sql.raw(columns)}) OVERRIDING SYSTEM VALUE
            SELECT ${sql.raw(columns)} FROM json_populate_recordset(NULL::${sql.raw(ident(table.name))}, ${`[${batch.join(',')}]`}::text::json)`,
      );
    } catch (err) {
      const cause = (err as { cause?: Error }).cause ?? (err as Error);
      throw new AppError('bad-request', `Rows of ${table.name} on lines ${firstLine}–${lastLine} could not be imported: ${cause.message}. Nothing was imported.`);
    }
    done.set(table.name, (done.get(table.name) ?? 0) + batch.length);
    onProgress?.(table.name, done.get(table.name)!);
    batch = [];
    bytes = 0;
  };

  for await (const line of lines) {
    lineNo++;
    if (line === '') continue;
    let row: { t?: unknown; r?: unknown };
    try {
      row = JSON.parse(line) as typeof row;
    } catch {
      throw damaged(lineNo, 'it is not JSON (was the file cut short or edited?)');
    }
    if (typeof row?.t !== 'string' || typeof row.r !== 'object' || row.r === null || Array.isArray(row.r)) throw damaged(lineNo, 'it is not a row');
    const at = position.get(row.t);
    if (at === undefined) throw damaged(lineNo, `the header lists no table ${row.t}`);
    if (at < current) throw damaged(lineNo, `a row of ${row.t} follows rows of ${header.tables[current]!.name}`);
    if (at !== current) {
      await flush();
      current = at;
    }
    if (batch.length === 0) firstLine = lineNo;
    // Our own lines hand their row text on unparsed: PostgreSQL reads it, exactly as it wrote it.
    const prefix = rowPrefix(row.t);
    const text = line.startsWith(prefix) && line.endsWith('}') ? line.slice(prefix.length, -1) : JSON.stringify(row.r);
    batch.push(text);
    lastLine = lineNo;
    bytes += text.length;
    if (batch.length >= BATCH_ROWS || bytes >= BATCH_BYTES) await flush();
  }
  await flush();
  for (const t of header.tables) if (!done.has(t.name)) onProgress?.(t.name, 0);
  return done;
}
