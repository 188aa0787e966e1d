/*
 * Shared pieces of the benchmark scenarios (bench/*.ts) and of their orchestrator (bench/run.ts):
 * a fresh PostgreSQL database, the real server as a child process, percentiles, RSS sampling,
 * the anchors (what a bare Node process does on the same machine), CPU profile summaries, and the
 * RESULT line every scenario prints last on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Agent, request } from 'undici';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** One target of issue 9, as it appears in the RESULT line, the results file and docs/benchmarks.md. */
export interface Target {
  name: string;
  measured: number;
  unit: 'req/s' | 'ms' | 'MB' | 'x' | 's' | 'deliveries/s';
  /** The same work done by a bare Node process (or PostgreSQL's own tool) on the same machine, side by side. */
  anchor: number | null;
  anchorLabel: string;
  /** measured / anchor. */
  ratio: number | null;
  /** The target in words, e.g. "≤ 50 ms". */
  target: string;
  met: boolean;
}

export interface ScenarioResult {
  scenario: string;
  targets: Target[];
  details: Record<string, unknown>;
}

/** The last line a scenario writes to stdout; the orchestrator reads it. */
export function printResult(result: ScenarioResult) {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** Human-readable output goes to stderr: stdout carries only the RESULT line. */
export const say = (text = '') => process.stderr.write(`${text}\n`);

export function target(t: Omit<Target, 'ratio'> & { ratio?: number | null }): Target {
  const ratio = t.ratio !== undefined ? t.ratio : t.anchor ? round(t.measured / t.anchor, 2) : null;
  return { ...t, measured: round(t.measured, 2), anchor: t.anchor === null ? null : round(t.anchor, 2), ratio };
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** `--quick`, `--name value` and `--flag` from argv. */
export function parseArgs(argv = process.argv.slice(2)) {
  const has = (name: string) => argv.includes(`--${name}`);
  const value = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--') ? argv[i + 1] : undefined;
  };
  const num = (name: string, fallback: number) => (value(name) !== undefined ? Number(value(name)) : fallback);
  return { quick: has('quick'), has, value, num };
}

// ---------------------------------------------------------------- statistics

export interface Percentiles {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const r = (v: number) => round(v, 2);
  return {
    n: s.length,
    min: r(s[0] ?? Number.NaN),
    p50: r(percentile(s, 50)),
    p95: r(percentile(s, 95)),
    p99: r(percentile(s, 99)),
    max: r(s[s.length - 1] ?? Number.NaN),
    mean: r(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)),
  };
}

export const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

