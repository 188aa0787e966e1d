import { existsSync } from 'node:fs';
import pg from 'pg';
import { defineConfig } from 'vitest/config';

/*
 * The whole suite runs twice: on PGlite (always) and on PostgreSQL. Without a reachable
 * PostgreSQL the second run is skipped with a message, except in CI, where it must run.
 */
const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export default defineConfig(async () => {
  const withPostgres = await postgresReachable();
  if (!withPostgres) {
    const msg = `PostgreSQL is not reachable at ${adminUrl.replace(/:[^:@/]*@/, ':***@')}`;
    if (process.env.CI) throw new Error(`${msg}: CI must run the suite on PostgreSQL too.`);
    console.warn(`\n  ⚠ ${msg}: the PostgreSQL runs are SKIPPED; only PGlite runs.\n    Set TEST_DATABASE_URL to run them.\n`);
  }
  const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  const withBrowser = existsSync(chromium);
  if (!withBrowser) {
    const msg = `Chromium is not installed at ${chromium}`;
    if (process.env.CI) throw new Error(`${msg}: CI must run the browser tests (.ci/run installs it).`);
    console.warn(`\n  ⚠ ${msg}: the browser tests are SKIPPED.\n    Install it with: apt-get install chromium (or set CHROMIUM_PATH).\n`);
  }
  const project = (name: 'pglite' | 'postgres') => ({
    extends: true as const,
    test: { name, include: ['test/*.test.ts'], env: { TEST_DB: name, TEST_DATABASE_URL: adminUrl } },
  });
  // The web inbox in headless Chromium, against a server on the embedded database (the API
  // tests above cover both databases).
  const browser = {
    extends: true as const,
    test: { name: 'browser', include: ['test/e2e/**/*.test.ts'], env: { TEST_DB: 'pglite', TEST_DATABASE_URL: adminUrl } },
  };
  return {
    test: {
      globalSetup: ['test/global-setup.ts'],
      projects: [project('pglite'), ...(withPostgres ? [project('postgres')] : []), ...(withBrowser ? [browser] : [])],
      pool: 'forks',
      maxWorkers: 2,
      testTimeout: 60_000,
      hookTimeout: 60_000,
      // `expect.poll` gives up after 1 s by default: too short for a page on a busy two-core machine.
      // A test that needs a tighter bound says so itself.
      expect: { poll: { timeout: 10_000 } },
    },
  };
});
