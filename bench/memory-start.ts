/*
 * Start time and memory of `task-inbox serve` (issue 9).
 *
 *   npx tsx bench/memory-start.ts [--quick] [--no-postgres] [--profile]
 *     --runs 5            timed starts
 *     --load-seconds 20   length of the POST load
 *     --settled-seconds 20  when the second idle figure is taken, from the first 200 of /health
 *     --clients 16        concurrent POST loops
 *   DATABASE_URL         an admin connection to the PostgreSQL server where a fresh database is
 *                        made (and dropped); default postgres://postgres@127.0.0.1:5432/postgres
 *
 * Start: an embedded data folder is created and migrated, given a schema, an API key and some
 * tasks, and served once (the first start generates the VAPID keys: not timed). Then `serve` is
 * started --runs times, each timed from spawn to the first 200 from /health and then stopped with
 * SIGTERM. The target is on the median; the max is reported beside it.
 *
 * Memory: RSS (VmRSS from /proc) of the server process, idle (after /health answers and a few
 * seconds of settling; the target's figure), idle once more --settled-seconds after /health
 * answered (shown beside: V8 returns some of the start's memory 5-15 s in), and its peak under a
 * POST /api/v1/tasks/ load from --clients loops,
 * sampled every 100 ms; on the embedded database and on a fresh PostgreSQL database. The embedded
 * database runs once more with EMBEDDED_LOW_MEMORY=on, shown beside without a target.
 *
 * Anchors: a bare Node process serving node:http — its start time, idle RSS, and peak RSS under
 * the same load.
 */
import { rmSync } from 'node:fs';
import { Agent, request } from 'undici';
import {
  closedLoop,
  createFreshDatabase,
  median,
  memoryBreakdown,
  newSecretKey,
  parseArgs,
  prepareDatabase,
  printResult,
  round,
  rssMb,
  sampleRss,
  say,
  serveCommand,
  sleep,
  startBareServer,
  startServer,
  summariseCpuProfiles,
  table,
  target,
  tempDir,
  type ScenarioResult,
  type Target,
} from './lib.js';

const args = parseArgs();
const QUICK = args.quick;
const RUNS = args.num('runs', 5);
const LOAD_SECONDS = args.num('load-seconds', QUICK ? 5 : 20);
const CLIENTS = args.num('clients', 16);
const SETTLE_MS = QUICK ? 2000 : 3000;
const SETTLED_MS = args.num('settled-seconds', QUICK ? 8 : 20) * 1000;
const TASKS = QUICK ? 100 : 300;
const POSTGRES = !args.has('no-postgres');
const PROFILE = args.has('profile');

const LOW_MEMORY = 'embedded, EMBEDDED_LOW_MEMORY=on (no target)';

const SCHEMA = `name: 'bench:memory'
semver: '1'
tasktypes:
- name: review
  pending_states: ['open']
  resolved_states: ['done']
`;

const taskBody = (i: number) =>
  JSON.stringify({ schema_name: 'bench:memory', task: 'review', state: 'open', meta: { title: `Review order ${i}`, customer: 'ACME Corp', amount: i * 3, tags: ['bench', 'memory'] } });

/** Idle RSS: settles for `settleMs`, then the median of a second of samples. */
async function idleRss(pid: number, settleMs = SETTLE_MS) {
  await sleep(settleMs);
  const sampler = sampleRss(pid, 100);
  await sleep(1000);
  return median(sampler.stop().samples);
}

