import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { installSchema, listLatestTypes, listSchemas, removeSchema } from '../core/schemas/index.js';
import { AppError } from '../errors.js';
import { withDatabase, type CliIo } from './context.js';
import { printRows } from './output.js';

export function registerSchemaCommands(program: Command, io: CliIo) {
  program
    .command('taskschema')
    .description('install a task schema from a YAML file, or the next version of an installed one')
    .argument('<path>', 'the schema YAML file')
    .option('--dryrun', 'check the file and say what would happen, writing nothing')
    .option('--json', 'machine-readable output')
    .action(async (file: string, opts: { dryrun?: boolean; json?: boolean }) => {
      let source: string;
      try {
        source = await readFile(file, 'utf8');
      } catch (err) {
        throw new AppError('bad-request', `Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const result = await withDatabase(io, (db) => installSchema(db, source, { dryRun: opts.dryrun, label: file }));
      if (opts.json) return io.out(JSON.stringify(result, null, 2) + '\n');
      for (const w of result.warnings) io.err(`warning: ${file} line ${w.line}, ${w.field}: ${w.message}\n`);
      const what = result.isNewSchema ? `new schema '${result.name}'` : `schema '${result.name}'`;
      io.out(
        `${result.dryRun ? 'Dry run: would install' : 'Installed'} ${what} version ${result.version} (semver '${result.semver}') with ${result.types.length} task type${result.types.length === 1 ? '' : 's'}:\n`,
      );
      for (const t of result.types) {
        io.out(`  ${t.name}: pending [${t.pending_states.join(', ')}], resolved [${t.resolved_states.join(', ')}]\n`);
      }
    });

  program
    .command('rmschema')
    .description('delete a schema with all its versions and tasks (the task history rows are kept)')
    .argument('<name>', 'schema name')
    .option('--dryrun', 'say what would be deleted, deleting nothing')
    .option('--json', 'machine-readable output')
    .action(async (name: string, opts: { dryrun?: boolean; json?: boolean }) => {
      const r = await withDatabase(io, (db) => removeSchema(db, name, { dryRun: opts.dryrun }));
      if (opts.json) return io.out(JSON.stringify(r, null, 2) + '\n');
      io.out(
        `${r.dryRun ? 'Dry run: would delete' : 'Deleted'} schema '${r.name}': ${r.versions} version(s), ${r.tasks} task(s); ` +
          `${r.historyKept} history row(s) ${r.dryRun ? 'would be' : 'were'} kept.\n`,
      );
    });

  program
    .command('schemas')
    .description('list installed schemas')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const rows = await withDatabase(io, (db) => listSchemas(db));
      printRows(
        io,
        rows as unknown as Record<string, unknown>[],
        { NAME: 'name', VERSION: 'latest_version', SEMVER: 'semver', VERSIONS: 'versions', TASKS: 'tasks', UNRESOLVED: 'unresolved', CREATED: 'created' },
        { json: opts.json, empty: 'No schemas installed. Install one with: task-inbox taskschema FILE.yml' },
      );
    });

  program
    .command('tasktypes')
    .description("list the task types of a schema's latest version, with their states")
    .argument('<schema_name>', 'schema name')
    .option('--json', 'machine-readable output')
    .action(async (schemaName: string, opts: { json?: boolean }) => {
      const types = await withDatabase(io, (db) => listLatestTypes(db, schemaName));
      printRows(
        io,
        types as unknown as Record<string, unknown>[],
        { ID: 'id', NAME: 'name', VERSION: 'version', PENDING: 'pending_states', RESOLVED: 'resolved_states' },
        { json: opts.json, empty: `Schema '${schemaName}' has no task types.` },
      );
    });
}
