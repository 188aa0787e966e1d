/*
 * Issue 8: `export` and `import` move everything from the embedded database to PostgreSQL and
 * back. A real `serve` process on an embedded data folder is filled through its API and the CLI,
 * exported through its socket while it runs, imported into PostgreSQL databases this file creates
 * and drops, and used there by a real app. Cross-database by nature, so it runs once: in the
 * PGlite run, and only when PostgreSQL is reachable (CI always has it).
 */
import { PGlite } from '@electric-sql/pglite';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { getTableName, is } from 'drizzle-orm';
import { PgTable } from 'drizzle-orm/pg-core';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../src/cli/index.js';
import { loadConfig } from '../src/config.js';
import { installSchema } from '../src/core/schemas/index.js';
import { openEmbeddedForCli } from '../src/db/embedded.js';
import { openPostgres, wrapPglite, type Database } from '../src/db/index.js';
import * as schemaTables from '../src/db/tables.js';
import { listTables } from '../src/db/transfer-catalog.js';
import { buildApp } from '../src/http/app.js';
import { migrationsFolder } from '../src/paths.js';
import { createTestDatabase, dbKind, urlOf } from './helpers/db.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
const runHere = dbKind === 'pglite' && (await postgresReachable());
if (dbKind === 'pglite' && !runHere) console.warn('\n  ⚠ PostgreSQL is not reachable: the export/import tests are SKIPPED.\n');

interface Run {
  code: number;
  out: string;
  err: string;
}

/** One command line, in-process, configured only by `env` (as the executable would be). */
async function cli(args: string[], env: Record<string, string>, opts: { stdin?: string; errIsTty?: boolean; database?: Database } = {}): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
    env: { LOG_LEVEL: 'silent', ...env },
    stdin: opts.stdin === undefined ? undefined : Readable.from([Buffer.from(opts.stdin)]),
    errIsTty: opts.errIsTty,
    database: opts.database,
  });
  return { code, out, err };
}

