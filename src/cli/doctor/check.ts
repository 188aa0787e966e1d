/** One line of the doctor's report. */
export interface CheckResult {
  /** Stable name for `--json`: node, config, database, migrations, secret-key, vapid, vapid-subject, public-url, proxy, smtp, hook. */
  id: string;
  /** ok ✓, warn ! (worth knowing, not a failure), fail ✗ (exit code 1), skip - (could not be checked). */
  status: 'ok' | 'warn' | 'fail' | 'skip';
  /** What was checked and what was found, one line. */
  title: string;
  /** With fail: what to do. With warn: the hint. With skip: why. May span lines. */
  fix?: string;
  /** Details for `--json` (the URL, the schemas, the pending migrations …). */
  data?: Record<string, unknown>;
}

export const ok = (id: string, title: string, data?: Record<string, unknown>): CheckResult => ({ id, status: 'ok', title, ...(data ? { data } : {}) });

export const warn = (id: string, title: string, hint: string, data?: Record<string, unknown>): CheckResult => ({ id, status: 'warn', title, fix: hint, ...(data ? { data } : {}) });

export const fail = (id: string, title: string, fix: string, data?: Record<string, unknown>): CheckResult => ({ id, status: 'fail', title, fix, ...(data ? { data } : {}) });

export const skip = (id: string, title: string, why: string): CheckResult => ({ id, status: 'skip', title, fix: why });

/** The message of anything thrown, with a system error's code in front when the message lacks it. */
export function messageOf(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown[] };
  // Node reports a refused connection to every address of a name as an AggregateError without a message.
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : Array.isArray(e?.errors) ? messageOf(e.errors[0]) : String(err);
  return typeof e?.code === 'string' && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}

/**
 * Runs one check so that nothing it does can crash the doctor or make it wait past `ms` (when
 * given): a throw becomes a ✗ with the message, a timeout a ✗ saying so.
 */
export async function guarded(id: string, what: string, ms: number | undefined, run: () => Promise<CheckResult[]>): Promise<CheckResult[]> {
  const outcome = run().catch((err: unknown) => [fail(id, `${what}: ${messageOf(err)}`, 'This check failed unexpectedly; the message above says why.')]);
  if (ms === undefined) return outcome;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult[]>((resolve) => {
    timer = setTimeout(() => resolve([fail(id, `${what}: no result within ${ms / 1000} s`, 'Run the doctor again; if it keeps timing out, this is the problem to look into.')]), ms);
  });
  try {
    return await Promise.race([outcome, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping the order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** A URL fit for printing: its password replaced by ***. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
