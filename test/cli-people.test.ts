/*
 * Issue 4, people on the command line: `create-admin` driven through its prompts on stdin and
 * with flags (--password-stdin), `user list|add|deactivate|reset-password`, and their help.
 * Run in-process with `runCli` against a real database; sign-ins go through the HTTP app on the
 * same database. The tests of this file run in order on one database.
 */
import { PassThrough, Readable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import type { Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';

const SECRET_KEY = 'test-secret-key-of-at-least-32-characters';
const ENV = { LOG_LEVEL: 'silent', SECRET_KEY };

let database: Database;
let app: FastifyInstance;
/** Every password used here: none may be printed or reach the audit trail. */
const passwords = new Set<string>();
const pw = (p: string) => {
  passwords.add(p);
  return p;
};

beforeAll(async () => {
  ({ database } = await createTestDatabase());
  app = await buildApp({ config: testConfig(), database });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await database?.close();
});

interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs one command line in-process; `stdin` is the whole of standard input, if any. */
async function cli(args: string[], stdin?: string | NodeJS.ReadableStream, onErr?: (s: string) => void): Promise<CliRun> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    out: (s) => void (out += s),
    err: (s) => {
      err += s;
      onErr?.(s);
    },
    env: ENV,
    database,
    stdin: typeof stdin === 'string' ? Readable.from([stdin]) : stdin,
  });
  return { code, out, err };
}

async function ok(args: string[], stdin?: string): Promise<CliRun> {
  const r = await cli(args, stdin);
  expect(r.code, `task-inbox ${args.join(' ')}\nstdout: ${r.out}\nstderr: ${r.err}`).toBe(0);
  return r;
}

async function fails(args: string[], stdin?: string): Promise<CliRun> {
  const r = await cli(args, stdin);
  expect(r.code, `task-inbox ${args.join(' ')} should fail\nstdout: ${r.out}\nstderr: ${r.err}`).toBe(1);
  return r;
}

/**
 * Answers each prompt as it appears, like a person at a terminal: the answer to a question is
 * written to stdin only once the question was printed. Returns the run and the prompts seen.
 */
async function interactive(args: string[], answers: [prompt: RegExp, answer: string][]): Promise<CliRun & { prompts: string[] }> {
  const stdin = new PassThrough();
  const queue = [...answers];
  const prompts: string[] = [];
  let pending = '';
  const r = await cli(args, stdin, (s) => {
    pending += s;
    const next = queue[0];
    if (next && next[0].test(pending)) {
      prompts.push(pending.trim());
      pending = '';
      queue.shift();
      setImmediate(() => {
        stdin.write(`${next[1]}\n`);
        if (queue.length === 0) stdin.end();
      });
    }
  });
  expect(queue.map((q) => String(q[0])), `prompts never asked; stderr: ${r.err}`).toEqual([]);
  return { ...r, prompts };
}

interface UserRow {
  username: string;
  display_name: string;
  email: string | null;
  role: string;
  active: boolean;
  password_hash: string;
}

const usersNamed = (username: string) =>
  database.query<UserRow>('SELECT username, display_name, email, role, active, password_hash FROM users WHERE lower(username) = lower($1)', [username]);
const userCount = async () => Number((await database.query<{ n: number }>('SELECT count(*)::int AS n FROM users'))[0]!.n);
const sessionCount = async (username: string) =>
  Number(
    (
      await database.query<{ n: number }>('SELECT count(*)::int AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE lower(u.username) = lower($1)', [username])
    )[0]!.n,
  );

function login(username: string, password: string, remoteAddress = '127.0.0.1'): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password }, remoteAddress });
}

async function signIn(username: string, password: string, remoteAddress = '127.0.0.1'): Promise<string> {
  const res = await login(username, password, remoteAddress);
  expect(res.statusCode, res.body).toBe(200);
  const m = /^ti_session=([^;]+);/.exec(String(res.headers['set-cookie']));
  expect(m).not.toBeNull();
  return `ti_session=${m![1]}`;
}

const me = (cookie: string) => app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });

function expectNoPassword(r: CliRun) {
  for (const p of passwords) {
    expect(r.out.includes(p), `stdout shows the password ${p}`).toBe(false);
    expect(r.err.includes(p), `stderr shows the password ${p}`).toBe(false);
  }
  expect(r.out + r.err).not.toMatch(/\$argon2/);
}

// ---------------------------------------------------------------------------------------------

