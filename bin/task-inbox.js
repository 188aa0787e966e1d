#!/usr/bin/env node
// Runs the compiled CLI (npm install builds it into dist/).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('task-inbox is not built yet: run `npm install` (or `npm run build`) in its folder first.\n');
  process.exit(1);
}
await import(entry.href);
