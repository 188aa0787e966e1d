/*
 * `task-inbox doctor`, run in-process with `runCli` the way a person runs it: from the environment
 * only, opening the database itself (an embedded data folder on disk, or PostgreSQL through
 * DATABASE_URL), against real local HTTP and SMTP servers and closed ports.
 */
import { PGlite } from '@electric-sql/pglite';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { afterAll, describe, expect, inject, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import { satisfies } from '../src/cli/doctor/index.js';
import { loadVapidKeys } from '../src/core/notify/vapid.js';
import { installSchema } from '../src/core/schemas/index.js';
import { createTask } from '../src/core/tasks/index.js';
import { createSecretBox } from '../src/core/secrets/secret-box.js';
import { createWebhookKey } from '../src/core/webhooks/index.js';
import { openPostgres, wrapPglite, type Database } from '../src/db/index.js';
import { migrationsFolder } from '../src/paths.js';
import { testConfig } from './helpers/app.js';
import { dbKind, urlOf } from './helpers/db.js';
import { kill, startProcess, waitForHealth } from './helpers/processes.js';
import { deadPort, startReceiver } from './helpers/receiver.js';
import { startSmtp } from './helpers/smtp.js';

const SECRET = 'doctor-test-secret-key-of-32-characters-at-least';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ti-doctor-'));
const cleanups: (() => Promise<void> | void)[] = [];

afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn();
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number;
  out: string;
  err: string;
}

/** `task-inbox doctor …` with exactly this environment (nothing from process.env or .env). */
async function doctor(args: string[], env: Record<string, string>): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runCli(['doctor', ...args], { out: (s) => void (out += s), err: (s) => void (err += s), env: { LOG_LEVEL: 'silent', ...env } });
  return { code, out, err };
}

/** The report line starting with `start`, and the indented line under it (the fix). */
function lineAndFix(out: string, start: string): [string, string] {
  const lines = out.split('\n');
  const i = lines.findIndex((l) => l.startsWith(start));
  expect(i, `no line starting with ${JSON.stringify(start)} in:\n${out}`).toBeGreaterThanOrEqual(0);
  return [lines[i]!, lines[i + 1] ?? ''];
}

async function adminQuery(sql: string) {
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A copy of the migrations folder that knows only the first `n` migrations. */
function firstMigrations(n: number): string {
  const folder = mkdtempSync(path.join(tmp, 'migrations-'));
  cpSync(migrationsFolder, folder, { recursive: true });
  const journalFile = path.join(folder, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalFile, 'utf8')) as { entries: unknown[] };
  writeFileSync(journalFile, JSON.stringify({ ...journal, entries: journal.entries.slice(0, n) }));
  return folder;
}

interface Setup {
  /** What points doctor at the database. */
  env: Record<string, string>;
  /** Opens the database again, e.g. to see what doctor left (the caller closes it). */
  open(): Promise<Database>;
}

/**
 * A database of this test's own — an embedded data folder on disk, or a PostgreSQL database —
 * migrated fully or through the first `migrations`, with `seed` run on it, and closed again so
 * that doctor opens it as any command would.
 */