async function ok(args: string[], env: Record<string, string>, opts: Parameters<typeof cli>[2] = {}): Promise<Run> {
  const r = await cli(args, env, opts);
  expect(r.code, `task-inbox ${args.join(' ')}\nstdout: ${r.out.slice(0, 2000)}\nstderr: ${r.err}`).toBe(0);
  return r;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const databases: string[] = [];
/** A new, empty (not migrated) PostgreSQL database, dropped after the file. */
async function newPostgres(): Promise<string> {
  const name = `ti_transfer_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  databases.push(name);
  return urlOf(name);
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn();
  for (const name of databases) await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
});

const embeddedEnv = (dataDir: string, extra: Record<string, string> = {}) => ({ TI_DATA_DIR: dataDir, DATABASE_URL: '', ...extra });
const pgEnv = (url: string, secretKey: string) => ({ DATABASE_URL: url, SECRET_KEY: secretKey });

/** Opens a PostgreSQL database with one connection (so that a SET holds for every query). */
function openPg(url: string): Database {
  const database = openPostgres({ connection: url, poolSize: 1 });
  cleanups.push(() => database.close());
  return database;
}

/** Every row of every table as PostgreSQL prints it (in UTC), sorted: equal contents compare equal. */
async function contents(database: Database): Promise<Record<string, string[]>> {
  await database.query(`SET TIME ZONE 'UTC'`);
  const tables = await database.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const all: Record<string, string[]> = {};
  for (const { name } of tables) {
    const rows = await database.query<{ j: string }>(`SELECT row_to_json(r.*)::text AS j FROM "${name}" r ORDER BY row_to_json(r.*)::text`);
    all[name] = rows.map((r) => r.j);
  }
  return all;
}

const rowCount = (c: Record<string, string[]>) => Object.values(c).reduce((n, rows) => n + rows.length, 0);

/** Contents of `b` without the audit event the import itself adds, which must be there. */
function withoutImportEvent(b: Record<string, string[]>): Record<string, string[]> {
  const imports = b.audit_events!.filter((j) => JSON.parse(j).action === 'database.import');
  expect(imports.length).toBeGreaterThan(0);
  const last = imports.reduce((x, y) => (JSON.parse(x).id > JSON.parse(y).id ? x : y));
  return { ...b, audit_events: b.audit_events!.filter((j) => j !== last) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Task {
  id: string;
  state: string | null;
  resolved: boolean;
}

describe.skipIf(!runHere)('from the embedded database to PostgreSQL and back', () => {
  let tmp: string;
  let dataDir: string;
  let exportFile: string;
  let receiver: Receiver;
  let server: ChildProcess | undefined;
  let serverErr = '';
  /** What the source held, as its API showed it. */
  const source = {
    apiKey: '',
    webhookKey: '',
    cookie: '',
    tasks: [] as Task[],
    histories: {} as Record<string, unknown[]>,
    page1Cursor: '',
    page2: [] as string[],
    channelId: '',
    vapidKey: '',
    contents: {} as Record<string, string[]>,
  };
  let secretKey = '';
  let exportRun: Run;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ti-transfer-'));
    dataDir = path.join(tmp, 'data');
    exportFile = path.join(tmp, 'inbox.ndjson.gz');
    receiver = await startReceiver();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    // WORKER=off: nothing changes the source behind the test's back after the export.
    server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      cwd: root,
      env: { ...process.env, ...embeddedEnv(dataDir), PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOG_FORMAT: 'json', WORKER: 'off' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    server.stderr!.on('data', (d) => (serverErr += d));
    const exited = new Promise((resolve) => server!.once('exit', resolve));
    cleanups.push(async () => {
      if (server && server.exitCode === null && server.signalCode === null) {
        server.kill('SIGKILL');
        await exited;
      }
      await receiver.close();
      rmSync(tmp, { recursive: true, force: true });
    });
    for (const deadline = Date.now() + 45_000; ; await sleep(200)) {
      if (server.exitCode !== null) throw new Error(`serve exited early\n${serverErr}`);
      if (Date.now() > deadline) throw new Error(`serve did not start\n${serverErr}`);
      if ((await fetch(`${base}/health`).catch(() => undefined))?.status === 200) break;
    }

    // Through the CLI, which reaches the running server's database through its socket.
    const env = embeddedEnv(dataDir);
    await ok(['create-admin', '--username', 'ada', '--name', 'Ada Admin', '--password-stdin'], env, { stdin: 'old-password-1\n' });
    const schemaFile = path.join(tmp, 'schema.yml');
    writeFileSync(
      schemaFile,
      `name: 'acme:refunds'\nsemver: '1'\ndefault_hook_url: ${receiver.url}\nhook_auth:\n  kind: standard\ntasktypes:\n- name: refund\n  pending_states: [open, waiting]\n  resolved_states: [paid, refused]\n`,
    );
    await ok(['taskschema', schemaFile], env);
    source.webhookKey = (await ok(['webhook_key', 'acme:refunds'], env)).out.trim();
    source.apiKey = (await ok(['api_key', '--name', 'shop'], env)).out.trim();

    // Through the HTTP API: a session, tasks, state changes (history and signed webhooks), a channel.
    const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: 'old-password-1' }) });
    expect(login.status, await login.clone().text()).toBe(200);
    source.cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const api = async (method: string, url: string, body?: unknown, headers: Record<string, string> = { 'api-key': source.apiKey }) => {
      const res = await fetch(`${base}${url}`, { method, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      const text = await res.text();
      expect(res.status, `${method} ${url}: ${text}`).toBe(200);
      return text.startsWith('{') ? JSON.parse(text) : text;
    };
    const asAda = { cookie: source.cookie };
    for (let i = 1; i <= 3; i++) {
      await api('POST', '/api/v1/tasks/', { schema_name: 'acme:refunds', task: 'refund', meta: { order: `A-${i}`, amount: i * 10.5 } }, { 'api-key': source.apiKey, 'idempotency-key': `order-${i}` });
    }
    const listed = (await api('GET', '/api/v1/tasks/?order=oldest', undefined, asAda)).tasks as Task[];
    await api('PATCH', `/api/v1/tasks/${listed[0]!.id}/state?state=open`, undefined, asAda);
    await api('PATCH', `/api/v1/tasks/${listed[0]!.id}/state?state=paid`, undefined, asAda);
    await api('POST', `/api/v1/tasks/${listed[2]!.id}/cancel`, { reason: 'the customer withdrew' });
    source.channelId = (await api('POST', '/api/v1/me/channels', { kind: 'webhook', url: `${receiver.url}?channel` }, asAda)).channel.id;
    source.vapidKey = await api('GET', '/.vapid-pk', undefined, {});
    source.tasks = (await api('GET', '/api/v1/tasks/?order=oldest', undefined, asAda)).tasks;
    for (const t of source.tasks) source.histories[t.id] = (await api('GET', `/api/v1/tasks/${t.id}/history`, undefined, asAda)).history;
    const page1 = await api('GET', '/api/v1/tasks/?order=oldest&limit=1', undefined, asAda);
    source.page1Cursor = page1.next_cursor;
    source.page2 = (await api('GET', `/api/v1/tasks/?order=oldest&limit=2&cursor=${page1.next_cursor}`, undefined, asAda)).tasks.map((t: Task) => t.id);
    expect(receiver.received.length).toBeGreaterThanOrEqual(2); // the two state changes, signed

    // Exported while the server runs: through its socket, in one snapshot.
    exportRun = await ok(['export', exportFile], env);

    server.kill('SIGTERM');
    await exited;
    secretKey = readFileSync(path.join(dataDir, 'secret.key'), 'utf8').trim();
    const db = await openEmbeddedForCli(dataDir);
    source.contents = await contents(db);
    await db.close();
  }, 120_000);

  test('export writes one gzip NDJSON file, owner-only: a header without the key, then every row', () => {
    expect(exportRun.err).toMatch(/Exported \d+ rows of \d+ tables \(\d+ empty\) in [\d.]+ s to /);
    expect(statSync(exportFile).mode & 0o777).toBe(0o600);
    const raw = readFileSync(exportFile);
    expect([raw[0], raw[1]]).toEqual([0x1f, 0x8b]);
    const lines = gunzipSync(raw).toString('utf8').trimEnd().split('\n');
    const header = JSON.parse(lines[0]!);
    expect(header).toMatchObject({ format: 'task-inbox-export', formatVersion: 1, source: 'embedded', secretKeyFrom: `the file ${path.join(dataDir, 'secret.key')}` });
    expect(header.migrations.map((m: { tag: string }) => m.tag)).toEqual(['0000_initial', '0001_webhooks', '0002_people', '0003_integrations', '0004_notifications']);
    expect(header.secretKeyCheck).toMatch(/^[\w-]{22}$/);
    expect(lines.join('\n')).not.toContain(secretKey);
    expect(lines.join('\n')).not.toContain(source.webhookKey.slice(6)); // stored sealed only
    const counts = Object.fromEntries(header.tables.map((t: { name: string; rows: number }) => [t.name, t.rows]));
    expect(counts).toEqual(Object.fromEntries(Object.entries(source.contents).map(([n, rows]) => [n, rows.length])));
    expect(counts).toMatchObject({ tasks: 3, users: 1, sessions: 1, api_keys: 1, webhook_keys: 1, server_keys: 1, notification_channels: 1, idempotency_keys: 3 });
    expect(lines).toHaveLength(1 + rowCount(source.contents));
    // Parents first: a task's line comes after its type's, a history line after its task's.
    const firstOf = (t: string) => lines.findIndex((l) => l.startsWith(`{"t":"${t}"`));
    expect(firstOf('task_types')).toBeLessThan(firstOf('tasks'));
    expect(firstOf('tasks')).toBeLessThan(firstOf('task_history'));
    expect(firstOf('users')).toBeLessThan(firstOf('sessions'));
  });

  test('export refuses to overwrite a file unless --force', async () => {
    const before = readFileSync(exportFile);
    const r = await cli(['export', exportFile], embeddedEnv(dataDir));
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${exportFile} exists already`);
    expect(r.err).toContain('--force');
    expect(readFileSync(exportFile)).toEqual(before);
    await ok(['export', exportFile, '--force'], embeddedEnv(dataDir));
    expect(readFileSync(exportFile)).not.toEqual(before); // a new exportedAt at least
    expect(gunzipSync(readFileSync(exportFile)).toString().split('\n').length).toBe(gunzipSync(before).toString().split('\n').length);
  });

  let targetUrl = '';
  let target: { app: FastifyInstance; database: Database } | undefined;
  let importRun: Run;

  test('import into a new PostgreSQL database: every row of every table arrives unchanged', async () => {
    targetUrl = await newPostgres();
    importRun = await ok(['import', exportFile], pgEnv(targetUrl, secretKey));
    expect(importRun.err).toMatch(/Imported \d+ rows of \d+ tables \(\d+ empty\) in [\d.]+ s into PostgreSQL/);
    const database = openPg(targetUrl);
    expect(withoutImportEvent(await contents(database))).toEqual(source.contents);
    const applied = await database.query('SELECT 1 FROM drizzle.__drizzle_migrations');
    expect(applied).toHaveLength(5);
  });

  const targetApp = async () => {
    if (target) return target;
    const database = openPostgres({ connection: targetUrl, poolSize: 4 });
    const config = loadConfig({ LOG_LEVEL: 'silent', DATABASE_URL: targetUrl, SECRET_KEY: secretKey }, { stdoutIsTty: false });
    const app = await buildApp({ config, database });
    await app.ready();
    target = { app, database };
    cleanups.push(async () => {
      await app.close();
      await database.close();
    });
    return target;
  };
  const call = async (method: string, url: string, opts: { body?: unknown; headers?: Record<string, string> } = {}) => {
    const { app } = await targetApp();
    return app.inject({ method: method as 'GET', url, payload: opts.body as object, headers: opts.headers ?? { cookie: source.cookie } });
  };

  test('on PostgreSQL the inbox lists the same tasks with the same ids, cursors and history', async () => {
    const res = await call('GET', '/api/v1/tasks/?order=oldest');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().tasks).toEqual(source.tasks);
    for (const t of source.tasks) expect((await call('GET', `/api/v1/tasks/${t.id}/history`)).json().history).toEqual(source.histories[t.id]);
    expect(source.histories[source.tasks[0]!.id]).toHaveLength(3);
    // A client's saved cursor (the task's insertion number) goes on where it was.
    const page2 = await call('GET', `/api/v1/tasks/?order=oldest&limit=2&cursor=${source.page1Cursor}`);
    expect(page2.json().tasks.map((t: Task) => t.id)).toEqual(source.page2);
  });

  test('the old API key posts a task, which gets a new id and comes after the old ones', async () => {
    const res = await call('POST', '/api/v1/tasks/', { body: { schema_name: 'acme:refunds', task: 'refund', meta: { order: 'B-1' } }, headers: { 'api-key': source.apiKey } });
    expect(res.statusCode, res.body).toBe(200);
    const created = res.json().task as Task;
    expect(source.tasks.map((t) => t.id)).not.toContain(created.id);
    const list = (await call('GET', '/api/v1/tasks/?order=oldest')).json().tasks as Task[];
    expect(list.map((t) => t.id)).toEqual([...source.tasks.map((t) => t.id), created.id]);
    // The sequences moved past the old rows: the new task's number and history id follow them.
    const { database } = await targetApp();
    const [seq] = await database.query<{ newest: number; before: number }>(`SELECT max(seq) FILTER (WHERE id = $1) AS newest, max(seq) FILTER (WHERE id <> $1) AS before FROM tasks`, [created.id]);
    expect(Number(seq!.newest)).toBe(Number(seq!.before) + 1);
    const history = (await call('GET', `/api/v1/tasks/${created.id}/history`)).json().history as { id: number }[];
    const oldIds = Object.values(source.histories).flat().map((h) => (h as { id: number }).id);
    expect(history[0]!.id).toBeGreaterThan(Math.max(...oldIds));
    // The same Idempotency-Key as before the move replays the old answer instead of creating a task.
    const replay = await call('POST', '/api/v1/tasks/', {
      body: { schema_name: 'acme:refunds', task: 'refund', meta: { order: 'A-2', amount: 21 } },
      headers: { 'api-key': source.apiKey, 'idempotency-key': 'order-2' },
    });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json().task.id).toBe(source.tasks[1]!.id);
  });

  test('the person signs in with the old password, and the old session cookie still works', async () => {
    const me = await call('GET', '/api/v1/me');
    expect(me.statusCode, me.body).toBe(200);
    expect(me.json().user).toMatchObject({ username: 'ada', role: 'admin' });
    const login = await call('POST', '/api/v1/auth/login', { body: { username: 'ada', password: 'old-password-1' }, headers: {} });
    expect(login.statusCode, login.body).toBe(200);
    const wrong = await call('POST', '/api/v1/auth/login', { body: { username: 'ada', password: 'not-the-password' }, headers: {} });
    expect(wrong.statusCode).toBe(401);
  });

  test('webhooks are signed with the old key; sealed channel settings and the VAPID key still open', async () => {
    const before = receiver.received.length;
    const task = source.tasks[1]!;
    const res = await call('PATCH', `/api/v1/tasks/${task.id}/state?state=open`);
    expect(res.statusCode, res.body).toBe(200);
    const got = receiver.received[before]!;
    const verified = new Webhook(source.webhookKey).verify(got.body, got.headers as Record<string, string>) as { task: Task };
    expect(verified.task).toMatchObject({ id: task.id, state: 'open' });

    // The channel's URL is sealed: the test message reaching the receiver means it opened.
    const sent = await call('POST', `/api/v1/me/channels/${source.channelId}/test`);
    expect(sent.statusCode, sent.body).toBe(200);
    expect(sent.json()).toEqual({ ok: true, status: 200, error: null });
    expect(JSON.parse(receiver.received.at(-1)!.body)).toMatchObject({ type: 'test' });

    const vapid = await call('GET', '/.vapid-pk', { headers: {} });
    expect(vapid.statusCode, vapid.body).toBe(200);
    expect(vapid.body).toBe(source.vapidKey);
  });

  test('import refuses a target that holds data, names what it holds, and writes nothing', async () => {
    const database = openPg(targetUrl);
    const before = await contents(database);
    const r = await cli(['import', exportFile], pgEnv(targetUrl, secretKey));
    expect(r.code).toBe(1);
    expect(r.err).toContain('The target database is not empty');
    expect(r.err).toContain('tasks (4)');
    expect(r.err).toContain('users (1)');
    expect(r.err).toContain('--replace');
    expect(await contents(database)).toEqual(before);
  });

  test('--replace empties the target first; a failed --replace keeps what was there', async () => {
    const url = await newPostgres();
    const env = pgEnv(url, secretKey);
    await ok(['api_key', '--name', 'stray'], env);
    const database = openPg(url);
    const stray = await contents(database);
    expect(stray.api_keys).toHaveLength(1);

    // A damaged file fails halfway: the emptying is undone with the rest.
    const damaged = path.join(tmp, 'damaged-replace.ndjson');
    const lines = gunzipSync(readFileSync(exportFile)).toString().trimEnd().split('\n');
    writeFileSync(damaged, lines.slice(0, -2).join('\n') + '\n{"t":"tasks","r":{"id":\n');
    const failed = await cli(['import', '--replace', damaged], env);
    expect(failed.code).toBe(1);
    expect(await contents(database)).toEqual(stray);

    await ok(['import', '--replace', exportFile], env);
    const after = withoutImportEvent(await contents(database));
    expect(after).toEqual(source.contents);
    expect(after.api_keys!.join()).not.toContain('stray');
  });

  test('a different SECRET_KEY is refused, saying where the right one is; nothing is written', async () => {
    const url = await newPostgres();
    const r = await cli(['import', exportFile], pgEnv(url, 'another-secret-key-of-at-least-32-characters'));
    expect(r.code).toBe(1);
    expect(r.err).toContain("This installation's key (the SECRET_KEY variable) differs from the SECRET_KEY the file was exported under");
    expect(r.err).toContain(`the file ${path.join(dataDir, 'secret.key')}`);
    expect(r.err).toContain('Set SECRET_KEY to that key');
    expect(r.err).toContain('Nothing was imported');
    const database = openPg(url);
    expect(await contents(database)).toEqual({}); // not even migrated
  });

  test('a truncated, corrupt or inconsistent file is refused and the transaction rolled back', async () => {
    const url = await newPostgres();
    const env = pgEnv(url, secretKey);
    const database = openPg(url);
    const text = gunzipSync(readFileSync(exportFile)).toString();
    const lines = text.trimEnd().split('\n');
    const write = (name: string, body: string | Buffer) => {
      const file = path.join(tmp, name);
      writeFileSync(file, body);
      return file;
    };
    const empty = async () => Object.values(await contents(database)).every((rows) => rows.length === 0);

    const cases: [string, string, RegExp][] = [
      // Cut at a line boundary: every line is fine, rows are missing.
      [write('cut.ndjson', lines.slice(0, -3).join('\n') + '\n'), 'cut at a line', /The file is incomplete: \w+ has \d+ of \d+ rows/],
      // Cut inside a compressed stream.
      [write('cut.ndjson.gz', readFileSync(exportFile).subarray(0, Math.floor(readFileSync(exportFile).length * 0.8))), 'cut gzip', /could not be read: .*\(is it cut short or damaged\?\)/],
      // A line that is not JSON, after many good ones.
      [write('garbled.ndjson', [...lines.slice(0, -1), 'garbage', lines.at(-1)].join('\n')), 'garbled', new RegExp(`damaged at line ${lines.length}: it is not JSON`)],
      // Valid JSON, but a history row pointing at a task that does not exist: PostgreSQL refuses it late in the file.
      [
        write('dangling.ndjson', lines.map((l) => (l.startsWith('{"t":"task_history"') ? l.replace(/"task_id":"[^"]+"/, `"task_id":"${randomUUID()}"`) : l)).join('\n')),
        'dangling',
        /Rows of task_history on lines \d+–\d+ could not be imported: .*foreign key/,
      ],
      // Rows moved out of their table's place: refused by position, not left to chance.
      [
        write('reordered.ndjson', [...lines.filter((l) => !l.startsWith('{"t":"audit_events"')), ...lines.filter((l) => l.startsWith('{"t":"audit_events"'))].join('\n')),
        'reordered',
        /damaged at line \d+: a row of audit_events follows rows of \w+/,
      ],
      [write('not-ours.ndjson', '{"hello":"world"}\n'), 'not ours', /not a task-inbox export file/],
    ];
    for (const [file, what, message] of cases) {
      const r = await cli(['import', file], env);
      expect(r.code, what).toBe(1);
      expect(r.err, what).toMatch(message);
      expect(r.err, what).not.toContain('    at '); // a sentence, not a stack trace
      expect(await empty(), what).toBe(true);
    }
    // The same file undamaged goes in.
    await ok(['import', write('whole.ndjson.gz', gzipSync(text))], env);
    expect(withoutImportEvent(await contents(database))).toEqual(source.contents);
  });

  test('progress: a bar on a terminal, a line per tenth otherwise, and a summary per table', async () => {
    expect(importRun.err).toContain('Importing: 100%');
    expect(importRun.err).not.toContain('\r');
    expect(exportRun.err).toMatch(/Exporting: \d+% \(\d+ of \d+ rows; \w+ \d+ of \d+\)\n/);
    expect(importRun.err).toMatch(/TABLE +ROWS\n/);
    expect(importRun.err).toMatch(/\ntasks +3\n/);
    expect(importRun.err).toMatch(/\ntask_history +\d+\n/);

    const url = await newPostgres();
    const tty = await ok(['import', exportFile], pgEnv(url, secretKey), { errIsTty: true });
    expect(tty.err).toContain('\r\x1b[2KImporting [');
    expect(tty.err).toMatch(/\[#{30}\] 100% (\d+)\/\1 rows/);
    expect(tty.err).not.toContain('Importing: ');
    expect(tty.err).toMatch(/\ntasks +3\n/);
  });

  test('round trip back: PostgreSQL → embedded through standard output and input', async () => {
    const exported = await ok(['export', '-'], pgEnv(targetUrl, secretKey));
    expect(exported.out.split('\n')[0]).toContain('"source":"postgres"');
    const back = path.join(tmp, 'back');
    const env = embeddedEnv(back);
    // A new data folder has no key yet: the message says where to put the file's.
    const refused = await cli(['import', '-'], env, { stdin: exported.out });
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('This installation has no SECRET_KEY yet');
    expect(refused.err).toContain(`put it in ${path.join(back, 'secret.key')}`);
    mkdirSync(back, { mode: 0o700 });
    writeFileSync(path.join(back, 'secret.key'), secretKey + '\n', { mode: 0o600 });
    await ok(['import', '-'], env, { stdin: exported.out });

    const pgNow = await contents(openPg(targetUrl));
    const database = await openEmbeddedForCli(back);
    try {
      expect(withoutImportEvent(await contents(database))).toEqual(pgNow);
    } catch (err) {
      await database.close();
      throw err;
    }

    // A server on the new folder: the same inbox, sign-in and VAPID key.
    const app = await buildApp({ config: loadConfig({ LOG_LEVEL: 'silent', ...env }, { stdoutIsTty: false }), database });
    try {
      const list = await app.inject({ method: 'GET', url: '/api/v1/tasks/?order=oldest', headers: { cookie: source.cookie } });
      expect(list.statusCode, list.body).toBe(200);
      expect(list.json().tasks.map((t: Task) => t.id).slice(0, 3)).toEqual(source.tasks.map((t) => t.id));
      expect(list.json().tasks).toHaveLength(4);
      const login = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: 'ada', password: 'old-password-1' } });
      expect(login.statusCode, login.body).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/.vapid-pk' })).body).toBe(source.vapidKey);
    } finally {
      await app.close();
      await database.close();
    }
  });
});

