import { runCli } from './cli/index.js';

// The executable's entry: everything else lives in cli/.
process.exitCode = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  stdin: process.stdin,
  errIsTty: process.stderr.isTTY,
});
