import type { Command } from 'commander';
import { createTask, listTasksOfType } from '../core/tasks/index.js';
import { AppError } from '../errors.js';
import { configOf, withDatabase, type CliIo } from './context.js';
import { printRows } from './output.js';

function parseMeta(raw: string | undefined): Record<string, unknown> | null {
  if (raw === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new AppError('bad-request', `--meta must be JSON: ${(err as Error).message}`);
  }
  if (value !== null && (typeof value !== 'object' || Array.isArray(value))) throw new AppError('bad-request', '--meta must be a JSON object, like \'{"user": 42}\'.');
  return value as Record<string, unknown> | null;
}

export function registerTaskCommands(program: Command, io: CliIo) {
  program
    .command('tasks')
    .description('list the tasks of a task type, across all versions of its schema')
    .argument('<schema_name>', 'schema name')
    .argument('<task_type>', 'task type name')
    .option('--json', 'machine-readable output')
    .action(async (schemaName: string, typeName: string, opts: { json?: boolean }) => {
      const { tasks, types } = await withDatabase(io, (db) => listTasksOfType(db, schemaName, typeName));
      const versionOf = new Map(types.map((t) => [t.id, t.version]));
      const rows = tasks.map((t) => ({ ...t, version: versionOf.get(t.ttype_id) }));
      printRows(
        io,
        rows,
        { ID: 'id', CREATED: 'created', VERSION: 'version', STATE: 'state', RESOLVED: 'resolved', META: 'meta' },
        { json: opts.json, empty: `No tasks of type '${typeName}' in schema '${schemaName}'.` },
      );
    });

  program
    .command('mktask')
    .description('create a task directly in the database (no API key needed)')
    .argument('<schema_name>', 'schema name')
    .argument('<task_name>', "task type name in the schema's latest version")
    .option('--meta <json>', 'metadata, a JSON object')
    .option('--state <state>', 'initial state')
    .option('--json', 'machine-readable output')
    .action(async (schemaName: string, taskName: string, opts: { meta?: string; state?: string; json?: boolean }) => {
      const meta = parseMeta(opts.meta);
      const result = await withDatabase(io, (db) => createTask(db, { kind: 'cli' }, { schema_name: schemaName, task: taskName, state: opts.state || null, meta }));
      if (opts.json) return io.out(JSON.stringify(result, null, 2) + '\n');
      io.out(`Created ${result.ttype} task ${result.task.id} (state: ${result.task.state ?? 'none'}).\n`);
    });

  program
    .command('post-task')
    .alias('post_task')
    .description('create a task over HTTP, the way an application server does, with the API key from an environment variable')
    .option('--host <url>', 'the server (default: http://127.0.0.1:$PORT)')
    .option('--schema-name <name>', 'schema name', 'ti:sample')
    .option('--task-name <name>', 'task type name', 'delete-acct')
    .option('--key-var <var>', 'environment variable holding the API key', 'TI_API_KEY')
    .option('--meta <json>', 'metadata, a JSON object')
    .option('--state <state>', 'initial state')
    .option('--json', 'print the whole answer as JSON')
    .action(async (opts: { host?: string; schemaName: string; taskName: string; keyVar: string; meta?: string; state?: string; json?: boolean }) => {
      const env = io.env ?? process.env;
      const key = env[opts.keyVar];
      if (!key) throw new AppError('bad-request', `Environment variable ${opts.keyVar} is empty: put an API key in it (create one with: task-inbox api_key).`);
      const host = (opts.host ?? `http://127.0.0.1:${configOf(io).port}`).replace(/\/+$/, '');
      const body = { schema_name: opts.schemaName, task: opts.taskName, state: opts.state || null, meta: parseMeta(opts.meta) };
      let res: Response;
      try {
        res = await fetch(`${host}/api/v1/tasks/`, { method: 'POST', headers: { 'content-type': 'application/json', 'api-key': key }, body: JSON.stringify(body) });
      } catch (err) {
        throw new AppError('unavailable', `Cannot reach ${host}: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`);
      }
      const text = await res.text();
      if (!res.ok) {
        let detail = text;
        try {
          detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
        } catch {
          /* not JSON: show as is */
        }
        throw new AppError('bad-request', `The server answered ${res.status}: ${detail}`);
      }
      if (opts.json) return io.out(text + '\n');
      const result = JSON.parse(text) as { task: { id: string; state: string | null }; ttype: string };
      io.out(`Created ${result.ttype} task ${result.task.id} (state: ${result.task.state ?? 'none'}).\n`);
    });
}