describe('create-admin through its prompts', () => {
  test('asks username, name, email and the password twice; creates an admin with an argon2id hash; prints no password', async () => {
    expect(await userCount()).toBe(0);
    const r = await interactive(
      ['create-admin'],
      [
        [/Username: $/, 'alice'],
        [/Display name: $/, 'Alice Example'],
        [/Email.*: $/, 'alice@example.org'],
        [/Password.*: $/, pw('alice-password-1')],
        [/Password again: $/, 'alice-password-1'],
      ],
    );
    expect(r.code, r.err).toBe(0);
    expect(r.prompts).toHaveLength(5);
    expect(r.prompts[3]).toMatch(/at least 10/);
    expect(r.out).toContain("Created admin 'alice'");
    expectNoPassword(r);

    const rows = await usersNamed('alice');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ username: 'alice', display_name: 'Alice Example', email: 'alice@example.org', role: 'admin', active: true });
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$/);
    expect(rows[0]!.password_hash).not.toContain('alice-password-1');

    const cookie = await signIn('alice', 'alice-password-1');
    const res = await me(cookie);
    expect(res.statusCode).toBe(200);
    expect(res.json().user).toMatchObject({ username: 'alice', role: 'admin' });
  });

  test('the answers may also arrive all at once; an empty email is none', async () => {
    const r = await ok(['create-admin'], `erin\nErin Example\n\n${pw('erin-password-1')}\nerin-password-1\n`);
    expectNoPassword(r);
    expect(r.err).toContain('Username: ');
    expect(r.err).toContain('Password again: ');
    const rows = await usersNamed('erin');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ display_name: 'Erin Example', email: null, role: 'admin' });
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$/);
  });

  test('passwords that differ → exit 1, nothing created', async () => {
    const before = await userCount();
    const r = await fails(['create-admin'], `bob\nBob\nbob@example.org\n${pw('bob-password-1')}\n${pw('bob-password-2')}\n`);
    expect(r.err).toMatch(/differ/);
    expect(r.err).toMatch(/nothing was created/);
    expectNoPassword(r);
    expect(await usersNamed('bob')).toEqual([]);
    expect(await userCount()).toBe(before);
  });

  test('a password under 10 characters → exit 1, nothing created', async () => {
    const before = await userCount();
    const r = await fails(['create-admin'], `carl\nCarl\n\n${pw('short-pw1')}\nshort-pw1\n`);
    expect(r.err).toMatch(/at least 10 characters/);
    expectNoPassword(r);
    expect(await usersNamed('carl')).toEqual([]);
    expect(await userCount()).toBe(before);
  });

  test('a taken username, in any case → exit 1, the existing person unchanged', async () => {
    for (const name of ['alice', 'ALICE', 'Alice']) {
      const r = await fails(['create-admin'], `${name}\nImpostor\n\n${pw('impostor-password-1')}\nimpostor-password-1\n`);
      expect(r.err).toMatch(/taken/);
      expectNoPassword(r);
    }
    const f = await fails(['create-admin', '--username', 'aLiCe', '--name', 'Impostor', '--password-stdin'], 'impostor-password-1\n');
    expect(f.err).toMatch(/taken/);
    const rows = await usersNamed('alice');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ username: 'alice', display_name: 'Alice Example' });
    // The old password still works.
    await signIn('alice', 'alice-password-1');
  });

  test('standard input ending before every answer → exit 1, nothing created', async () => {
    const before = await userCount();
    const r = await fails(['create-admin'], 'dave\nDave\n');
    expect(r.err).toMatch(/nothing was created/);
    expect(await usersNamed('dave')).toEqual([]);
    expect(await userCount()).toBe(before);
  });
});