async function setUp(opts: { migrations?: number; seed?: (database: Database) => Promise<void> } = {}): Promise<Setup> {
  const dataDir = mkdtempSync(path.join(tmp, 'data-'));
  let database: Database;
  let open: () => Promise<Database>;
  let env: Record<string, string>;
  if (dbKind === 'pglite') {
    const pgdata = path.join(dataDir, 'pgdata');
    const snapshot = opts.migrations === undefined ? new Blob([readFileSync(inject('pgliteSnapshot'))]) : undefined;
    database = wrapPglite(await PGlite.create({ dataDir: pgdata, ...(snapshot ? { loadDataDir: snapshot } : {}) }));
    if (opts.migrations !== undefined) await migratePglite(database.db as never, { migrationsFolder: firstMigrations(opts.migrations) });
    open = async () => wrapPglite(await PGlite.create(pgdata));
    env = { TI_DATA_DIR: dataDir, DATABASE_URL: '' };
  } else {
    const name = `ti_doctor_${randomBytes(6).toString('hex')}`;
    await adminQuery(opts.migrations === undefined ? `CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}` : `CREATE DATABASE ${name}`);
    cleanups.push(() => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    const url = urlOf(name);
    database = openPostgres({ connection: url, poolSize: 2 });
    if (opts.migrations !== undefined) await migratePg(database.db as never, { migrationsFolder: firstMigrations(opts.migrations) });
    open = async () => openPostgres({ connection: url, poolSize: 2 });
    env = { TI_DATA_DIR: dataDir, DATABASE_URL: url };
  }
  try {
    await opts.seed?.(database);
  } finally {
    await database.close();
  }
  return { env, open };
}

const schemaYaml = (name: string, hookUrl: string) =>
  `name: '${name}'\nsemver: '1'\ndefault_hook_url: '${hookUrl}'\nhook_auth:\n  kind: head\n  val: X-Hook-Key\ntasktypes:\n- name: review\n  resolved_states: [done]\n`;

describe.skipIf(dbKind !== 'pglite')('without a database (needs no PostgreSQL: runs once)', () => {
  test('no embedded database in TI_DATA_DIR: ✗ with the fix, later checks skipped, exit 1, and nothing is created', async () => {
    const dataDir = path.join(tmp, 'never-created');
    const r = await doctor([], { TI_DATA_DIR: dataDir, DATABASE_URL: '' });
    expect(r.code, r.out).toBe(1);
    const [line, fix] = lineAndFix(r.out, '✗ Database:');
    expect(line).toBe(`✗ Database: no embedded database in ${dataDir}`);
    expect(fix).toMatch(/^ {4}.*`task-inbox migrate`.*TI_DATA_DIR.*DATABASE_URL/);
    expect(r.out).toContain('- Database migrations (skipped: the database is not reachable)');
    expect(r.out).toContain('- Hook URLs of installed schemas (skipped: the database is not reachable)');
    expect(r.out).toMatch(/\n1 problem, \d+ warnings?\.\n$/);
    expect(r.err).toBe('');
    // doctor writes nothing: not even the folder (or a generated secret.key) appears.
    expect(existsSync(dataDir)).toBe(false);
  });

  test('DATABASE_URL to a closed port: ✗ naming DATABASE_URL, exit 1; the local checks still run and warn', async () => {
    const port = await deadPort();
    const env = {
      DATABASE_URL: `postgres://ti:hunter2-password@127.0.0.1:${port}/task_inbox`,
      SECRET_KEY: SECRET,
      TI_DATA_DIR: path.join(tmp, 'unused'),
      PUBLIC_URL: 'http://inbox.example.org',
      HOST: '0.0.0.0',
      TRUST_PROXY: 'true',
    };
    const r = await doctor([], env);
    expect(r.code, r.out).toBe(1);
    const [line, fix] = lineAndFix(r.out, '✗ Database:');
    expect(line).toBe(`✗ Database: nothing accepts connections at 127.0.0.1:${port} (DATABASE_URL=postgres://ti:***@127.0.0.1:${port}/task_inbox)`);
    expect(fix).toBe('    Start PostgreSQL there, or fix the host and port in DATABASE_URL.');
    expect(r.out).not.toContain('hunter2');
    expect(r.out).toContain('! PUBLIC_URL http://inbox.example.org is plain http on a host other than localhost\n');
    expect(r.out).toContain('! TRUST_PROXY=true while listening on 0.0.0.0\n');

    const json = await doctor(['--json'], env);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.out) as { ok: boolean; checks: { id: string; status: string }[] };
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => c.id === 'database')?.status).toBe('fail');
    expect(report.checks.find((c) => c.id === 'migrations')?.status).toBe('skip');
  });

  test('an invalid configuration is ✗ listing every problem, not a crash', async () => {
    const r = await doctor([], { TI_DATA_DIR: path.join(tmp, 'unused'), PORT: 'eighty', LOG_LEVEL: 'loud' });
    expect(r.code).toBe(1);
    expect(r.out).toContain('✗ Configuration is invalid (2 problems)\n    PORT="eighty" must be a whole number from 0 to 65535.\n    LOG_LEVEL="loud" must be one of');
    expect(r.err).toBe('');
  });

  test('engines ranges are read as npm reads them', () => {
    expect(satisfies('20.19.0', '>=20.19.0')).toBe(true);
    expect(satisfies('20.18.3', '>=20.19.0')).toBe(false);
    expect(satisfies('22.1.0', '^20.19.0 || ^22')).toBe(true);
    expect(satisfies('21.0.0', '^20.19.0 || ^22')).toBe(false);
    expect(satisfies('20.5.1', '20.x')).toBe(true);
    expect(satisfies('20.5.1', '>=18 <20')).toBe(false);
  });
});

