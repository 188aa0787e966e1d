import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { DataDirBusy } from '../db/index.js';
import { AppError } from '../errors.js';
import { version } from '../paths.js';
import type { CliIo } from './context.js';
import { registerKeyCommands } from './keys.commands.js';
import { registerSchemaCommands } from './schemas.commands.js';
import { registerServeCommands } from './serve.js';
import { registerTaskCommands } from './tasks.commands.js';
import { registerWebhookCommands } from './webhooks.commands.js';
import { registerPeopleCommands } from './people.commands.js';
import { registerNotifyCommands } from './notify.commands.js';
import { registerDoctorCommand } from './doctor/index.js';
import { registerDataCommands } from './data.commands.js';
import { letYoungGenerationGrow } from './v8-memory.js';

export type { CliIo } from './context.js';

const LONG_RUNNING = new Set(['serve', 'worker']);

export function createProgram(io: CliIo): Command {
  const program = new Command('task-inbox')
    .description('A self-hosted inbox where people decide on tasks that application servers post.')
    .version(version, '-V, --version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    // serve and worker let the young generation grow once they are ready (v8-memory.ts); the
    // other commands do what they came for at once.
    .hook('preAction', (_program, action) => {
      if (!LONG_RUNNING.has(action.name())) letYoungGenerationGrow();
    });
  registerServeCommands(program, io);
  registerSchemaCommands(program, io);
  registerTaskCommands(program, io);
  registerKeyCommands(program, io);
  registerWebhookCommands(program, io);
  registerPeopleCommands(program, io);
  registerNotifyCommands(program, io);
  registerDoctorCommand(program, io);
  registerDataCommands(program, io);
  for (const cmd of allCommands(program)) cmd.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  return program;
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}

/**
 * The earlier version spelled commands and options with underscores (`post_task --schema_name`);
 * ours use dashes. Both work: option names are rewritten to dashes before parsing.
 */
export function normaliseArgv(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return argv.map((arg, i) => {
    if ((end !== -1 && i > end) || !arg.startsWith('--')) return arg;
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    return name.replace(/_/g, '-') + (eq === -1 ? '' : arg.slice(eq));
  });
}

/** Runs the CLI and returns its exit code; never calls process.exit. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync(normaliseArgv(argv), { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : err.exitCode || 1;
    if (err instanceof AppError || err instanceof ConfigError || err instanceof DataDirBusy) {
      io.err(`error: ${err instanceof AppError ? err.detail : err.message}\n`);
      return 1;
    }
    const known = describeSystemError(err);
    io.err(`error: ${known ?? (err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

/** One clear line for failures people cause by configuration, instead of a stack trace. */
function describeSystemError(err: unknown): string | undefined {
  const e = err as { code?: string; message?: string; address?: string; port?: number };
  switch (e.code) {
    case 'EADDRINUSE':
      return `Port ${e.port} is already in use on ${e.address}. Stop what uses it, or set PORT to another port.`;
    case 'EACCES':
      return e.port !== undefined ? `Not allowed to listen on port ${e.port}; use a port above 1023 (PORT).` : e.message;
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'ETIMEDOUT':
      return `Cannot reach the database (${e.code}${e.address ? ` at ${e.address}${e.port ? `:${e.port}` : ''}` : ''}). Check DATABASE_URL and that PostgreSQL is running.`;
    case '28P01':
    case '28000':
      return `PostgreSQL refused the credentials in DATABASE_URL: ${e.message}`;
    case '3D000':
      return `${e.message}. Create it first (createdb), or fix DATABASE_URL.`;
    default:
      return undefined;
  }
}