describe('create-admin with flags', () => {
  test('--username --name --email --password-stdin: no prompts; then that person signs in over HTTP', async () => {
    const r = await ok(['create-admin', '--username', 'u', '--name', 'N', '--email', 'e@x.org', '--password-stdin'], `${pw('flag-password-1')}\n`);
    expect(r.err).not.toMatch(/Username|Display name|Email|Password/);
    expect(r.out).toContain("Created admin 'u'");
    expectNoPassword(r);
    const rows = await usersNamed('u');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ username: 'u', display_name: 'N', email: 'e@x.org', role: 'admin', active: true });
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$/);

    const res = await login('u', 'flag-password-1');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user).toMatchObject({ username: 'u', name: 'N', email: 'e@x.org', role: 'admin', active: true });
    expect(String(res.headers['set-cookie'])).toMatch(/^ti_session=[^;]+;.*HttpOnly/);
    const cookie = `ti_session=${/^ti_session=([^;]+);/.exec(String(res.headers['set-cookie']))![1]}`;
    // An admin: the admin API answers.
    expect((await app.inject({ method: 'GET', url: '/api/v1/users', headers: { cookie } })).statusCode).toBe(200);
    expect((await login('u', 'flag-password-2', '10.8.0.1')).statusCode).toBe(401);
  });

  test('--json prints the person without any password or hash', async () => {
    const r = await ok(['create-admin', '--username', 'json-admin', '--name', 'Json Admin', '--password-stdin', '--json'], `${pw('json-admin-password-1')}\n`);
    const user = JSON.parse(r.out) as Record<string, unknown>;
    expect(user).toMatchObject({ username: 'json-admin', name: 'Json Admin', role: 'admin', active: true, email: null });
    expect(Object.keys(user).sort()).toEqual(['active', 'created', 'email', 'id', 'name', 'role', 'username']);
    expectNoPassword(r);
  });

  test('--password-stdin with a short password or empty input → exit 1, nothing created', async () => {
    const before = await userCount();
    await fails(['create-admin', '--username', 'shorty', '--name', 'Shorty', '--password-stdin'], 'too-short\n');
    await fails(['create-admin', '--username', 'empty', '--name', 'Empty', '--password-stdin'], '');
    expect(await userCount()).toBe(before);
  });

  test('--password-stdin with the other answers asked: finishes (uses the next lines, or exits 1) instead of waiting forever', async () => {
    // --password-stdin reads the first line; what the flags do not give is then asked on the same
    // standard input. Either way the command must end, not hang on input that was already read.
    const before = await userCount();
    const run = cli(['create-admin', '--username', 'halfway', '--password-stdin'], `${pw('halfway-password-1')}\nHalf Way\n`);
    const r = await Promise.race([run, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
    expect(r, 'create-admin --username halfway --password-stdin was still waiting after 10 s').not.toBe('still running');
    const done = r as CliRun;
    if (done.code === 0) expect((await usersNamed('halfway'))[0]).toMatchObject({ display_name: 'Half Way', role: 'admin' });
    else {
      expect(done.code).toBe(1);
      expect(await userCount()).toBe(before);
    }
  });
});

describe('user list | add | deactivate | reset-password', () => {
  test('user add --role member …', async () => {
    const r = await ok(['user', 'add', '--role', 'member', '--username', 'bob', '--name', 'Bob Builder', '--email', 'bob@example.org', '--password-stdin'], `${pw('bob-password-9')}\n`);
    expect(r.out).toContain("Added member 'bob'");
    expectNoPassword(r);
    const rows = await usersNamed('bob');
    expect(rows[0]).toMatchObject({ username: 'bob', display_name: 'Bob Builder', email: 'bob@example.org', role: 'member', active: true });
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$/);
    const cookie = await signIn('bob', 'bob-password-9');
    expect((await me(cookie)).json().user).toMatchObject({ username: 'bob', role: 'member' });
    // A member is no admin.
    expect((await app.inject({ method: 'GET', url: '/api/v1/users', headers: { cookie } })).statusCode).toBe(403);

    await ok(['user', 'add', '--username', 'carol', '--name', 'Carol', '--password-stdin'], `${pw('carol-password-1')}\n`);
    expect((await usersNamed('carol'))[0]).toMatchObject({ role: 'member' });
    await fails(['user', 'add', '--role', 'owner', '--username', 'oscar', '--name', 'Oscar', '--password-stdin'], 'oscar-password-1\n');
    await fails(['user', 'add', '--username', 'BOB', '--name', 'Other Bob', '--password-stdin'], 'other-bob-password-1\n');
    expect(await usersNamed('oscar')).toEqual([]);
  });

  test('user list: a table and --json, never a password hash', async () => {
    const table = await ok(['user', 'list']);
    const lines = table.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^USERNAME\s+NAME\s+EMAIL\s+ROLE\s+ACTIVE\s+CREATED$/);
    for (const name of ['alice', 'erin', 'u', 'json-admin', 'bob', 'carol']) expect(lines.some((l) => l.startsWith(`${name} `))).toBe(true);
    expect(lines).toHaveLength(1 + (await userCount()));
    expect(lines.find((l) => l.startsWith('bob '))).toMatch(/Bob Builder\s+bob@example\.org\s+member\s+true/);
    expect(table.out).not.toMatch(/argon2|password|hash/i);
    expectNoPassword(table);

    // `user` alone lists too.
    expect((await ok(['user'])).out).toBe(table.out);

    const json = await ok(['user', 'list', '--json']);
    const users = JSON.parse(json.out) as Record<string, unknown>[];
    expect(users).toHaveLength(await userCount());
    for (const u of users) expect(Object.keys(u).sort()).toEqual(['active', 'created', 'email', 'id', 'name', 'role', 'username']);
    expect(users.find((u) => u.username === 'alice')).toMatchObject({ name: 'Alice Example', email: 'alice@example.org', role: 'admin', active: true });
    expect(json.out).not.toMatch(/argon2|password|hash/i);
    expectNoPassword(json);
  });

  test('user deactivate NAME: their session answers 401 at once, and they cannot sign in', async () => {
    const cookie = await signIn('bob', 'bob-password-9', '10.8.1.1');
    expect((await me(cookie)).statusCode).toBe(200);
    expect(await sessionCount('bob')).toBeGreaterThan(0);
    const r = await ok(['user', 'deactivate', 'bob']);
    expect(r.out).toContain("Deactivated 'bob'");
    expect((await me(cookie)).statusCode).toBe(401);
    expect(await sessionCount('bob')).toBe(0);
    expect((await usersNamed('bob'))[0]!.active).toBe(false);
    expect((await login('bob', 'bob-password-9', '10.8.1.2')).statusCode).toBe(401);
    const listed = JSON.parse((await ok(['user', 'list', '--json'])).out) as { username: string; active: boolean }[];
    expect(listed.find((u) => u.username === 'bob')!.active).toBe(false);
    await fails(['user', 'deactivate', 'no-such-person']);
  });

  test('user reset-password NAME --password-stdin: old password refused, new one works, sessions ended', async () => {
    const one = await signIn('carol', 'carol-password-1', '10.8.2.1');
    const two = await signIn('carol', 'carol-password-1', '10.8.2.2');
    expect(await sessionCount('carol')).toBe(2);
    const r = await ok(['user', 'reset-password', 'carol', '--password-stdin'], `${pw('carol-password-2')}\n`);
    expect(r.out).toContain("Set a new password for 'carol'");
    expectNoPassword(r);
    expect((await me(one)).statusCode).toBe(401);
    expect((await me(two)).statusCode).toBe(401);
    expect(await sessionCount('carol')).toBe(0);
    expect((await login('carol', 'carol-password-1', '10.8.2.3')).statusCode).toBe(401);
    const fresh = await signIn('carol', 'carol-password-2', '10.8.2.4');
    expect((await me(fresh)).statusCode).toBe(200);
    expect((await usersNamed('carol'))[0]!.password_hash).toMatch(/^\$argon2id\$/);
  });

  test('user reset-password asks twice without --password-stdin; differing or short answers change nothing', async () => {
    const before = (await usersNamed('carol'))[0]!.password_hash;
    const differ = await fails(['user', 'reset-password', 'carol'], `${pw('carol-password-3')}\n${pw('carol-password-4')}\n`);
    expect(differ.err).toMatch(/differ/);
    expectNoPassword(differ);
    await fails(['user', 'reset-password', 'carol', '--password-stdin'], `${pw('carol-pw')}\n`);
    await fails(['user', 'reset-password', 'no-such-person', '--password-stdin'], 'whatever-password-1\n');
    expect((await usersNamed('carol'))[0]!.password_hash).toBe(before);

    const asked = await ok(['user', 'reset-password', 'carol'], `${pw('carol-password-5')}\ncarol-password-5\n`);
    expect(asked.err).toContain('New password: ');
    expect(asked.err).toContain('New password again: ');
    expectNoPassword(asked);
    expect((await login('carol', 'carol-password-2', '10.8.2.5')).statusCode).toBe(401);
    await signIn('carol', 'carol-password-5', '10.8.2.6');
  });
});