test.skipIf(dbKind !== 'postgres')('DATABASE_URL to a database that does not exist: ✗ with createdb and DATABASE_URL, exit 1', async () => {
  const url = urlOf(`ti_doctor_missing_${randomBytes(4).toString('hex')}`);
  const r = await doctor([], { DATABASE_URL: url, SECRET_KEY: SECRET, TI_DATA_DIR: path.join(tmp, 'unused') });
  expect(r.code, r.out).toBe(1);
  const [line, fix] = lineAndFix(r.out, '✗ Database:');
  expect(line).toMatch(/^✗ Database: database "ti_doctor_missing_[0-9a-f]+" does not exist \(DATABASE_URL=postgres:/);
  expect(fix).toMatch(/^ {4}Create the database \(e\.g\. `createdb ti_doctor_missing_[0-9a-f]+`\) and run `task-inbox migrate`, or fix the database name in DATABASE_URL\.$/);
});

test('a database migrated part of the way: ✗ naming the pending migrations and `task-inbox migrate`; doctor changes nothing', async () => {
  const state = async (database: Database) => ({
    applied: await database.query('SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id'),
    tables: await database.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"),
  });
  let before: Awaited<ReturnType<typeof state>> | undefined;
  const setup = await setUp({ migrations: 3, seed: async (database) => void (before = await state(database)) });
  expect(before!.applied).toHaveLength(3);

  const r = await doctor([], { ...setup.env, SECRET_KEY: SECRET });
  expect(r.code, r.out).toBe(1);
  const [line, fix] = lineAndFix(r.out, '✗ Database migrations:');
  expect(line).toBe('✗ Database migrations: 2 pending (0003_integrations, 0004_notifications)');
  expect(fix).toBe('    Run `task-inbox migrate` (`task-inbox serve` also applies them when it starts).');
  expect(r.out).toMatch(/^✓ Database: /m);

  const database = await setup.open();
  try {
    expect(await state(database)).toEqual(before);
  } finally {
    await database.close();
  }
  // The embedded folder was opened and let go: no lock is left behind.
  if (dbKind === 'pglite') expect(existsSync(path.join(setup.env.TI_DATA_DIR!, 'task-inbox.lock'))).toBe(false);
});

test('hook URLs (latest versions, and older ones with unresolved tasks), one request each: a real local server ✓ whatever its status, a closed port and a silent server ✗ with schema and URL; a dead SMTP server ✗', async () => {
  const good = await startReceiver(() => ({ status: 405 }));
  const silent = await startReceiver(() => 'hang');
  cleanups.push(() => good.close(), () => silent.close());
  const nothing = `http://127.0.0.1:${await deadPort()}`;
  const closed = `${nothing}/hook`;
  const smtpPort = await deadPort();
  const setup = await setUp({
    seed: async (database) => {
      await installSchema(database, schemaYaml('acme:good', good.url));
      await installSchema(database, schemaYaml('acme:down', closed));
      await installSchema(database, schemaYaml('acme:silent', silent.url));
      // Older versions count while they have unresolved tasks: their changes go to their own URL.
      await installSchema(database, schemaYaml('acme:moved', `${nothing}/moved`));
      await createTask(database, { kind: 'cli' }, { schema_name: 'acme:moved', task: 'review', state: null });
      await installSchema(database, schemaYaml('acme:moved', good.url).replace("semver: '1'", "semver: '2'"));
      await installSchema(database, schemaYaml('acme:retired', `${nothing}/retired`));
      await installSchema(database, schemaYaml('acme:retired', good.url).replace("semver: '1'", "semver: '2'"));
    },
  });

  const r = await doctor(['--timeout', '1'], { ...setup.env, SECRET_KEY: SECRET, SMTP_URL: `smtp://127.0.0.1:${smtpPort}` });
  expect(r.code, r.out).toBe(1);
  // One request per URL, naming every schema version that uses it.
  expect(r.out).toContain(`✓ Hook of acme:good (semver 1), acme:moved (semver 2), acme:retired (semver 2): ${good.url} answers (HTTP 405)\n`);
  expect(r.out).toContain(`✗ Hook of acme:moved (semver 1): ${nothing}/moved is not reachable`);
  expect(r.out).not.toContain('/retired');
  const [down, downFix] = lineAndFix(r.out, '✗ Hook of acme:down (semver 1):');
  expect(down).toMatch(new RegExp(`^✗ Hook of acme:down \\(semver 1\\): ${closed} is not reachable: .*ECONNREFUSED`));
  expect(downFix).toMatch(/^ {4}Start the application server, .*`task-inbox taskschema FILE`/);
  expect(r.out).toContain(`✗ Hook of acme:silent (semver 1): ${silent.url} is not reachable: no answer within 1 s\n`);
  const [smtp] = lineAndFix(r.out, '✗ SMTP server');
  expect(smtp).toMatch(new RegExp(`^✗ SMTP server smtp://127\\.0\\.0\\.1:${smtpPort}/?: .*ECONNREFUSED`));

  // Exactly one request, and nothing that could act on the application: no body, no webhook headers or key.
  expect(good.received).toHaveLength(1);
  expect(good.received[0]!.body).toBe('');
  expect(Object.keys(good.received[0]!.headers).filter((h) => /^webhook-|^x-hook-key$|^content-type$/.test(h))).toEqual([]);
});

describe('an all-good setup', () => {
  test('exit 0 with every check ✓ (text and --json); the same database with a wrong SECRET_KEY is ✗ with the fix', async () => {
    const receiver = await startReceiver();
    const mail = await startSmtp();
    cleanups.push(() => receiver.close(), () => mail.close());
    const env = {
      SECRET_KEY: SECRET,
      PUBLIC_URL: 'https://inbox.example.org',
      TRUST_PROXY: 'loopback',
      VAPID_SUBJECT: 'mailto:ops@example.org',
      SMTP_URL: mail.url,
    };
    const setup = await setUp({
      seed: async (database) => {
        const secrets = createSecretBox(SECRET);
        await installSchema(database, schemaYaml('acme:good', receiver.url));
        await createWebhookKey(database, secrets, { schemaName: 'acme:good', graceMs: 0 });
        await loadVapidKeys(database.db, testConfig({ ...env }), secrets);
      },
    });

    const r = await doctor([], { ...setup.env, ...env });
    expect(r.code, r.out).toBe(0);
    const [report, summary] = r.out.split('\n\n');
    for (const line of report!.split('\n')) expect(line, r.out).toMatch(/^✓ /);
    expect(summary).toBe('No problems found.\n');
    expect(report).toContain('✓ Database migrations are current');
    expect(report).toContain('✓ Secret key: SECRET_KEY opens the VAPID private key, the webhook key of acme:good');
    expect(report).toContain('✓ VAPID keys: stored in the database (subject mailto:ops@example.org)');
    expect(report).toContain(`✓ SMTP server ${mail.url} answers`);
    expect(report).toContain(`✓ Hook of acme:good (semver 1): ${receiver.url} answers (HTTP 200)`);

    const json = await doctor(['--json'], { ...setup.env, ...env });
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.out) as { ok: boolean; checks: { id: string; status: string }[] };
    expect(parsed.ok).toBe(true);
    expect(parsed.checks.map((c) => c.id)).toEqual(['node', 'config', 'database', 'migrations', 'secret-key', 'vapid', 'public-url', 'proxy', 'smtp', 'hook']);
    expect(parsed.checks.every((c) => c.status === 'ok')).toBe(true);

    const wrong = await doctor([], { ...setup.env, ...env, SECRET_KEY: 'another-secret-key-of-32-characters-or-more' });
    expect(wrong.code, wrong.out).toBe(1);
    const [line, fix] = lineAndFix(wrong.out, '✗ Secret key:');
    expect(line).toBe('✗ Secret key: SECRET_KEY does not open the VAPID private key, the webhook key of acme:good in the database');
    expect(fix).toMatch(/^ {4}Set SECRET_KEY to the key these were sealed with/);
    expect(wrong.out).toContain('✗ VAPID keys: the private key in the database cannot be opened with SECRET_KEY\n');
  });
});

