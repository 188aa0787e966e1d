/*
 * Real `task-inbox` processes for tests that need more than one process, or a signal: started
 * from the sources (`node --import tsx src/main.ts …`), with their output kept for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Proc {
  name: string;
  child: ChildProcess;
  /**
   * What the process wrote so far, headed by its name and pid, for failure messages: stdout and
   * stderr as they came, or (started with `apart`) stdout and then stderr.
   */
  out: () => string;
  /** What it wrote to stdout alone, and to stderr alone. */
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const running = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;

/** Starts `task-inbox ARGS` with `env` over the test process's own environment; `stdin` is written to it; `nodeArgs` go to node. */
export function startProcess(
  name: string,
  args: string[],
  env: Record<string, string>,
  { stdin, apart = false, nodeArgs = [] }: { stdin?: string; apart?: boolean; nodeArgs?: string[] } = {},
): Proc {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts', ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn', LOG_FORMAT: 'json', ...env },
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  let both = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    both += d;
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    both += d;
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const out = apart ? () => `${name} (pid ${child.pid})\nstdout: ${stdout}\nstderr: ${stderr}` : () => `${name} (pid ${child.pid}):\n${both}`;
  return { name, child, out, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Kills a process still running and waits for it to be gone. */
export async function kill(p: Proc) {
  if (running(p)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

/** Sends `signal` and waits for the exit (fails after `ms`). */
export async function stopProcess(p: Proc, signal: NodeJS.Signals, ms = 30_000) {
  p.child.kill(signal);
  const exit = await Promise.race([p.exited, sleep(ms).then(() => 'timeout' as const)]);
  if (exit === 'timeout') throw new Error(`${p.out()}\ndid not exit within ${ms} ms of ${signal}`);
  return exit;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Polls `check` until it returns something other than undefined (fails after `ms`, saying `what`). */
export async function until<T>(what: () => string, check: () => Promise<T | undefined> | T | undefined, ms: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await sleep(everyMs);
  }
}

/** Waits until `base`/health answers 200 (fails when the process exits first). */
export async function waitForHealth(p: Proc, base: string, ms = 90_000) {
  await until(
    () => `${p.out()}\n/health`,
    async () => {
      if (!running(p)) throw new Error(`${p.out()}\nexited early (${p.child.exitCode ?? p.child.signalCode})`);
      return fetch(`${base}/health`).then((r) => (r.status === 200 ? true : undefined), () => undefined);
    },
    ms,
    100,
  );
}

/** Starts `serve` on a free port and waits for /health; the address is in `base`. */
export async function serve(name: string, env: Record<string, string>) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const p = startProcess(name, ['serve'], { HOST: '127.0.0.1', PORT: String(port), ...env });
  await waitForHealth(p, base);
  return Object.assign(p, { base, port });
}