/** Aligned columns for stderr. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? String(round(c, 2)) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r, j) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ') + (j === 0 ? `\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : '')).join('\n');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- databases

/** Where fresh databases are created: DATABASE_URL (an admin connection), or the local default. */
export const adminPgUrl = () => process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export interface FreshDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A new, empty database on the PostgreSQL server of `adminUrl`, dropped by `drop()`. */
export async function createFreshDatabase(adminUrl = adminPgUrl()): Promise<FreshDatabase> {
  const name = `ti_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** The PostgreSQL server's version string, or null when it cannot be reached. */
export async function postgresVersion(adminUrl = adminPgUrl()): Promise<string | null> {
  const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    const { rows } = await c.query<{ v: string }>('SELECT version() AS v');
    return rows[0]!.v;
  } catch {
    return null;
  } finally {
    await c.end().catch(() => {});
  }
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Environment of a bench server: never the caller's database settings, only what is given. */
export function serverEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // NODE_OPTIONS too: a loader or heap size inherited from the bench's own runner would change what is measured.
  for (const k of Object.keys(env)) if (/^(NODE_OPTIONS|DATABASE_URL|TI_DATA_DIR|PORT|HOST|SECRET_KEY|WORKER|LOG_LEVEL|LOG_FORMAT|EMBEDDED_.*|METRICS_.*|SMTP_.*|VAPID_.*|PUBLIC_URL)$/.test(k)) delete env[k];
  return { ...env, LOG_LEVEL: 'warn', LOG_FORMAT: 'json', ...extra };
}

export const newSecretKey = () => randomBytes(32).toString('base64');

// ---------------------------------------------------------------- the server process

/** The newest modification time of any file under `dir`. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * How `task-inbox serve` is started: the compiled `bin/task-inbox.js` when dist/ is built and
 * not older than src/ (what `npm start` and an installed package run), else from the sources
 * through tsx (slower to start: it compiles as it loads).
 */
export function serveCommand(): { args: string[]; via: string } {
  const compiled = path.join(repoRoot, 'dist/src/main.js');
  if (existsSync(compiled) && statSync(compiled).mtimeMs >= newestMtime(path.join(repoRoot, 'src')) - 1) {
    return { args: [path.join(repoRoot, 'bin/task-inbox.js'), 'serve'], via: 'node bin/task-inbox.js serve (dist/)' };
  }
  const tsx = import.meta.resolve('tsx');
  return { args: ['--import', tsx, path.join(repoRoot, 'src/main.ts'), 'serve'], via: 'node --import tsx src/main.ts serve (dist/ missing or older than src/)' };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers 200; returns when it did, or throws at the deadline. */
export async function waitFor200(url: string, timeoutMs: number, isAlive: () => boolean = () => true): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const res = await request(url, { dispatcher: healthAgent });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    if (!isAlive()) throw new Error(`the process ended before ${url} answered 200`);
    if (performance.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await sleep(5);
  }
}

const healthAgent = new Agent({ pipelining: 0, connect: { timeout: 1000 } });

export interface ServerProcess {
  pid: number;
  origin: string;
  proc: ChildProcess;
  /** From spawn to the first 200 from /health, in ms. */
  startMs: number;
  /** The last lines it wrote to stderr and stdout. */
  output(): string;
  /** SIGTERM, then waits for the exit; returns how long stopping took. */
  stop(): Promise<{ ms: number; code: number | null }>;
}

/**
 * Starts `task-inbox serve` as a child process (see serveCommand) on a free port with `env`, and
 * waits until `/health` answers 200. `nodeArgs` go before the script (e.g. `--cpu-prof`).
 */
export async function startServer(opts: { env: Record<string, string>; nodeArgs?: string[]; cwd?: string; timeoutMs?: number }): Promise<ServerProcess> {
  const port = await freePort();
  const { args } = serveCommand();
  // A working folder of its own, so that a developer's .env in the repository is not read.
  const workDir = opts.cwd ? undefined : tempDir('ti-bench-cwd-');
  const cwd = opts.cwd ?? workDir!.dir;
  const t0 = performance.now();
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...args], {
    cwd,
    env: serverEnv({ ...opts.env, PORT: String(port), HOST: '127.0.0.1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited: { code: number | null } | undefined;
  const exit = new Promise<{ code: number | null }>((resolve) => proc.once('exit', (code) => resolve((exited = { code }))));
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitFor200(`${origin}/health`, opts.timeoutMs ?? 60_000, () => exited === undefined);
  } catch (err) {
    proc.kill('SIGKILL');
    workDir?.remove();
    throw new Error(`${(err as Error).message}\n--- server output ---\n${tail}`);
  }
  const startMs = performance.now() - t0;
  return {
    pid: proc.pid!,
    origin,
    proc,
    startMs,
    output: () => tail,
    async stop() {
      const s0 = performance.now();
      if (!exited) proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const { code } = await exit;
      clearTimeout(killer);
      workDir?.remove();
      return { ms: performance.now() - s0, code };
    },
  };
}

// ---------------------------------------------------------------- memory

/** Resident set size of a process in MB (VmRSS from /proc), or NaN when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Samples a process's RSS every `intervalMs` until stopped; returns the samples in MB. */
export function sampleRss(pid: number, intervalMs = 100) {
  const samples: number[] = [];
  const take = () => {
    const v = rssMb(pid);
    if (!Number.isNaN(v)) samples.push(v);
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { samples, peak: Math.max(...samples), last: samples[samples.length - 1] ?? Number.NaN };
    },
  };
}

// ---------------------------------------------------------------- load

/**
 * `clients` loops sending `send()` back to back for `durationMs`; returns the request latencies
 * and the count of non-2xx answers.
 */
export async function closedLoop(clients: number, durationMs: number, send: (i: number) => Promise<number>) {
  const latencies: number[] = [];
  let errors = 0;
  let i = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const status = await send(i++);
          if (status < 200 || status > 299) errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { n: latencies.length, errors, rps: latencies.length / seconds, latency: percentiles(latencies) };
}

// ---------------------------------------------------------------- anchors

/** Runs a small ES module in a bare `node` child process and returns what it printed as JSON. */
export async function runNodeScript<T>(source: string, args: string[] = []): Promise<T> {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', source, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  if (code !== 0) throw new Error(`anchor script failed (${code}): ${err.slice(-2000)}`);
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

/**
 * The anchor for webhook delivery: a bare Node process POSTing `body` to `url` with undici (what
 * the worker uses), first one at a time (round trip p50), then `concurrency` at once for
 * `durationMs` (requests per second).
 */
export function anchorPostClient(url: string, body: string, opts: { sequential: number; concurrency: number; durationMs: number }) {
  const source = `
    import { Agent, request } from 'undici';
    const [url, body, sequential, concurrency, durationMs] = [process.argv[1], process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
    const agent = new Agent({ keepAliveTimeout: 10000 });
    const post = async () => { const r = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent }); await r.body.dump(); };
    for (let i = 0; i < 20; i++) await post();
    const lat = [];
    for (let i = 0; i < sequential; i++) { const t = performance.now(); await post(); lat.push(performance.now() - t); }
    lat.sort((a, b) => a - b);
    let n = 0; const t0 = performance.now(); const end = t0 + durationMs;
    await Promise.all(Array.from({ length: concurrency }, async () => { while (performance.now() < end) { await post(); n++; } }));
    console.log(JSON.stringify({ p50: lat[Math.ceil(lat.length / 2) - 1], rps: n / ((performance.now() - t0) / 1000) }));
    await agent.close();`;
  return runNodeScript<{ p50: number; rps: number }>(source, [url, body, String(opts.sequential), String(opts.concurrency), String(opts.durationMs)]);
}

/** The source of a bare Node HTTP server answering every request with a small JSON body. */
export const bareServerSource = `
  import http from 'node:http';
  const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"status":"ok"}'); }); });
  server.listen(+process.env.PORT, '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));`;

/** Starts the bare Node HTTP server (the anchor of start time and memory) and waits for its 200. */
export async function startBareServer(): Promise<{ pid: number; origin: string; startMs: number; stop(): Promise<void> }> {
  const port = await freePort();
  const t0 = performance.now();
  const proc = spawn(process.execPath, ['--input-type=module', '-e', bareServerSource], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  let alive = true;
  const exit = new Promise<void>((r) => proc.once('exit', () => r(void (alive = false))));
  const origin = `http://127.0.0.1:${port}`;
  await waitFor200(`${origin}/health`, 10_000, () => alive);
  return {
    pid: proc.pid!,
    origin,
    startMs: performance.now() - t0,
    async stop() {
      proc.kill('SIGTERM');
      await exit;
    },
  };
}

// ---------------------------------------------------------------- profiles

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Where a profiled function comes from, by its file. */
function areaOf(url: string, fn: string): string {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'native (program)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.includes('/src/') || url.includes('/dist/src/')) return 'task-inbox src/';
  if (url.startsWith('node:')) return 'node internals';
  if (url === '') return 'native';
  return url;
}

/**
 * Summarises the `.cpuprofile` files in `dir` (written by `node --cpu-prof`): self time by
 * package or area, and the functions with the most self time.
 */
export function summariseCpuProfiles(dir: string, top = 12): { profiledSeconds: number; byArea: Record<string, string>; topFunctions: string[] } | null {
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (files.length === 0) return null;
  const file = path.join(dir, files.sort().pop()!);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: CpuProfileNode[]; samples: number[]; startTime: number; endTime: number };
  const hits = new Map<number, number>();
  for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const total = profile.samples.length || 1;
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const node of profile.nodes) {
    const n = hits.get(node.id) ?? node.hitCount ?? 0;
    if (n === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + n);
    const short = url.replace(/^file:\/\//, '').replace(repoRoot + '/', '');
    const key = `${functionName || '(anonymous)'} ${short ? `${short}:${lineNumber + 1}` : ''}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + n);
  }
  const pct = (n: number) => `${((100 * n) / total).toFixed(1)} %`;
  const byArea = Object.fromEntries([...areas].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, pct(v)]));
  const topFunctions = [...fns].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `${pct(v)}  ${k}`);
  return { profiledSeconds: round((profile.endTime - profile.startTime) / 1e6, 1), byArea, topFunctions };
}

// ---------------------------------------------------------------- setup through the core services

/**
 * Migrates the database `env` points at (as `task-inbox migrate` does), installs `schemaYaml`,
 * creates an API key (returned) and, for a schema with `hook_auth`, its webhook key; with
 * `tasks`, creates that many open tasks of `taskType` through the core service. Runs in this
 * process and closes the database again, before any server opens it.
 */
export async function prepareDatabase(
  env: Record<string, string>,
  schemaYaml: string,
  opts: { webhookKey?: boolean; tasks?: number; taskType?: string; state?: string } = {},
): Promise<{ apiKey: string; schemaName: string }> {
  const { loadConfig } = await import('../src/config.js');
  const { openDatabase, migrate } = await import('../src/db/index.js');
  const { installSchema } = await import('../src/core/schemas/index.js');
  const { createApiKey } = await import('../src/core/keys/index.js');
  const { createWebhookKey } = await import('../src/core/webhooks/index.js');
  const { loadSecretBox } = await import('../src/core/secrets/secret-box.js');
  const { createTask } = await import('../src/core/tasks/index.js');
  const config = loadConfig(env, { stdoutIsTty: false });
  const database = await openDatabase(config, 'server');
  try {
    await migrate(database);
    await installSchema(database, schemaYaml);
    const schemaName = /^name:\s*'([^']+)'/m.exec(schemaYaml)![1]!;
    if (opts.webhookKey) await createWebhookKey(database, loadSecretBox(config), { schemaName, graceMs: 0 });
    const created = await createApiKey(database, { name: 'bench' });
    for (let i = 0; i < (opts.tasks ?? 0); i++) {
      await createTask(database, { kind: 'cli' }, { schema_name: schemaName, task: opts.taskType ?? 'review', state: opts.state ?? 'open', meta: { title: `task ${i}`, n: i } });
    }
    return { apiKey: created.key, schemaName };
  } finally {
    await database.close();
  }
}

/**
 * Where a process's resident memory is, from /proc/<pid>/smaps, in MB. Heuristics, named as
 * such: an anonymous region followed by an inaccessible reservation of a gigabyte or more is a
 * WebAssembly memory (PGlite's database engine lives in one); anonymous regions starting on a
 * 64 MB boundary are malloc arenas of threads; `[heap]` is the main malloc heap; other anonymous
 * memory is mostly the V8 heap and compiled code; file-backed memory is the binary and libraries.
 */
export function memoryBreakdown(pid: number): Record<string, number> | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return null;
  }
  const maps: { start: number; end: number; perms: string; name: string; rss: number }[] = [];
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) maps.push({ start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), perms: head[3]!, name: head[4]!.trim(), rss: 0 });
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && maps.length > 0) maps[maps.length - 1]!.rss = Number(rss[1]) / 1024;
  }
  const MB = 2 ** 20;
  const sums = new Map<string, number>();
  const add = (k: string, v: number) => sums.set(k, (sums.get(k) ?? 0) + v);
  maps.forEach((m, i) => {
    const next = maps[i + 1];
    if (m.name !== '') {
      add(m.name === '[heap]' ? 'malloc heap ([heap])' : m.name.startsWith('[') ? `other ${m.name}` : 'file-backed (node binary, libraries)', m.rss);
    } else if (m.end - m.start >= 1024 * MB || (next && next.start === m.end && next.name === '' && next.perms.startsWith('---') && next.end - next.start >= 1024 * MB)) {
      add('WebAssembly memory', m.rss);
    } else if (m.start % (64 * MB) === 0 && m.end - m.start <= 64 * MB) {
      add('malloc arenas of threads', m.rss);
    } else add('V8 heap, code and other anonymous', m.rss);
  });
  return Object.fromEntries([...sums].filter(([, v]) => v >= 0.5).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round(v, 1)]));
}
