import type { CheckResult } from './check.js';

const marks: Record<CheckResult['status'], string> = { ok: '✓', warn: '!', fail: '✗', skip: '-' };

/**
 * One line per check: `✓ what`, or `✗ what` / `! what` followed by the fix or hint, indented;
 * `- what (why)` for a check that could not run. Then a one-line summary.
 */
export function formatReport(results: CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    if (r.status === 'skip') {
      lines.push(`${marks.skip} ${r.title}${r.fix ? ` (${r.fix})` : ''}`);
      continue;
    }
    lines.push(`${marks[r.status]} ${r.title}`);
    if (r.fix && r.status !== 'ok') for (const line of r.fix.split('\n')) lines.push(`    ${line}`);
  }
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  lines.push('', failed === 0 && warned === 0 ? 'No problems found.' : `${plural(failed, 'problem')}, ${plural(warned, 'warning')}.`);
  return lines.join('\n') + '\n';
}

/** The same, for scripts: `ok` is false exactly when the exit code is 1. */
export function reportJson(results: CheckResult[]): string {
  const okay = results.every((r) => r.status !== 'fail');
  return JSON.stringify({ ok: okay, checks: results }, null, 2) + '\n';
}
