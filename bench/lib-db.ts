/*
 * Database pieces shared by the benchmark scenarios: a fresh PostgreSQL database per run, the
 * exact statements the server runs for a request (captured from the real code), pgbench as the
 * anchor that runs those statements, percentiles and the RESULT line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { percentile, printResult as printScenarioResult, type Target } from './lib.js';

/** Command-line options every scenario understands: `--pg URL` and `--quick`. */
export interface BenchOptions {
  /** The PostgreSQL server to make fresh databases on (any database there, used only to create and drop). */
  pgAdminUrl: string;
  /** A short development run: shorter durations, smaller data. */
  quick: boolean;
  args: string[];
}

export function benchOptions(argv = process.argv.slice(2)): BenchOptions {
  const i = argv.indexOf('--pg');
  const given = i >= 0 && argv[i + 1] && !argv[i + 1]!.startsWith('--') ? argv[i + 1] : undefined;
  return {
    pgAdminUrl: given ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    quick: argv.includes('--quick'),
    args: argv,
  };
}

/** The value after `--name`, or the fallback. */
export function numberOption(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback;
}

// Fresh databases are made by the harness's shared helper.
export { createFreshDatabase, percentile, type FreshDatabase } from './lib.js';

/** One statement as the driver sent it. */
export interface CapturedStatement {
  text: string;
  values: unknown[];
}

/**
 * Runs `fn` and returns every statement node-postgres sent meanwhile, in order (transaction
 * control included: drizzle sends `begin` and `commit` as statements). Only meaningful when `fn`
 * is the only thing using the database.
 */
export async function captureStatements<T>(fn: () => Promise<T>): Promise<{ result: T; statements: CapturedStatement[] }> {
  const statements: CapturedStatement[] = [];
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, config: unknown, values?: unknown, ...rest: unknown[]) {
    if (typeof config === 'string') statements.push({ text: config, values: Array.isArray(values) ? values : [] });
    else if (config && typeof config === 'object' && 'text' in config) {
      const c = config as { text: string; values?: unknown[] };
      statements.push({ text: c.text, values: c.values ?? (Array.isArray(values) ? values : []) });
    }
    return original.call(this, config, values, ...rest);
  };
  try {
    const result = await fn();
    return { result, statements };
  } finally {
    proto.query = original;
  }
}

/** A parameter as node-postgres puts it on the wire (text format). */
export function wireValue(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * A pgbench script running `statements` in order with the same parameters, sent as parameters
 * (`-M extended`), each statement on one line. A parameter equal to one of `fromReturning`'s
 * values becomes that pgbench variable, taken with `\gset` from the statement that returned it
 * (`gsetAfter`: the index of that statement). Returns the script and the `-D` definitions.
 */
export function pgbenchScript(
  statements: CapturedStatement[],
  opts: { fromReturning?: Record<string, string>; gsetAfter?: number; comment?: string } = {},
): { script: string; defines: string[] } {
  const defines: string[] = [];
  const lines: string[] = [];
  if (opts.comment) for (const l of opts.comment.split('\n')) lines.push(`-- ${l}`);
  statements.forEach((s, i) => {
    const text = s.text.replace(/\s*\n\s*/g, ' ').trim();
    if (/(^|[^:]):[A-Za-z_]/.test(text.replace(/'[^']*'/g, "''"))) throw new Error(`pgbench would read a variable in: ${text}`);
    const sqlText = text.replace(/\$(\d+)/g, (_, n: string) => {
      const value = wireValue(s.values[Number(n) - 1]);
      if (value === null) return 'NULL';
      const returned = Object.entries(opts.fromReturning ?? {}).find(([, v]) => v === value);
      if (returned && i > (opts.gsetAfter ?? -1)) return `:${returned[0]}`;
      const name = `s${i + 1}p${n}`;
      defines.push(`${name}=${value}`);
      return `:${name}`;
    });
    lines.push(i === opts.gsetAfter ? `${sqlText} \\gset` : `${sqlText};`);
  });
  return { script: lines.join('\n') + '\n', defines };
}

/** Latency summary in milliseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarise(latenciesMs: number[]): LatencySummary {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}

export interface PgbenchRun extends LatencySummary {
  /** Transactions per second over the measured window (after the warm-up). */
  tps: number;
  /** pgbench's own figure over the whole run, warm-up included. */
  reportedTps: number;
  failed: number;
  /** Transactions in the whole run, warm-up included. */
  total: number;
}

/**
 * Runs pgbench for `warmSeconds + seconds` and measures from its per-transaction log only the
 * transactions that ended in the last `seconds`, as the HTTP load is measured after a warm-up.
 */
export async function runPgbench(opts: {
  url: string;
  script: string;
  defines?: string[];
  clients: number;
  threads?: number;
  seconds: number;
  warmSeconds: number;
  /** Total transactions instead of a duration (`-t` per client); no warm-up window then. */
  transactionsPerClient?: number;
  /** pgbench's query mode: `extended` (unnamed statements, as drizzle sends them) or `prepared` (named, as the server's hot paths run). */
  mode?: 'extended' | 'prepared';
}): Promise<PgbenchRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-pgbench-'));
  try {
    const scriptFile = path.join(dir, 'script.sql');
    writeFileSync(scriptFile, opts.script);
    const threads = Math.min(opts.threads ?? 2, opts.clients);
    const args = ['-n', '-M', opts.mode ?? 'extended', '-f', scriptFile, '-c', String(opts.clients), '-j', String(threads), '--log', `--log-prefix=${path.join(dir, 'tx')}`];
    if (opts.transactionsPerClient !== undefined) args.push('-t', String(opts.transactionsPerClient));
    else args.push('-T', String(opts.warmSeconds + opts.seconds));
    for (const d of opts.defines ?? []) args.push('-D', d);
    args.push(opts.url);
    const startedAt = Date.now() / 1000;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('pgbench', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`pgbench exited with ${code}:\n${text.slice(-2000)}`))));
    });
    // Log lines: client_id transaction_no latency_us script_no epoch_s epoch_us (the end of the transaction).
    const ends: { at: number; ms: number }[] = [];
    let failed = 0;
    for (const file of readdirSync(dir).filter((f) => f.startsWith('tx'))) {
      for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length < 6) continue;
        if (f[2] === 'failed' || f[2] === 'skipped') {
          failed++;
          continue;
        }
        ends.push({ at: Number(f[4]) + Number(f[5]) / 1e6, ms: Number(f[2]) / 1000 });
      }
    }
    const reportedTps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
    let window = ends;
    let seconds = opts.seconds;
    if (opts.transactionsPerClient === undefined && ends.length > 0) {
      const firstEnd = Math.min(...ends.map((e) => e.at));
      const from = Math.max(startedAt, firstEnd) + opts.warmSeconds;
      window = ends.filter((e) => e.at >= from && e.at < from + opts.seconds);
    } else if (ends.length > 0) {
      seconds = Math.max(...ends.map((e) => e.at)) - Math.min(...ends.map((e) => e.at - e.ms / 1000));
    }
    const summary = summarise(window.map((e) => e.ms));
    return { ...summary, tps: window.length / seconds, reportedTps, failed, total: ends.length };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One target of the RESULT line. */
/** A target in the RESULT line: the harness's one format. */
export type TargetResult = Target;

/** The last line of stdout, read by the orchestrator. */
export function printResult(scenario: string, targets: TargetResult[], details: Record<string, unknown>) {
  printScenarioResult({ scenario, targets, details });
}

/** Rounds for display and JSON. */
export const round = (v: number, digits = 2) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v);

/** A plain table for stderr. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? String(round(c, 1)) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  ')).join('\n');
}
