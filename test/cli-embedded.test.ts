/*
 * Embedded-mode sharing (src/db/embedded.ts): while `serve` holds the data folder, CLI commands
 * started as separate processes reach its PGlite through the Unix socket, and the server sees
 * what they did (and the other way round). After the server stops, the CLI opens the folder
 * directly. Real processes, real ports: only meaningful on the embedded database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openEmbeddedForCli } from '../src/db/embedded.js';
import { dbKind } from './helpers/db.js';
import { freePort, kill, root, sleep, startProcess, stopProcess, until, waitForHealth, type Proc } from './helpers/processes.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

describe.skipIf(dbKind !== 'pglite')('embedded database shared between serve and CLI processes', () => {
  let dataDir: string;
  let port: number;
  let base: string;
  let server: Proc | undefined;
  const serverErr = () => server?.stderr() ?? '';
  let key: string;
  /** Tasks of ti:sample that the tests have created so far. */
  let taskTotal = 0;
  let unresolvedTotal = 0;
  const lockFile = () => path.join(dataDir, 'task-inbox.lock');

  const ownEnv = () => ({
    TI_DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    // Never a PostgreSQL URL from the surroundings: this is the embedded database.
    DATABASE_URL: '',
  });
  const env = () => ({ ...process.env, LOG_LEVEL: 'warn', LOG_FORMAT: 'json', ...ownEnv() });

  function start(args: string[]): ChildProcess {
    return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: root, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Runs one CLI command as its own process and waits for it to exit. */
  function cli(args: string[], timeoutMs = 60_000): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = start(args);
      let out = '';
      let err = '';
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (err += d));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`task-inbox ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
      }, timeoutMs);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, out, err });
      });
    });
  }

  async function ok(args: string[]): Promise<Run> {
    const r = await cli(args);
    expect(r.code, `task-inbox ${args.join(' ')}\nstdout: ${r.out}\nstderr: ${r.err}\nserver stderr: ${serverErr()}`).toBe(0);
    return r;
  }

  const api = (p: string, init: RequestInit = {}) =>
    fetch(`${base}${p}`, { ...init, headers: { 'content-type': 'application/json', 'api-key': key, ...(init.headers as Record<string, string>) } });

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'ti-emb-'));
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startProcess('serve', ['serve'], ownEnv(), { apart: true });
    await waitForHealth(server, base, 45_000);
  }, 60_000);

  afterAll(async () => {
    if (server) await kill(server);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('the server holds the lock and says where it listens', async () => {
    expect(existsSync(lockFile())).toBe(true);
    const lock = JSON.parse(readFileSync(lockFile(), 'utf8'));
    expect(lock).toMatchObject({ pid: server!.child.pid, role: 'server' });
    expect(lock.socket).toBeDefined();
    // /health can answer before these lines are written (the server starts its worker and makes
    // the setup token after it listens): wait for the last of them, the setup link.
    const setupLink = /(http:\/\/127\.0\.0\.1:\d+)\/setup#([A-Za-z0-9_-]{40,})/;
    const link = await until(() => `the setup link in the server's stderr:\n${serverErr()}`, () => setupLink.exec(serverErr()) ?? undefined, 10_000);
    expect(serverErr()).toContain(`task-inbox is listening on http://127.0.0.1:${port} (embedded database in ${dataDir})`);
    // No account yet: the server prints the one-time setup link, and it works (once) against this server.
    const setup = (token: string) =>
      fetch(`${link[1]}/api/v1/setup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token, username: 'first', name: 'First Admin', password: 'first-password-1' }),
      });
    expect((await setup(link[2]!)).status).toBe(200);
    expect((await setup(link[2]!)).status).toBe(403);
  });

  test('CLI commands run while the server holds the folder, and the server sees their effect', async () => {
    const installed = await ok(['taskschema', 'examples/sample.yml']);
    expect(installed.out).toContain("Installed new schema 'ti:sample' version 0");

    const created = await ok(['api_key', '--name', 'embedded', '--schema_name', 'ti:sample']);
    expect(created.out).toMatch(/^ti_[A-Za-z0-9_-]+\n$/);
    key = created.out.trim();

    const made = await ok(['mktask', 'ti:sample', 'delete-acct', '--meta', '{"user": "cli"}']);
    const taskId = made.out.match(/task ([0-9a-f-]{36}) /)?.[1];
    expect(made.out).toBe(`Created delete-acct task ${taskId} (state: none).\n`);
    taskTotal++;
    unresolvedTotal++;

    // The server answers with the key the CLI created, and lists the task the CLI created.
    const res = await api('/api/v1/tasks/');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { tasks: { id: string; meta?: unknown }[] };
    expect(body.tasks.map((t) => t.id)).toContain(taskId);
    const one = await api(`/api/v1/tasks/${taskId}`);
    expect(one.status).toBe(200);
    expect(((await one.json()) as { meta: unknown }).meta).toEqual({ user: 'cli' });

    // The server still serves while nothing else runs.
    expect((await fetch(`${base}/health`)).status).toBe(200);
  }, 120_000);

  test('a task posted over HTTP shows up in the CLI', async () => {
    const res = await api('/api/v1/tasks/', { method: 'POST', body: JSON.stringify({ schema_name: 'ti:sample', task: 'delete-acct', state: 'refused', meta: { user: 'http' } }) });
    expect(res.status).toBe(200);
    const posted = ((await res.json()) as { task: { id: string } }).task.id;
    taskTotal++;

    const r = await ok(['tasks', 'ti:sample', 'delete-acct', '--json']);
    const listed = JSON.parse(r.out) as { id: string; state: string | null; resolved: boolean; meta: unknown }[];
    expect(listed.find((t) => t.id === posted)).toMatchObject({ state: 'refused', resolved: true, meta: { user: 'http' } });
    expect(listed).toHaveLength(2);

    const table = await ok(['tasks', 'ti:sample', 'delete-acct']);
    expect(table.out).toContain(posted);
  }, 120_000);

  test('post_task from a CLI process reaches the server', async () => {
    const child = await new Promise<Run>((resolve, reject) => {
      const c = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'post_task', '--schema_name', 'ti:sample', '--task_name', 'flag-content', '--key_var', 'EMB_KEY'], {
        cwd: root,
        env: { ...env(), EMB_KEY: key },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.on('data', (d) => (err += d));
      c.on('error', reject);
      c.on('close', (code, signal) => resolve({ code, signal, out, err }));
    });
    expect(child.code, child.err).toBe(0);
    expect(child.out).toMatch(/^Created flag-content task [0-9a-f-]{36} \(state: none\)\.\n$/);
    taskTotal++;
    unresolvedTotal++;
  }, 120_000);

  /*
   * "A CLI command started meanwhile connects through it": that must hold while another CLI
   * command is connected too (two scripts, or cron and a person). The connection is held here
   * exactly the way a CLI command holds it (openEmbeddedForCli), and released after a few
   * seconds, so a command that waits its turn finishes.
   */
  test('a CLI command started while another CLI command is connected still succeeds', async () => {
    const held = await openEmbeddedForCli(dataDir);
    let released = false;
    try {
      await held.query('SELECT 1'); // the pool connects lazily: now the socket has its client
      // An idle CLI connection holds nothing: the server itself keeps working meanwhile.
      expect((await api('/api/v1/tasks/')).status).toBe(200);
      const release = sleep(5_000).then(async () => {
        released = true;
        await held.close();
      });
      const r = await cli(['mktask', 'ti:sample', 'delete-acct', '--meta', '{"user": "second"}']);
      await release;
      expect(
        { code: r.code, stderr: r.err.split('\n').slice(0, 2).join('\n') },
        'a second CLI command must wait its turn on the socket, not be refused',
      ).toEqual({ code: 0, stderr: '' });
      expect(r.out).toMatch(/^Created delete-acct task /);
      taskTotal++;
      unresolvedTotal++;
    } finally {
      if (!released) await held.close();
    }
  }, 120_000);

  test('migrate while the server runs exits 0', async () => {
    const r = await ok(['migrate']);
    expect(r.out).toBe('The database is up to date.\n');
    expect((await fetch(`${base}/health`)).status).toBe(200);
  }, 120_000);

  test('the server stops on SIGTERM; afterwards the CLI opens the folder directly', async () => {
    // stopProcess fails if serve has not exited 30 s after the SIGTERM.
    expect(await stopProcess(server!, 'SIGTERM')).toEqual({ code: 0, signal: null });
    expect(serverErr()).toContain('SIGTERM: finishing work in flight, then stopping.');
    expect(existsSync(lockFile())).toBe(false);
    await expect(fetch(`${base}/health`)).rejects.toThrow();

    const r = await ok(['schemas', '--json']);
    const schemas = JSON.parse(r.out) as { name: string; tasks: number; unresolved: number }[];
    expect(schemas).toEqual([expect.objectContaining({ name: 'ti:sample', tasks: taskTotal, unresolved: unresolvedTotal })]);
    // The command let go of the folder when it finished.
    expect(existsSync(lockFile())).toBe(false);
  }, 120_000);
});
