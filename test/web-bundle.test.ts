import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { webDistFolder } from '../src/http/routes/web-app.js';

/** The budget for the JavaScript the inbox's first page loads, gzipped. */
const BUDGET_BYTES = 150 * 1024;

/** The scripts index.html loads: module entries and the chunks it preloads, and what they import statically. */
export function firstPageScripts(folder: string): string[] {
  const html = readFileSync(path.join(folder, 'index.html'), 'utf8');
  const found = new Set<string>();
  const queue = [...html.matchAll(/<script[^>]+src="([^"]+)"/g), ...html.matchAll(/<link[^>]+rel="modulepreload"[^>]+href="([^"]+)"/g)].map((m) => m[1]!);
  while (queue.length > 0) {
    const url = queue.shift()!;
    if (found.has(url)) continue;
    found.add(url);
    const code = readFileSync(path.join(folder, url), 'utf8');
    // Static imports between chunks: `import … from "./x.js"` or `import "./x.js"` (not import()).
    for (const m of code.matchAll(/\bimport\s*(?:[\w*{}\s,$]+from\s*)?["'](\.\/[^"']+\.js)["']/g)) queue.push(path.posix.join(path.posix.dirname(url), m[1]!));
  }
  return [...found];
}

describe('web inbox bundle', () => {
  test('the built inbox exists (npm test builds it first)', () => {
    expect(existsSync(path.join(webDistFolder, 'index.html')), 'run `npm run build:web`').toBe(true);
  });

  test(`the JavaScript the first page loads is at most ${BUDGET_BYTES / 1024} KB gzipped`, () => {
    const scripts = firstPageScripts(webDistFolder);
    expect(scripts.length).toBeGreaterThan(0);
    const sizes = scripts.map((s) => ({ s, gz: gzipSync(readFileSync(path.join(webDistFolder, s)), { level: 9 }).length }));
    const total = sizes.reduce((n, x) => n + x.gz, 0);
    expect(total, `first-page JavaScript: ${sizes.map((x) => `${x.s} ${(x.gz / 1024).toFixed(1)} KB`).join(', ')}`).toBeLessThanOrEqual(BUDGET_BYTES);
    // The measurement itself must see the entry: a real React app is well above 30 KB gzipped.
    expect(total).toBeGreaterThan(30 * 1024);
  });
});
