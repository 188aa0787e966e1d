/*
 * `npm run bench`: runs every benchmark scenario of issue 9 in sequence, each as a child process,
 * then prints one summary table, writes bench/results/<YYYY-MM-DD>.json and rewrites
 * docs/benchmarks.md from it.
 *
 *   npm run bench                          all scenarios (about 10 minutes at most)
 *   npm run bench -- --quick               a short run of each (for trying the harness)
 *   npm run bench -- --only webhooks,memory-start
 *   npm run bench -- --pg postgres://user@host:5432/postgres   where fresh databases are made
 *   npm run bench -- --no-write            print only; leave results/ and docs/ alone
 *
 * Each scenario prints a readable table to stderr (streamed through) and, as its last stdout
 * line, `RESULT {"scenario", "targets": [...], "details": {...}}` (see bench/lib.ts). A scenario
 * whose script is missing is skipped with a note; one that fails is recorded as failed.
 * With --only, the newest earlier results of the other scenarios are carried over (and marked so).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { adminPgUrl, parseArgs, postgresVersion, repoRoot, round, say, serveCommand, table, type ScenarioResult } from './lib.js';

interface Scenario {
  name: string;
  file: string;
  about: string;
}

const SCENARIOS: Scenario[] = [
  { name: 'webhooks', file: 'bench/webhooks.ts', about: 'async webhook lag and delivery throughput' },
  { name: 'memory-start', file: 'bench/memory-start.ts', about: 'start time on an embedded folder; RSS idle and under POST load' },
  { name: 'post-tasks', file: 'bench/post-tasks.ts', about: 'POST /api/v1/tasks/ against pgbench; embedded against in-process PGlite' },
  { name: 'list-tasks', file: 'bench/list-tasks.ts', about: 'GET /api/v1/tasks/ with 1M tasks' },
];

/** What one scenario left in the results: its RESULT, or why there is none. */
type Outcome =
  | (ScenarioResult & { seconds: number; carriedFrom?: { date: string; commit: string } })
  | { scenario: string; skipped: string }
  | { scenario: string; failed: string; seconds: number };

interface Results {
  date: string;
  quick: boolean;
  only: string[] | null;
  machine: Record<string, unknown>;
  durationSeconds: number;
  scenarios: Outcome[];
}

const args = parseArgs();
const QUICK = args.quick;
const ONLY = args.value('only')?.split(',').map((s) => s.trim()).filter(Boolean) ?? null;
const WRITE = !args.has('no-write');
const TIMEOUT_MS = args.num('timeout-minutes', 9) * 60_000;
const resultsDir = path.join(repoRoot, 'bench/results');
const docsFile = path.join(repoRoot, 'docs/benchmarks.md');

function sh(cmd: string, argv: string[]): string | null {
  try {
    return execFileSync(cmd, argv, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

async function machine(): Promise<Record<string, unknown>> {
  const osRelease = existsSync('/etc/os-release') ? /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] : undefined;
  const commit = sh('git', ['rev-parse', 'HEAD']);
  const dirty = (sh('git', ['status', '--porcelain', '--untracked-files=no']) ?? '') !== '';
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cpus: os.cpus().length,
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    os: `${osRelease ?? os.type()} (${os.platform()} ${os.release()}, ${os.arch()})`,
    node: process.version,
    postgres: (await postgresVersion())?.split(' on ')[0] ?? 'not reachable',
    commit: commit ? `${commit}${dirty ? ' (with uncommitted changes)' : ''}` : 'unknown',
    loadAverageAtStart: os.loadavg().map((v) => round(v, 2)),
  };
}

/** Runs one scenario script; its stderr streams through, its stdout is scanned for the RESULT line. */
async function runScenario(s: Scenario): Promise<Outcome> {
  const file = path.join(repoRoot, s.file);
  if (!existsSync(file)) return { scenario: s.name, skipped: `${s.file} does not exist in this checkout` };
  say(`\n=== ${s.name}: ${s.about} (${s.file}${QUICK ? ' --quick' : ''})`);
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), file, ...(QUICK ? ['--quick'] : [])], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: adminPgUrl() },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  let result: ScenarioResult | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.startsWith('RESULT ')) {
        try {
          result = JSON.parse(line.slice(7)) as ScenarioResult;
        } catch {
          say(`(${s.name} printed a RESULT line that is not JSON)`);
        }
      } else process.stderr.write(`${line}\n`);
    }
  });
  const timer = setTimeout(() => {
    say(`(${s.name} ran past ${TIMEOUT_MS / 60_000} minutes: stopping it)`);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  }, TIMEOUT_MS);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  clearTimeout(timer);
  if (out.startsWith('RESULT ')) result = JSON.parse(out.slice(7)) as ScenarioResult;
  const seconds = round((performance.now() - t0) / 1000, 1);
  if (code !== 0 || !result) return { scenario: s.name, failed: code !== 0 ? `exit code ${code}` : 'no RESULT line', seconds };
  return { ...result, seconds };
}

