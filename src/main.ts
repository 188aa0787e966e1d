import { holdYoungGeneration } from './cli/v8-memory.js';

// The executable's entry: everything else lives in cli/. The young generation is held at its
// first size while the modules load (cli/v8-memory.ts), so they are imported after.
holdYoungGeneration();
const { runCli } = await import('./cli/index.js');

process.exitCode = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  stdin: process.stdin,
  errIsTty: process.stderr.isTTY,
});
