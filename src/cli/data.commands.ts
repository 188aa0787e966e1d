import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { cliActor, recordAudit } from '../core/audit/audit.js';
import { createSecretBox, secretKeyFile } from '../core/secrets/secret-box.js';
import { migrate, openDatabase } from '../db/index.js';
import { exportDatabase, importDatabase, parseHeader, type ExportHeader } from '../db/transfer.js';
import { readExportFile, writeExportFile } from '../db/transfer-file.js';
import { appliedMigrations, levelToImportAt, migrateTo } from '../db/transfer-levels.js';
import { AppError } from '../errors.js';
import { version } from '../paths.js';
import { configOf, withDatabase, type CliIo } from './context.js';
import { formatTable } from './output.js';

/** The key sealing secrets here, without generating one: SECRET_KEY, else the embedded data folder's file. */
function secretKeyOf(config: Config): { key: string; from: string } | undefined {
  if (config.secretKey) return { key: config.secretKey, from: 'the SECRET_KEY variable' };
  const file = secretKeyFile(config.dataDir);
  if (config.databaseUrl || !existsSync(file)) return undefined;
  return { key: readFileSync(file, 'utf8').trim(), from: `the file ${file}` };
}

/** Tells two keys apart without revealing either. */
const keyCheck = (key: string) => createSecretBox(key).sign('export-file', 'the SECRET_KEY of a task-inbox export');

/** The file's key must be ours, or sealed webhook keys, the VAPID key and channel settings could not be opened. */
function checkSecretKey(config: Config, header: ExportHeader) {
  if (header.secretKeyCheck === null) return;
  const mine = secretKeyOf(config);
  if (mine && keyCheck(mine.key) === header.secretKeyCheck) return;
  const source = header.secretKeyFrom ? ` On the source it was ${header.secretKeyFrom}.` : '';
  const fix = config.databaseUrl
    ? 'Set SECRET_KEY to that key'
    : `Set SECRET_KEY to that key, or put it in ${secretKeyFile(config.dataDir)} (mode 0600)`;
  throw new AppError(
    'bad-request',
    `${mine ? `This installation's key (${mine.from}) differs from` : 'This installation has no SECRET_KEY yet, unlike'} the SECRET_KEY the file was exported under: ` +
      `sealed webhook keys, the web push (VAPID) key and notification channel settings would be unreadable.${source} ${fix}, and import again. Nothing was imported.`,
  );
}

const number = (n: number) => n.toLocaleString('en-US');

/**
 * Progress on standard error: a bar redrawn in place on a terminal; otherwise a plain line at
 * every tenth of the rows (and at least every 10 s), so that logs stay readable.
 */
function createProgress(io: CliIo, verb: string, tables: { name: string; rows: number }[]) {
  const started = Date.now();
  const total = tables.reduce((n, t) => n + t.rows, 0);
  const done = new Map<string, number>();
  let drawnAt = 0;
  let lineAt = started;
  let tenths = 0;
  const doneRows = () => [...done.values()].reduce((a, b) => a + b, 0);
  const percent = (n: number) => (total === 0 ? 100 : Math.floor((n / total) * 100));
  return {
    update(table: string, n: number) {
      done.set(table, n);
      const all = doneRows();
      const now = Date.now();
      const rows = tables.find((t) => t.name === table)?.rows ?? 0;
      if (io.errIsTty) {
        if (now - drawnAt < 100 && n < rows) return;
        drawnAt = now;
        const filled = Math.round((percent(all) / 100) * 30);
        io.err(`\r\x1b[2K${verb} [${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${percent(all)}% ${number(all)}/${number(total)} rows · ${table} ${number(n)}/${number(rows)}`);
        return;
      }
      const reached = total === 0 ? 10 : Math.floor((all / total) * 10);
      if (reached > tenths || now - lineAt >= 10_000) {
        tenths = Math.max(tenths, reached);
        lineAt = now;
        io.err(`${verb}: ${percent(all)}% (${number(all)} of ${number(total)} rows; ${table} ${number(n)} of ${number(rows)})\n`);
      }
    },
    /** The rows per table and the time taken; returns the seconds. */
    finish(): string {
      if (io.errIsTty) io.err('\r\x1b[2K');
      const filled = tables.filter((t) => t.rows > 0);
      io.err(formatTable(filled.map((t) => ({ table: t.name, rows: number(done.get(t.name) ?? 0) })), { TABLE: 'table', ROWS: 'rows' }));
      return `${number(doneRows())} rows of ${filled.length} tables (${tables.length - filled.length} empty) in ${((Date.now() - started) / 1000).toFixed(1)} s`;
    },
  };
}

