import v8 from 'node:v8';

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
