/*
 * The server as a separate process (as `task-inbox serve` runs), the HTTP load generator
 * (autocannon, with every response's latency kept for exact percentiles) and a summary of a
 * `node --cpu-prof` profile.
 */
import autocannon from 'autocannon';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { summarise, type LatencySummary } from './lib-db.js';
import { repoRoot as root, startServer as startBenchServer, tempDir, waitFor200 } from './lib.js';

export interface ProfiledServer {
  origin: string;
  pid: number;
  /** SIGTERM and wait for the exit; returns the CPU profile's summary when started with `profile`. */
  stop(): Promise<string | undefined>;
}

/**
 * Starts `serve` as bench/lib.ts's startServer does (a free loopback port, only the given
 * settings), optionally under `node --cpu-prof`, and waits until /readyz answers 200 too.
 */
export async function startServer(env: Record<string, string>, opts: { profile?: boolean } = {}): Promise<ProfiledServer> {
  const profileDir = opts.profile ? tempDir('ti-prof-') : undefined;
  const server = await startBenchServer({ env, nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir.dir}`] : [] });
  try {
    await waitFor200(`${server.origin}/readyz`, 20_000, () => server.proc.exitCode === null);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return {
    origin: server.origin,
    pid: server.pid,
    async stop() {
      await server.stop();
      if (!profileDir) return undefined;
      const file = readdirSync(profileDir.dir).find((f) => f.endsWith('.cpuprofile'));
      const summary = file ? summariseCpuProfile(path.join(profileDir.dir, file)) : 'no profile was written';
      // Kept for a closer look (e.g. in Chrome's DevTools) when the caller asks.
      if (process.env.BENCH_KEEP_PROFILE && file) process.stderr.write(`profile kept: ${path.join(profileDir.dir, file)}\n`);
      else profileDir.remove();
      return summary;
    },
  };
}

export interface HttpRun extends LatencySummary {
  /** Answers per second over the run. */
  rps: number;
  /** Answers with a status other than `expectStatus`, plus errors and timeouts. */
  bad: number;
}

/**
 * `connections` clients, each sending its next request when the previous answer arrived, for
 * `seconds` (or `amount` requests in all). Every answer's latency is kept.
 */
export async function runLoad(opts: {
  url: string;
  connections: number;
  seconds?: number;
  amount?: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  expectStatus?: number;
}): Promise<HttpRun> {
  const latencies: number[] = [];
  let bad = 0;
  const started = performance.now();
  let lastAnswer = started;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        pipelining: 1,
        ...(opts.amount !== undefined ? { amount: opts.amount } : { duration: opts.seconds ?? 10 }),
        method: opts.method ?? 'GET',
        headers: opts.headers,
        body: opts.body,
        timeout: 30,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode !== (opts.expectStatus ?? 200)) bad++;
      latencies.push(responseTime);
      lastAnswer = performance.now();
    });
  });
  // With `amount`, autocannon reports the end only at its next one-second tick: count to the last answer.
  const seconds = opts.amount !== undefined ? (lastAnswer - started) / 1000 : (opts.seconds ?? 10);
  return { ...summarise(latencies), rps: latencies.length / seconds, bad: bad + result.errors + result.timeouts };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/**
 * The functions with the most self time, self time by where the code lives, and the project's
 * own functions (and a few library entry points) by inclusive time. The profiler samples wall
 * time: a process waiting for the CPU shows up in whatever it was running, so on a busy machine
 * a system call that wakes another process (writev to a loopback socket) looks expensive.
 */
export function summariseCpuProfile(file: string, top = 15): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const nameOf = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const short = url.replace(/^file:\/\//, '').replace(root + '/', '');
    return { fn: `${functionName || '(anonymous)'} ${short ? `${short}:${lineNumber + 1}` : ''}`.trim(), place: placeOf(short, functionName), own: /^(dist\/)?src\//.test(short) };
  };
  let total = 0;
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  const inclusive = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    const self = nameOf(id);
    byFunction.set(self.fn, (byFunction.get(self.fn) ?? 0) + us);
    byPlace.set(self.place, (byPlace.get(self.place) ?? 0) + us);
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const f = nameOf(n);
      if (f.own && !seen.has(f.fn)) {
        seen.add(f.fn);
        inclusive.set(f.fn, (inclusive.get(f.fn) ?? 0) + us);
      }
    }
  });
  const pct = (us: number) => `${((100 * us) / total).toFixed(1)}%`.padStart(6);
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  const idle = byFunction.get('(idle)') ?? 0;
  return [
    `${(total / 1e6).toFixed(1)} s sampled, ${pct(idle).trim()} idle; self time by place:`,
    ...sorted(byPlace).slice(0, 10).map(([k, us]) => `${pct(us)}  ${k}`),
    'top functions by self time:',
    ...sorted(byFunction).slice(0, top).map(([k, us]) => `${pct(us)}  ${k}`),
    "the project's own functions by inclusive time (callees included):",
    ...sorted(inclusive).slice(0, top).map(([k, us]) => `${pct(us)}  ${k}`),
  ].join('\n');
}

function placeOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const own = /^(?:dist\/)?(src\/[^/]+(?:\/[^/]+)?)\//.exec(url);
  return own ? own[1]! : url;
}

/** Clock ticks per second of /proc figures (USER_HZ, 100 on Linux). */
const TICK_MS = 10;

export interface CpuMark {
  at: number;
  machineBusyMs: number;
  processMs: number | null;
  selfMs: number;
}

/** The machine's busy CPU time, a process's CPU time (Linux /proc) and this process's own. */
export function cpuMark(pid?: number): CpuMark {
  let machineBusyMs = NaN;
  let processMs: number | null = null;
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    machineBusyMs = (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0)) * TICK_MS;
    if (pid !== undefined) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      processMs = (Number(fields[11]) + Number(fields[12])) * TICK_MS;
    }
  } catch {
    // not Linux: the figures stay unknown
  }
  const self = process.cpuUsage();
  return { at: performance.now(), machineBusyMs, processMs, selfMs: (self.user + self.system) / 1000 };
}

/** CPU milliseconds per request (or transaction) between two marks: the server's, this process's, the rest of the machine's. */
export function cpuPerRequest(from: CpuMark, to: CpuMark, requests: number) {
  const machine = to.machineBusyMs - from.machineBusyMs;
  const server = from.processMs !== null && to.processMs !== null ? to.processMs - from.processMs : 0;
  const self = to.selfMs - from.selfMs;
  const cores = os.cpus().length;
  return {
    machineBusyPct: round1((100 * machine) / ((to.at - from.at) * cores)),
    serverMs: round2(server / requests),
    loadGeneratorMs: round2(self / requests),
    restMs: round2((machine - server - self) / requests),
  };
}

const round1 = (v: number) => Math.round(v * 10) / 10;
const round2 = (v: number) => Math.round(v * 100) / 100;
