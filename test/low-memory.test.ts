/*
 * EMBEDDED_LOW_MEMORY=on: the embedded database's WebAssembly stays on V8's baseline compiler
 * (src/cli/v8-memory.ts). Seen from outside through V8's own trace of each function it compiles:
 * a real `serve` doing the same work recompiles hot PostgreSQL functions with TurboFan by default,
 * and never with the switch on. What it saves is measured in bench/memory-start.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { dbKind } from './helpers/db.js';
import { freePort, kill, startProcess, stopProcess, waitForHealth, type Proc } from './helpers/processes.js';

const dirs: string[] = [];
const procs: Proc[] = [];
afterAll(async () => {
  for (const p of procs) await kill(p);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Starts `serve` on a new embedded folder, asks /readyz (a query each) 200 times, stops it; V8's compile trace. */
async function serveAndWork(lowMemory: 'on' | 'off') {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-low-memory-'));
  dirs.push(dir);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const p = startProcess(
    `serve EMBEDDED_LOW_MEMORY=${lowMemory}`,
    ['serve'],
    { TI_DATA_DIR: dir, DATABASE_URL: '', PORT: String(port), HOST: '127.0.0.1', EMBEDDED_LOW_MEMORY: lowMemory },
    { apart: true, nodeArgs: ['--trace-wasm-compilation-times'] },
  );
  procs.push(p);
  await waitForHealth(p, base);
  for (let i = 0; i < 200; i++) expect((await fetch(`${base}/readyz`)).status).toBe(200);
  expect(await stopProcess(p, 'SIGTERM'), p.out()).toEqual({ code: 0, signal: null });
  // "Compiled function 0x…#433 using TurboFan, took …": the module's address, then the function's
  // index. PostgreSQL is the module with by far the most functions compiled; node's own small
  // modules (its CommonJS lexer, compiled before the switch is read) are not counted.
  const byModule = new Map<string, { liftoff: number; turbofan: number }>();
  for (const line of p.stdout().split('\n')) {
    const m = /^Compiled function (0x[0-9a-f]+)#\d+ using (Liftoff|TurboFan)/.exec(line);
    if (!m) continue;
    const counts = byModule.get(m[1]!) ?? { liftoff: 0, turbofan: 0 };
    counts[m[2] === 'Liftoff' ? 'liftoff' : 'turbofan']++;
    byModule.set(m[1]!, counts);
  }
  const postgres = [...byModule.values()].sort((a, b) => b.liftoff + b.turbofan - (a.liftoff + a.turbofan))[0];
  expect(postgres, p.out().slice(0, 2000)).toBeDefined();
  return postgres!;
}

test.runIf(dbKind === 'pglite')('EMBEDDED_LOW_MEMORY=on: no function of the embedded database is recompiled by the optimising compiler', async () => {
  const byDefault = await serveAndWork('off');
  const low = await serveAndWork('on');
  // The same start and requests make V8 recompile hot functions by default…
  expect(byDefault.liftoff).toBeGreaterThan(1000);
  expect(byDefault.turbofan).toBeGreaterThan(0);
  // …and with the switch on every function stays on the baseline compiler.
  expect(low.liftoff).toBeGreaterThan(1000);
  expect(low.turbofan).toBe(0);
}, 120_000);