/** The POST load against `origin`, with the RSS of `pid` sampled throughout; and RSS 3 s after it. */
async function loadWithRss(pid: number, origin: string, path: string, seconds: number, headers: Record<string, string>) {
  const agent = new Agent({ connections: CLIENTS, keepAliveTimeout: 30_000 });
  const sampler = sampleRss(pid, 100);
  const load = await closedLoop(CLIENTS, seconds * 1000, async (i) => {
    const res = await request(`${origin}${path}`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json', ...headers }, body: taskBody(i) });
    await res.body.dump();
    return res.statusCode;
  });
  const rss = sampler.stop();
  const breakdownAtLoadEnd = memoryBreakdown(pid);
  await agent.close();
  await sleep(3000);
  return { peakMb: round(rss.peak, 1), afterLoadPlus3sMb: round(rssMb(pid), 1), requests: load.n, errors: load.errors, rps: round(load.rps, 0), latencyMs: load.latency, breakdownAtLoadEnd };
}

async function memoryOn(label: string, env: Record<string, string>, apiKey: string) {
  const profileDir = PROFILE ? tempDir('ti-bench-prof-memory-').dir : undefined;
  const server = await startServer({ env, nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] });
  try {
    const idle = await idleRss(server.pid);
    const breakdownIdle = memoryBreakdown(server.pid);
    const settled = await idleRss(server.pid, Math.max(0, SETTLED_MS - SETTLE_MS - 1000));
    const breakdownSettled = memoryBreakdown(server.pid);
    say(`memory-start: ${label}: idle RSS ${round(idle, 1)} MB, ${round(settled, 1)} MB after ${SETTLED_MS / 1000} s; POST load with ${CLIENTS} clients for ${LOAD_SECONDS} s`);
    const load = await loadWithRss(server.pid, server.origin, '/api/v1/tasks/', LOAD_SECONDS, { 'api-key': apiKey });
    return { label, idleMb: round(idle, 1), breakdownIdle, settledMb: round(settled, 1), breakdownSettled, ...load };
  } finally {
    await server.stop();
    if (profileDir) {
      say(JSON.stringify(summariseCpuProfiles(profileDir), null, 2));
      rmSync(profileDir, { recursive: true, force: true });
    }
  }
}