export function registerDataCommands(program: Command, io: CliIo) {
  program
    .command('export')
    .description('write everything in the database (tasks, history, people, sessions, keys, …) to one file, for `import`')
    .argument('<file>', 'the file to write: NDJSON, gzip-compressed if it ends in .gz; - for standard output')
    .option('--force', 'overwrite the file if it exists')
    .action(async (file: string, opts: { force?: boolean }) => {
      const config = configOf(io);
      const target = file === '-' ? '-' : path.resolve(file);
      if (target !== '-' && existsSync(target) && !opts.force) {
        throw new AppError('bad-request', `${target} exists already. Choose another name, or add --force to overwrite it.`);
      }
      const key = secretKeyOf(config);
      let progress: ReturnType<typeof createProgress> | undefined;
      await withDatabase(io, (database) =>
        exportDatabase(database, {
          about: {
            taskInbox: version,
            source: database.kind === 'pglite' || !config.databaseUrl ? 'embedded' : 'postgres',
            secretKeyCheck: key ? keyCheck(key.key) : null,
            secretKeyFrom: key?.from ?? null,
          },
          onStart: (header) => (progress = createProgress(io, 'Exporting', header.tables)),
          onProgress: (table, n) => progress?.update(table, n),
          write: (lines) => writeExportFile(target, lines, (s) => io.out(s)),
        }),
      );
      const summary = progress!.finish();
      io.err(`Exported ${summary}${target === '-' ? '' : ` to ${target}`}.\n`);
      if (!key) io.err('No SECRET_KEY was found, so none is needed to import this file.\n');
    });

  program
    .command('import')
    .description('load a file written by `export` into this database, keeping every id; refuses a database that holds data')
    .argument('<file>', 'the file written by export (compressed or not); - for standard input')
    .option('--replace', 'delete everything in the database first (in the same transaction)')
    .action(async (file: string, opts: { replace?: boolean }) => {
      const config = configOf(io);
      const lines = readExportFile(file, io.stdin);
      try {
        const first = await lines.next();
        const header = parseHeader(first.done ? undefined : first.value);
        checkSecretKey(config, header);
        const database = io.database ?? (await openDatabase(config, 'cli'));
        let summary: string;
        try {
          await migrateTo(database, levelToImportAt(header.migrations, await appliedMigrations(database.db), header.taskInbox));
          const progress = createProgress(io, 'Importing', header.tables);
          await importDatabase(database, header, { [Symbol.asyncIterator]: () => lines }, {
            replace: Boolean(opts.replace),
            onProgress: (table, n) => progress.update(table, n),
          });
          // The migrations this version has beyond the file's, on the rows as they came.
          await migrate(database);
          await recordAudit(database.db, cliActor, 'database.import', file === '-' ? 'standard input' : path.resolve(file), {
            rows: header.tables.reduce((n, t) => n + t.rows, 0),
            exported_at: header.exportedAt,
            task_inbox: header.taskInbox,
            replace: Boolean(opts.replace),
          });
          summary = progress.finish();
        } finally {
          if (!io.database) await database.close();
        }
        const where = config.databaseUrl ? 'PostgreSQL' : `the embedded database in ${config.dataDir}`;
        io.err(`Imported ${summary} into ${where} (exported ${header.exportedAt} by task-inbox ${header.taskInbox}).\n`);
      } finally {
        await lines.return(undefined);
      }
    });
}