/** The newest results file written before this run, if any. */
function previousResults(): Results | null {
  if (!existsSync(resultsDir)) return null;
  const files = readdirSync(resultsDir).filter((f) => /^\d{4}-\d{2}-\d{2}\.json$/.test(f)).sort();
  if (files.length === 0) return null;
  return JSON.parse(readFileSync(path.join(resultsDir, files[files.length - 1]!), 'utf8')) as Results;
}

const fmt = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? '–' : String(round(v, 2)));

function summaryRows(results: Results) {
  const rows: string[][] = [];
  for (const s of results.scenarios) {
    if ('skipped' in s) rows.push([s.scenario, `skipped: ${s.skipped}`, '', '', '', '', '']);
    else if ('failed' in s) rows.push([s.scenario, `FAILED: ${s.failed}`, '', '', '', '', '']);
    else for (const t of s.targets) rows.push([s.scenario + (s.carriedFrom ? ` (from ${s.carriedFrom.date})` : ''), t.name, `${fmt(t.measured)} ${t.unit}`, t.anchor === null ? '–' : `${fmt(t.anchor)} ${t.unit}`, t.ratio === null ? '–' : `${fmt(t.ratio)}x`, t.target, t.met ? 'met' : 'NOT MET']);
  }
  return rows;
}

/** Details as nested Markdown lists: arrays of numbers inline, objects as sub-lists. */
function detailsMarkdown(value: unknown, depth = 0): string {
  const pad = '  '.repeat(depth);
  if (Array.isArray(value)) {
    return value.map((v, i) => (typeof v === 'object' && v !== null ? `${pad}- ${(v as { label?: string }).label ?? `#${i + 1}`}\n${detailsMarkdown(v, depth + 1)}` : `${pad}- ${String(v)}`)).join('\n');
  }
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value)
      .filter(([k]) => k !== 'label')
      .map(([k, v]) => {
        if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) {
          // Numbers inline; long texts (a profile's top functions) one per line.
          return v.some((x) => String(x).length > 40) ? `${pad}- ${k}:\n${v.map((x) => `${pad}  - \`${String(x)}\``).join('\n')}` : `${pad}- ${k}: ${v.join(', ')}`;
        }
        // A small record of plain values (percentiles, a memory breakdown) fits on one line.
        if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length <= 8 && Object.values(v).every((x) => typeof x !== 'object' || x === null)) {
          return `${pad}- ${k}: ${Object.entries(v).map(([a, b]) => `${a} ${String(b)}`).join(', ')}`;
        }
        if (typeof v === 'object' && v !== null) return `${pad}- ${k}:\n${detailsMarkdown(v, depth + 1)}`;
        return `${pad}- ${k}: ${String(v)}`;
      })
      .join('\n');
  }
  return `${pad}${String(value)}`;
}

const NOTES_START = '<!-- notes -->';
const NOTES_END = '<!-- /notes -->';

function keptNotes(): string {
  const fallback = 'Profile findings and remarks about these figures go here; `npm run bench` keeps whatever is between these markers.';
  if (!existsSync(docsFile)) return fallback;
  const text = readFileSync(docsFile, 'utf8');
  const a = text.indexOf(NOTES_START);
  const b = text.indexOf(NOTES_END);
  return a >= 0 && b > a ? text.slice(a + NOTES_START.length, b).trim() : fallback;
}

function docs(results: Results, resultsFile: string): string {
  const m = results.machine;
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const targetRows = summaryRows(results)
    .map((r) => `| ${r.map(esc).join(' | ')} |`)
    .join('\n');
  const scenarioSections = results.scenarios
    .map((s) => {
      const about = SCENARIOS.find((x) => x.name === s.scenario);
      const head = `### ${s.scenario}\n\n${about ? `${about.about} — \`${about.file}\`, run alone with \`npx tsx ${about.file}\`.\n\n` : ''}`;
      if ('skipped' in s) return `${head}Skipped: ${s.skipped}.`;
      if ('failed' in s) return `${head}Failed: ${s.failed} (after ${s.seconds} s).`;
      const carried = s.carriedFrom ? `Carried over from the run of ${s.carriedFrom.date} (commit ${s.carriedFrom.commit.slice(0, 12)}).\n\n` : '';
      return `${head}${carried}${detailsMarkdown(s.details)}`;
    })
    .join('\n\n');
  return `# Benchmarks

The targets of issue 9, each measured in one run on one machine and shown beside an **anchor**: the
same kind of work done by a bare tool on the same machine at the same time (PostgreSQL's pgbench,
in-process PGlite, a bare Node HTTP server or client), so that figures from different machines can
be compared through the ratio (measured / anchor).

Written by \`npm run bench\` (bench/run.ts) from [\`${resultsFile}\`](../${resultsFile}) — edit only the
notes at the end, which the next run keeps.${results.quick ? '\n\n**This was a `--quick` run: short measurements, not the figures of record.**' : ''}

## Targets

| Scenario | Target | Measured | Anchor | Ratio | Goal | Met |
| --- | --- | --- | --- | --- | --- | --- |
${targetRows}

## Machine

- Date: ${results.date}
- CPU: ${String(m.cpu)} × ${String(m.cpus)}
- Memory: ${String(m.memoryGb)} GB
- OS: ${String(m.os)}
- Node.js: ${String(m.node)}
- PostgreSQL: ${String(m.postgres)}
- Commit: ${String(m.commit)}
- Load average when the run began (1, 5, 15 min): ${(m.loadAverageAtStart as number[]).join(', ')}
- The whole run took ${round(results.durationSeconds / 60, 1)} minutes${results.only ? ` (only ${results.only.join(', ')})` : ''}.

## How to reproduce

\`\`\`sh
npm ci                 # also builds dist/: the scenarios start \`node bin/task-inbox.js serve\`
npm run bench          # every scenario, at most 10 minutes
\`\`\`

PostgreSQL must be reachable: each scenario creates a fresh database there and drops it afterwards,
through \`DATABASE_URL\` (an account that may create databases; default
\`postgres://postgres@127.0.0.1:5432/postgres\`) or \`npm run bench -- --pg URL\`. Embedded runs use
temporary data folders. Options: \`--quick\` (a short run of each scenario, to try the harness),
\`--only webhooks,memory-start\` (the others' latest figures are carried over), \`--no-write\` (leave
bench/results/ and this file alone). Each scenario also runs alone (e.g. \`npx tsx bench/webhooks.ts --quick\`);
its header comment lists its options. If \`src/\` is newer than \`dist/\`, the server is started from
the sources through tsx instead (slower to start), and the details say so.

Other work on the machine skews every figure; the load average above is a hint.

## Scenario details

${scenarioSections}

## Notes

${NOTES_START}
${keptNotes()}
${NOTES_END}
`;
}