describe('help', () => {
  test.each([
    [['create-admin', '-h'], '--password-stdin'],
    [['create-admin', '--help'], '--username'],
    [['user', '-h'], 'reset-password'],
    [['user', 'list', '-h'], '--json'],
    [['user', 'add', '-h'], '--role'],
    [['user', 'deactivate', '-h'], '<user>'],
    [['user', 'reset-password', '-h'], '--password-stdin'],
    [['audit', '-h'], '--action'],
  ])('task-inbox %j exits 0 with usage', async (args, mentions) => {
    const r = await cli(args);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/Usage:/);
    expect(r.out).toContain(mentions);
  });
});

describe('the trail', () => {
  test('the commands were audited as the CLI, and no password reached audit_events', async () => {
    const events = await database.query<{ action: string; actor_kind: string; target: string }>(
      "SELECT action, actor_kind, target FROM audit_events WHERE action LIKE 'user.%' ORDER BY id",
    );
    expect(events.every((e) => e.actor_kind === 'cli')).toBe(true);
    const created = events.filter((e) => e.action === 'user.create' && e.target !== 'halfway').map((e) => e.target);
    expect(created).toEqual(['alice', 'erin', 'u', 'json-admin', 'bob', 'carol']);
    expect(events.filter((e) => e.action === 'user.deactivate').map((e) => e.target)).toEqual(['bob']);
    expect(events.filter((e) => e.action === 'user.reset-password').map((e) => e.target)).toEqual(['carol', 'carol']);
    const text = (await database.query<{ row: string }>('SELECT a::text AS row FROM audit_events a')).map((r) => r.row).join('\n');
    for (const p of passwords) expect(text.includes(p), `audit_events holds ${p}`).toBe(false);
  });
});
