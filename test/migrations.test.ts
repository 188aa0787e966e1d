import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { dbKind } from './helpers/db.js';

// The SQL migrations are generated from src/db/tables.ts; a table change without `npm run
// db:generate` would leave them behind. Independent of the database, so it runs once.
test.skipIf(dbKind !== 'pglite')('migrations/ is up to date with src/db/tables.ts', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-migrations-'));
  try {
    cpSync('migrations', dir, { recursive: true });
    const before = readdirSync(dir).sort();
    execFileSync(process.execPath, ['node_modules/drizzle-kit/bin.cjs', 'generate', '--dialect', 'postgresql', '--schema', 'src/db/tables.ts', '--out', dir], {
      stdio: 'pipe',
    });
    expect(readdirSync(dir).sort()).toEqual(before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