async function main() {
  const started = performance.now();
  const secretKey = newSecretKey();
  const data = tempDir('ti-bench-start-');
  const memory: (Awaited<ReturnType<typeof memoryOn>> & { informational?: boolean })[] = [];
  let start: { firstStartMs: number; startsMs: number[]; stopsMs: number[]; tasks: number };
  let startProfile: Record<string, unknown> | undefined;
  try {
    // Start: an existing embedded data folder.
    const env = { TI_DATA_DIR: data.dir, SECRET_KEY: secretKey };
    const { apiKey } = await prepareDatabase(env, SCHEMA, { tasks: TASKS });
    const first = await startServer({ env });
    await first.stop();
    const startsMs: number[] = [];
    const stopsMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const server = await startServer({ env });
      startsMs.push(round(server.startMs, 0));
      stopsMs.push(round((await server.stop()).ms, 0));
    }
    start = { firstStartMs: round(first.startMs, 0), startsMs, stopsMs, tasks: TASKS };
    // A missed target: one more start under --cpu-prof, to see where the time goes.
    if (PROFILE || (!QUICK && median(startsMs) > 1500)) {
      const dir = tempDir('ti-bench-prof-start-');
      const profiled = await startServer({ env, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir.dir}`] });
      await profiled.stop();
      startProfile = { why: 'start median > 1.5 s', startMsUnderProfiler: round(profiled.startMs, 0), ...summariseCpuProfiles(dir.dir), note: 'the profile runs from process start to exit, so it includes stopping' };
      dir.remove();
    }
    say(`memory-start: ${RUNS} starts on an existing embedded data folder: ${startsMs.join(', ')} ms`);
    memory.push(await memoryOn('embedded', env, apiKey));
    // The switch for tight memory, shown beside (the targets are on the default settings).
    memory.push({ ...(await memoryOn(LOW_MEMORY, { ...env, EMBEDDED_LOW_MEMORY: 'on' }, apiKey)), informational: true });
  } finally {
    data.remove();
  }
  if (POSTGRES) {
    const fresh = await createFreshDatabase();
    try {
      const env = { DATABASE_URL: fresh.url, SECRET_KEY: secretKey };
      const { apiKey } = await prepareDatabase(env, SCHEMA, { tasks: TASKS });
      memory.push(await memoryOn('PostgreSQL', env, apiKey));
    } finally {
      await fresh.drop();
    }
  }

  // Anchors: a bare Node HTTP server.
  const bareStarts: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const bare = await startBareServer();
    bareStarts.push(round(bare.startMs, 0));
    await bare.stop();
  }
  const bare = await startBareServer();
  const bareIdle = await idleRss(bare.pid);
  const bareLoad = await loadWithRss(bare.pid, bare.origin, '/', Math.min(LOAD_SECONDS, 5), {});
  await bare.stop();

  const startMedian = median(start.startsMs);
  say('');
  say(table(['start (embedded, existing folder)', 'median ms', 'max ms', 'runs'], [['task-inbox serve', startMedian, Math.max(...start.startsMs), start.startsMs.join(' ')], ['bare node:http', median(bareStarts), Math.max(...bareStarts), bareStarts.join(' ')]]));
  say('');
  say(
    table(
      ['memory', 'idle MB', `idle after ${SETTLED_MS / 1000} s MB`, 'peak under load MB', '3 s after MB', 'POST req/s', 'errors'],
      [...memory.map((m) => [m.label, m.idleMb, m.settledMb, m.peakMb, m.afterLoadPlus3sMb, m.rps, m.errors]), ['bare node:http', round(bareIdle, 1), '', bareLoad.peakMb, bareLoad.afterLoadPlus3sMb, bareLoad.rps, bareLoad.errors]],
    ),
  );

  const targets: Target[] = [
    target({
      name: 'Start: `serve` → 200 from /health, existing embedded folder (median)',
      measured: startMedian / 1000,
      unit: 's',
      anchor: median(bareStarts) / 1000,
      anchorLabel: 'bare node:http server, spawn → 200 (median)',
      target: '≤ 1.5 s',
      met: startMedian <= 1500,
    }),
  ];
  for (const m of memory.filter((m) => !m.informational)) {
    targets.push(
      target({ name: `Idle RSS (${m.label})`, measured: m.idleMb, unit: 'MB', anchor: bareIdle, anchorLabel: 'bare node:http server, idle', target: '≤ 150 MB', met: m.idleMb <= 150 }),
      target({
        name: `Peak RSS under POST load, ${CLIENTS} clients ${LOAD_SECONDS} s (${m.label})`,
        measured: m.peakMb,
        unit: 'MB',
        anchor: bareLoad.peakMb,
        anchorLabel: `bare node:http server under the same load (${Math.min(LOAD_SECONDS, 5)} s)`,
        target: '≤ 300 MB',
        met: m.peakMb <= 300 && m.errors === 0,
      }),
    );
  }
  const memoryMissed = memory.filter((m) => !m.informational && (m.idleMb > 150 || m.peakMb > 300));
  const result: ScenarioResult = {
    scenario: 'memory-start',
    targets,
    details: {
      server: serveCommand().via,
      quick: QUICK,
      start: { ...start, medianMs: startMedian, maxMs: Math.max(...start.startsMs), stopsMedianMs: median(start.stopsMs), note: 'first start (generates VAPID keys) not counted' },
      memory,
      ...(startProfile || memoryMissed.length > 0
        ? {
            profile: {
              ...(startProfile ? { start: startProfile } : {}),
              // For memory the profile is where the RSS is (see lib.memoryBreakdown), for each missed target.
              ...Object.fromEntries(memoryMissed.map((m) => [`memory ${m.label}`, { idle: m.breakdownIdle, settled: m.breakdownSettled, atLoadEnd: m.breakdownAtLoadEnd }])),
            },
          }
        : {}),
      anchor: { startsMs: bareStarts, idleMb: round(bareIdle, 1), load: bareLoad },
      seconds: round((performance.now() - started) / 1000, 1),
    },
  };
  printResult(result);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
