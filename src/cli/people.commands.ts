import type { Command } from 'commander';
import { listAudit, cliActor } from '../core/audit/audit.js';
import * as people from '../core/people/index.js';
import { AppError } from '../errors.js';
import { withDatabase, type CliIo } from './context.js';
import { printRows } from './output.js';
import { createPrompter } from './prompt.js';

type Prompter = ReturnType<typeof createPrompter>;

/** One reader for the whole of standard input: flags and prompts take their lines from it in turn. */
export async function withPrompter<T>(io: CliIo, fn: (p: Prompter | undefined) => Promise<T>): Promise<T> {
  if (!io.stdin) return fn(undefined);
  const p = createPrompter(io.stdin, (s) => io.err(s));
  try {
    return await fn(p);
  } finally {
    p.close();
  }
}

async function passwordFromStdin(p: Prompter | undefined): Promise<string> {
  if (!p) throw new AppError('bad-request', '--password-stdin needs the password on standard input.');
  try {
    return await p.ask('');
  } catch {
    throw new AppError('bad-request', '--password-stdin: standard input was empty.');
  }
}

interface PersonOpts {
  username?: string;
  name?: string;
  email?: string;
  passwordStdin?: boolean;
  role?: string;
  json?: boolean;
}

/** Fills in what flags did not give by asking; the password twice. */
function collectPerson(io: CliIo, opts: PersonOpts): Promise<{ username: string; name: string; email: string | null; password: string }> {
  return withPrompter(io, async (p) => {
    let password = opts.passwordStdin ? await passwordFromStdin(p) : undefined;
    if (opts.username !== undefined && opts.name !== undefined && password !== undefined) {
      return { username: opts.username, name: opts.name, email: opts.email || null, password };
    }
    if (!p) throw new AppError('bad-request', 'Give --username, --name and --password-stdin, or run it where it can ask.');
    try {
      const username = opts.username ?? (await p.ask('Username: ')).trim();
      const name = opts.name ?? (await p.ask('Display name: ')).trim();
      const email = opts.email ?? ((await p.ask('Email (optional): ')).trim() || null);
      if (password === undefined) {
        password = await p.ask(`Password (at least ${people.MIN_PASSWORD_LENGTH} characters): `, { secret: true });
        const again = await p.ask('Password again: ', { secret: true });
        if (again !== password) throw new AppError('bad-request', 'The two passwords differ; nothing was created.');
      }
      return { username, name, email, password };
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('bad-request', `${(err as Error).message}; nothing was created.`);
    }
  });
}

const personOptions = (cmd: Command) =>
  cmd
    .option('--username <username>', 'sign-in name (unique, case-insensitive)')
    .option('--name <name>', 'display name')
    .option('--email <email>', 'email address')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .option('--json', 'machine-readable output');

export function registerPeopleCommands(program: Command, io: CliIo) {
  personOptions(
    program.command('create-admin').alias('create_admin').description('create an admin account (asks for what the flags do not give)'),
  ).action(async (opts: PersonOpts) => {
    const person = await collectPerson(io, opts);
    const user = await withDatabase(io, (db) => people.createUser(db, cliActor, { ...person, role: 'admin' }));
    if (opts.json) return io.out(JSON.stringify(user, null, 2) + '\n');
    io.out(`Created admin '${user.username}' (${user.id}).\n`);
  });

  const user = program.command('user').description('manage people: list (default), add, deactivate, reset-password');
  user
    .command('list', { isDefault: true })
    .description('list people')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const users = await withDatabase(io, (db) => people.listUsers(db));
      printRows(io, users as unknown as Record<string, unknown>[], { USERNAME: 'username', NAME: 'name', EMAIL: 'email', ROLE: 'role', ACTIVE: 'active', CREATED: 'created' }, {
        json: opts.json,
        empty: 'No people yet. Create the first admin with: task-inbox create-admin',
      });
    });
  personOptions(user.command('add').description('add a person (asks for what the flags do not give)').option('--role <role>', 'admin or member', 'member')).action(
    async (opts: PersonOpts) => {
      if (opts.role !== 'admin' && opts.role !== 'member') throw new AppError('bad-request', '--role must be admin or member.');
      const person = await collectPerson(io, opts);
      const created = await withDatabase(io, (db) => people.createUser(db, cliActor, { ...person, role: opts.role as 'admin' | 'member' }));
      if (opts.json) return io.out(JSON.stringify(created, null, 2) + '\n');
      io.out(`Added ${created.role} '${created.username}' (${created.id}).\n`);
    },
  );
  user
    .command('deactivate')
    .description('deactivate a person: their sessions end at once')
    .argument('<user>', 'username or id')
    .action(async (ref: string) => {
      const u = await withDatabase(io, (db) => people.updateUser(db, cliActor, ref, { active: false }));
      io.out(`Deactivated '${u.username}'; their sessions have ended.\n`);
    });
  user
    .command('reset-password')
    .alias('reset_password')
    .description("set a person's password (asks twice, or --password-stdin); their sessions end")
    .argument('<user>', 'username or id')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .action(async (ref: string, opts: { passwordStdin?: boolean }) => {
      const password = await withPrompter(io, async (p) => {
        if (opts.passwordStdin) return passwordFromStdin(p);
        if (!p) throw new AppError('bad-request', 'Use --password-stdin, or run it where it can ask.');
        try {
          const first = await p.ask('New password: ', { secret: true });
          if ((await p.ask('New password again: ', { secret: true })) !== first) throw new AppError('bad-request', 'The two passwords differ; nothing changed.');
          return first;
        } catch (err) {
          if (err instanceof AppError) throw err;
          throw new AppError('bad-request', `${(err as Error).message}; nothing changed.`);
        }
      });
      const u = await withDatabase(io, (db) => people.resetPassword(db, cliActor, ref, password));
      io.out(`Set a new password for '${u.username}'; their sessions have ended.\n`);
    });

  program
    .command('audit')
    .description('the audit trail, newest first')
    .option('--action <action>', 'only this action, e.g. auth.sign-in-failed')
    .option('--actor <name>', 'only this actor name')
    .option('--since <time>', 'only since this ISO 8601 time')
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'machine-readable output')
    .action(async (opts: { action?: string; actor?: string; since?: string; limit: string; json?: boolean }) => {
      const since = opts.since ? new Date(opts.since) : undefined;
      if (since && Number.isNaN(since.getTime())) throw new AppError('bad-request', `--since must be a date-time, not '${opts.since}'.`);
      if (!/^\d{1,3}$/.test(opts.limit)) throw new AppError('bad-request', '--limit must be a whole number up to 999.');
      const events = await withDatabase(io, (db) => listAudit(db.db, { action: opts.action, actorName: opts.actor, since, limit: Number(opts.limit) }));
      const rows = events.map((e) => ({ ...e, who: `${e.actor.kind}${e.actor.name ? `:${e.actor.name}` : ''}` }));
      printRows(io, rows, { TIME: 'created', WHO: 'who', IP: 'ip', ACTION: 'action', TARGET: 'target', DETAILS: 'details' }, { json: opts.json, empty: 'No audit events.' });
    });
}