describe.skipIf(!runHere)('tables and migration levels', () => {
  const key = 'a-secret-key-for-these-tests-0123456789';
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ti-transfer-levels-'));
    cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  });

  test('every table is exported, parents before children; a later table is carried, one that cannot be ordered is refused', async () => {
    const { database } = await createTestDatabase();
    cleanups.push(() => database.close());
    const ordered = (await listTables(database.db)).map((t) => t.name);
    const inCatalog = (await database.query<{ n: string }>(`SELECT table_name AS n FROM information_schema.tables WHERE table_schema = 'public'`)).map((r) => r.n);
    const inDrizzle = Object.values(schemaTables).filter((t) => is(t, PgTable)).map((t) => getTableName(t as PgTable));
    expect([...ordered].sort()).toEqual([...inCatalog].sort());
    expect([...ordered].sort()).toEqual([...inDrizzle].sort());
    const fks = await database.query<{ child: string; parent: string }>(
      `SELECT c.relname AS child, p.relname AS parent FROM pg_constraint f JOIN pg_class c ON c.oid = f.conrelid JOIN pg_class p ON p.oid = f.confrelid WHERE f.contype = 'f'`,
    );
    expect(fks.length).toBeGreaterThan(15);
    for (const fk of fks) expect(ordered.indexOf(fk.parent), `${fk.parent} before ${fk.child}`).toBeLessThan(ordered.indexOf(fk.child));

    // A table a later migration might add (here: made by hand on both sides) needs no change to export.
    const { database: other } = await createTestDatabase();
    cleanups.push(() => other.close());
    for (const db of [database, other]) {
      await db.query(`CREATE TABLE later_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, schema_id int REFERENCES task_schemas(id), note text NOT NULL)`);
    }
    await installSchema(database, `name: 'n'\nsemver: '1'\ntasktypes:\n- name: t\n  resolved_states: [done]\n`);
    await database.query(`INSERT INTO later_notes (schema_id, note) SELECT id, 'first' FROM task_schemas UNION ALL SELECT NULL, 'second'`);
    const file = path.join(tmp, 'later.ndjson');
    await ok(['export', file], { SECRET_KEY: key }, { database });
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines.findIndex((l) => l.startsWith('{"t":"later_notes"'))).toBeGreaterThan(lines.findIndex((l) => l.startsWith('{"t":"task_schemas"')));
    await ok(['import', file], { SECRET_KEY: key }, { database: other });
    expect((await other.query(`SELECT note FROM later_notes ORDER BY id`)).map((r) => r.note)).toEqual(['first', 'second']);
    expect((await other.query<{ id: number }>(`INSERT INTO later_notes (note) VALUES ('third') RETURNING id`))[0]!.id).toBe(3);

    // A table referencing itself would need its rows ordered: refused by name instead of half done.
    await database.query(`CREATE TABLE later_tree (id int PRIMARY KEY, parent int REFERENCES later_tree(id))`);
    const refused = await cli(['export', path.join(tmp, 'tree.ndjson')], { SECRET_KEY: key }, { database });
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('Table later_tree references itself');
    expect(existsSync(path.join(tmp, 'tree.ndjson'))).toBe(false);
  });

  test('a file from an older migration level goes in at that level, then the newer migrations run on it', async () => {
    // A database of an earlier task-inbox: migrations 0000–0002 only, with history rows from before `event` existed.
    const folder = path.join(tmp, 'migrations-0002');
    cpSync(migrationsFolder, folder, { recursive: true });
    const journal = JSON.parse(readFileSync(path.join(folder, 'meta', '_journal.json'), 'utf8'));
    journal.entries = journal.entries.slice(0, 3);
    writeFileSync(path.join(folder, 'meta', '_journal.json'), JSON.stringify(journal));
    const old = wrapPglite(new PGlite());
    cleanups.push(() => old.close());
    await migratePglite(old.db as never, { migrationsFolder: folder });
    await installSchema(old, `name: 'old'\nsemver: '1'\ntasktypes:\n- name: t\n  pending_states: [open]\n  resolved_states: [done]\n`);
    const [type] = await old.query<{ id: number; schema_id: number }>(`SELECT t.id, v.schema_id FROM task_types t JOIN schema_versions v ON v.id = t.version_id`);
    const [task] = await old.query<{ id: string }>(`INSERT INTO tasks (ttype_id, schema_id, state) VALUES ($1, $2, 'open') RETURNING id`, [type!.id, type!.schema_id]);
    await old.query(`INSERT INTO task_history (task_id, state, resolved) VALUES ($1, NULL, false), ($1, 'open', false)`, [task!.id]);
    const file = path.join(tmp, 'old.ndjson');
    await ok(['export', file], { SECRET_KEY: key }, { database: old });
    const header = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!);
    expect(header.migrations.map((m: { tag: string }) => m.tag)).toEqual(['0000_initial', '0001_webhooks', '0002_people']);

    // Into a database already past that level: refused, it cannot go back.
    const { database: current } = await createTestDatabase();
    cleanups.push(() => current.close());
    const refused = await cli(['import', file], { SECRET_KEY: key }, { database: current });
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('The target database is already at migration level 5 (last: 0004_notifications), newer than the file');

    // Into a new database: migrated to 0002, filled, then 0003 turns the first history entry into `created`.
    const url = await newPostgres();
    await ok(['import', file], pgEnv(url, key));
    const database = openPg(url);
    expect(await database.query(`SELECT state, event FROM task_history ORDER BY id`)).toEqual([
      { state: null, event: 'created' },
      { state: 'open', event: 'state' },
    ]);
    expect(await database.query('SELECT 1 FROM drizzle.__drizzle_migrations')).toHaveLength(5);
  });

  test('a file from a newer migration level is refused with what to install; nothing is touched', async () => {
    const { database } = await createTestDatabase();
    cleanups.push(() => database.close());
    const file = path.join(tmp, 'newer.ndjson');
    await ok(['export', file], { SECRET_KEY: key }, { database });
    const [first, ...rest] = readFileSync(file, 'utf8').split('\n');
    const header = JSON.parse(first!);
    header.taskInbox = '9.0.0';
    header.migrations.push({ when: 4_102_444_800_000, tag: '0099_from_the_future' });
    writeFileSync(file, [JSON.stringify(header), ...rest].join('\n'));
    const url = await newPostgres();
    const r = await cli(['import', file], pgEnv(url, key));
    expect(r.code).toBe(1);
    expect(r.err).toContain('exported by task-inbox 9.0.0 at migration level 6 (last: 0099_from_the_future)');
    expect(r.err).toContain('Install task-inbox 9.0.0 or newer here');
    expect(await contents(openPg(url))).toEqual({});
  });
});