async function main() {
  const t0 = performance.now();
  const date = new Date().toISOString().slice(0, 10);
  const unknown = ONLY?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
  if (unknown.length > 0) {
    say(`Unknown scenario(s): ${unknown.join(', ')}. Known: ${SCENARIOS.map((s) => s.name).join(', ')}.`);
    process.exitCode = 2;
    return;
  }
  const pgIndex = process.argv.indexOf('--pg');
  if (pgIndex >= 0 && process.argv[pgIndex + 1]) process.env.DATABASE_URL = process.argv[pgIndex + 1];
  const info = await machine();
  say(`Benchmarks${QUICK ? ' (quick)' : ''} on ${String(info.cpu)} × ${String(info.cpus)}, ${String(info.memoryGb)} GB, Node ${process.version}, ${String(info.postgres)}`);
  if (serveCommand().via.includes('tsx')) say('dist/ is missing or older than src/: the servers run from the sources through tsx, which starts slower. Run `npm run build` first for figures of record.');
  if (info.postgres === 'not reachable') say(`PostgreSQL at ${adminPgUrl().replace(/\/\/[^@]*@/, '//…@')} is not reachable: the scenarios that need it will fail. Set DATABASE_URL or --pg.`);

  const outcomes: Outcome[] = [];
  for (const s of SCENARIOS) {
    if (ONLY && !ONLY.includes(s.name)) continue;
    const outcome = await runScenario(s);
    if ('skipped' in outcome) say(`\n=== ${s.name}: skipped (${outcome.skipped})`);
    outcomes.push(outcome);
  }
  if (ONLY) {
    const previous = previousResults();
    for (const s of SCENARIOS) {
      if (ONLY.includes(s.name)) continue;
      const old = previous?.scenarios.find((o) => o.scenario === s.name);
      if (old && 'targets' in old) outcomes.push({ ...old, carriedFrom: old.carriedFrom ?? { date: previous!.date, commit: String(previous!.machine.commit) } });
    }
    outcomes.sort((a, b) => SCENARIOS.findIndex((s) => s.name === a.scenario) - SCENARIOS.findIndex((s) => s.name === b.scenario));
  }
  const results: Results = { date, quick: QUICK, only: ONLY, machine: { ...info, loadAverageAtEnd: os.loadavg().map((v) => round(v, 2)) }, durationSeconds: round((performance.now() - t0) / 1000, 1), scenarios: outcomes };

  say('\n=== Summary\n');
  say(table(['scenario', 'target', 'measured', 'anchor', 'ratio', 'goal', 'met'], summaryRows(results)));
  say(`\n${round(results.durationSeconds / 60, 1)} minutes in all.`);
  if (WRITE) {
    mkdirSync(resultsDir, { recursive: true });
    const resultsFile = `bench/results/${date}.json`;
    writeFileSync(path.join(repoRoot, resultsFile), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(docsFile, docs(results, resultsFile));
    say(`Wrote ${resultsFile} and docs/benchmarks.md.`);
  }
  if (outcomes.some((o) => 'failed' in o)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
