import v8 from 'node:v8';
import type { Config } from '../config.js';

/*
 * The young generation keeps its first size while a process starts (issue 9: idle memory).
 *
 * What a start allocates is either kept for the life of the process (modules, compiled schemas,
 * the embedded database's file system) or garbage at once. V8 sized its young generation for
 * that burst (up to 16 MB per semi-space), and an idle server then kept ~30 MB resident that it
 * did not use until V8's memory reducer ran, 15–30 s later. Held at its first size through the
 * start, the young generation grows again, V8's way, once the process is ready and load asks
 * for it. Changed at run time (V8 reads the factor at each growth), so it holds however the
 * process is started: `task-inbox serve`, `npm start`, the container image.
 */

/** Keeps the young generation at its first size until `letYoungGenerationGrow`. */
export function holdYoungGeneration() {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** V8's default: the young generation doubles when enough of it survives a scavenge. */
export function letYoungGenerationGrow() {
  v8.setFlagsFromString('--semi-space-growth-factor=2');
}

/*
 * EMBEDDED_LOW_MEMORY=on: PostgreSQL's WebAssembly stays on V8's baseline compiler (Liftoff).
 * By default V8 recompiles its hot functions with its optimising compiler on background threads;
 * the memory those compilations take stays in the threads' malloc arenas for the life of the
 * process (50–80 MB on a 2-core machine, from the first requests on). Without them the embedded
 * database runs its statements about 20 % slower (docs/benchmarks.md). Set before PGlite compiles:
 * V8 decides a module's compilers when it compiles it.
 */
export function applyEmbeddedLowMemory(config: Pick<Config, 'databaseUrl' | 'embeddedLowMemory'>) {
  if (!config.databaseUrl && config.embeddedLowMemory) v8.setFlagsFromString('--liftoff-only');
}
