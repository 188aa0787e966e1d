import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createSecretBox, loadSecretBox } from '../src/core/secrets/secret-box.js';
import { retryDelay } from '../src/core/webhooks/webhooks.js';
import { dbKind } from './helpers/db.js';

// Secrets at rest (issue 3): AES-256-GCM under a key derived from SECRET_KEY, or from a secret
// generated in the embedded data folder with mode 0600. Database-independent: runs once.
test.runIf(dbKind === 'pglite')('a sealed secret opens only with the same SECRET_KEY and is not the plain text', () => {
  const box = createSecretBox('a'.repeat(32));
  const sealed = box.encrypt('whsec_secret-value');
  expect(sealed).toMatch(/^v1:/);
  expect(sealed).not.toContain('secret-value');
  expect(box.encrypt('whsec_secret-value')).not.toBe(sealed); // a fresh IV each time
  expect(box.decrypt(sealed)).toBe('whsec_secret-value');
  expect(() => createSecretBox('b'.repeat(32)).decrypt(sealed)).toThrow();
  const raw = Buffer.from(sealed.slice(3), 'base64');
  raw[raw.length - 1]! ^= 1;
  expect(() => box.decrypt(`v1:${raw.toString('base64')}`)).toThrow();
});

test.runIf(dbKind === 'pglite')('embedded mode generates its secret once, in the data folder, mode 0600', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-secret-'));
  try {
    const config = loadConfig({ TI_DATA_DIR: dir }, { stdoutIsTty: false });
    const sealed = loadSecretBox(config).encrypt('x');
    const file = path.join(dir, 'secret.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadSecretBox(config).decrypt(sealed)).toBe('x');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.runIf(dbKind === 'pglite')('PostgreSQL without SECRET_KEY is a configuration error', () => {
  expect(() => loadConfig({ DATABASE_URL: 'postgres://x@localhost/db' })).toThrow(/SECRET_KEY is required with DATABASE_URL/);
});

test.runIf(dbKind === 'pglite')('retry delays follow the schedule with ±20 % jitter, honour Retry-After, and end', () => {
  const schedule = [5_000, 300_000];
  expect(retryDelay(schedule, 1, null, () => 0)).toBe(4_000);
  expect(retryDelay(schedule, 1, null, () => 1)).toBe(6_000);
  expect(retryDelay(schedule, 2, null, () => 0.5)).toBe(300_000);
  expect(retryDelay(schedule, 1, 60_000, () => 0.5)).toBe(60_000);
  expect(retryDelay(schedule, 3, null)).toBeNull();
  const defaults = loadConfig({}, { stdoutIsTty: false }).webhookRetrySchedule;
  expect(defaults).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
});
