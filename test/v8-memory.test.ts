/*
 * The young generation is held at its first size while a process starts, and grows again once it
 * is ready (src/cli/v8-memory.ts). Run in a fresh node process: the test runner's own young
 * generation grew long ago.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { dbKind } from './helpers/db.js';
import { root } from './helpers/processes.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-v8-memory-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const script = `
import v8 from 'node:v8';
import { holdYoungGeneration, letYoungGenerationGrow } from ${JSON.stringify(pathToFileURL(path.join(root, 'src/cli/v8-memory.ts')).href)};
const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
const keep = [];
// Objects that survive their scavenges, as a start's modules do: what makes V8 grow the young generation.
const allocate = () => { for (let i = 0; i < 400_000; i++) keep.push({ i, s: 'item ' + i, a: [i, i + 1] }); };
if (process.argv[2] === 'hold') holdYoungGeneration();
const first = newSpace();
allocate();
const afterStart = newSpace();
letYoungGenerationGrow();
keep.length = 0;
allocate();
console.log(JSON.stringify({ first, afterStart, afterLoad: newSpace() }));
`;

function run(mode: 'hold' | 'default') {
  const file = path.join(dir, 'young-generation.mts');
  writeFileSync(file, script);
  const out = execFileSync(process.execPath, ['--import', 'tsx', file, mode], { cwd: root, encoding: 'utf8' });
  return JSON.parse(out) as { first: number; afterStart: number; afterLoad: number };
}

test.runIf(dbKind === 'pglite')('held, the young generation keeps its first size through a start; let grow, it grows under load as by default', () => {
  const held = run('hold');
  const byDefault = run('default');
  // Without the hold, the same allocations grow it (so the hold below is what keeps it small).
  expect(byDefault.afterStart).toBeGreaterThanOrEqual(4 * byDefault.first);
  expect(held.afterStart).toBe(held.first);
  // Once let grow, it reaches the size it would have had.
  expect(held.afterLoad).toBeGreaterThanOrEqual(4 * held.first);
  expect(held.afterLoad).toBe(byDefault.afterLoad);
});