test.skipIf(dbKind !== 'pglite')('while serve holds the embedded folder, doctor reaches it through the server and checks its generated secret.key', async () => {
  const dataDir = mkdtempSync(path.join(tmp, 'served-'));
  const port = await deadPort();
  const server = startProcess('serve', ['serve'], { TI_DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: '', SECRET_KEY: '', PUBLIC_URL: '' });
  cleanups.push(() => kill(server));
  await waitForHealth(server, `http://127.0.0.1:${port}`, 45_000);

  const r = await doctor([], { TI_DATA_DIR: dataDir, DATABASE_URL: '' });
  expect(r.code, r.out).toBe(0);
  expect(r.out).toContain(`✓ Database: embedded in ${dataDir} answers (through the running server)\n`);
  expect(r.out).toContain(`✓ Secret key: the secret key in ${path.join(dataDir, 'secret.key')} opens the VAPID private key\n`);
  expect(r.out).toContain('! PUBLIC_URL is not set\n');
  // The server still holds the folder: doctor went through its socket, not around it.
  expect(JSON.parse(readFileSync(path.join(dataDir, 'task-inbox.lock'), 'utf8'))).toMatchObject({ pid: server.child.pid, role: 'server' });

  server.child.kill('SIGTERM');
  await server.exited;
});
