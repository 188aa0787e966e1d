import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createApiKey, listApiKeys, revokeApiKey } from '../src/core/keys/index.js';
import { AppError } from '../src/errors.js';
import { createTestApp, type TestApp } from './helpers/app.js';

// Issue 2: API keys — format, storage, schema limit, revocation, last use.
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

test('a key is ti_ plus at least 128 URL-safe random bits', async () => {
  const { key } = await createApiKey(t.database, { name: 'fmt' });
  expect(key).toMatch(/^ti_[A-Za-z0-9_-]+$/);
  expect(Buffer.from(key.slice(3), 'base64url').length).toBeGreaterThanOrEqual(16);
  const short = await createApiKey(t.database, { keyBytes: 16 });
  expect(Buffer.from(short.key.slice(3), 'base64url').length).toBe(16);
  await expect(createApiKey(t.database, { keyBytes: 15 })).rejects.toBeInstanceOf(AppError);
});

test('keys are not stored in plain text: only their SHA-256', async () => {
  const { key, id } = await createApiKey(t.database, { name: 'stored' });
  const rows = await t.database.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [id]);
  const stored = JSON.stringify(rows);
  expect(stored).not.toContain(key);
  expect(stored).not.toContain(key.slice(3));
  expect(rows[0]!.key_hash).toBe(createHash('sha256').update(key).digest('hex'));
  const all = JSON.stringify(await t.database.query('SELECT * FROM api_keys'));
  expect(all).not.toContain(t.key);
});

test('a schema limit must name an installed schema', async () => {
  await expect(createApiKey(t.database, { schemaName: 'missing' })).rejects.toMatchObject({ code: 'schema-not-found' });
});

test('last use is recorded', async () => {
  const { key, id } = await createApiKey(t.database, { name: 'used' });
  expect((await listApiKeys(t.database)).find((k) => k.id === id)!.last_used).toBeNull();
  await t.call({ method: 'GET', url: '/api/v1/tasks/', key });
  expect((await listApiKeys(t.database)).find((k) => k.id === id)!.last_used).not.toBeNull();
});

test('revoking by name, prefix or id; an ambiguous or unknown reference is refused', async () => {
  const a = await createApiKey(t.database, { name: 'twin' });
  await createApiKey(t.database, { name: 'twin' });
  await expect(revokeApiKey(t.database, 'twin')).rejects.toMatchObject({ code: 'bad-request' });
  await expect(revokeApiKey(t.database, 'nobody')).rejects.toMatchObject({ code: 'not-found' });
  const revoked = await revokeApiKey(t.database, a.prefix);
  expect(revoked.revoked).not.toBeNull();
  expect((await t.call({ method: 'GET', url: '/api/v1/tasks/', key: a.key })).statusCode).toBe(403);
});
