#!/usr/bin/env node
// Runs the compiled CLI (npm install builds it into dist/).
import { existsSync } from 'node:fs';
import module from 'node:module';

const entry = new URL('../dist/src/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('task-inbox is not built yet: run `npm install` (or `npm run build`) in its folder first.\n');
  process.exit(1);
}
// Node 22.1 and later keep V8's compiled code of the modules on disk (in the OS temp folder), so
// that later starts skip most of the compiling; Node 20 has no such cache and starts as before.
module.enableCompileCache?.();
await import(entry.href);
