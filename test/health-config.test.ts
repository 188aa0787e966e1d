import { afterAll, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createTestApp, type TestApp } from './helpers/app.js';

const apps: TestApp[] = [];
afterAll(() => Promise.all(apps.map((a) => a.close())));

test('GET /health is public and reports client_ip, health_url, health_url_ext and version', async () => {
  const t = await createTestApp();
  apps.push(t);
  const res = await t.call({ method: 'GET', url: '/health', key: null, headers: { host: 'inbox.local:8080', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.9' } });
  expect(res.statusCode).toBe(200);
  // Without TRUST_PROXY the forwarded headers are ignored.
  expect(res.json()).toMatchObject({ client_ip: '127.0.0.1', health_url: '/health', health_url_ext: 'http://inbox.local:8080/health' });
  expect(res.json().version).toMatch(/^\d+\.\d+\.\d+/);
});

test('with TRUST_PROXY, https, host and client address survive the proxy', async () => {
  const t = await createTestApp({ env: { TRUST_PROXY: 'true' } });
  apps.push(t);
  const res = await t.call({
    method: 'GET',
    url: '/health',
    key: null,
    headers: { host: 'internal:8080', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'inbox.example.org', 'x-forwarded-for': '203.0.113.9' },
  });
  expect(res.json()).toMatchObject({ client_ip: '203.0.113.9', health_url_ext: 'https://inbox.example.org/health' });
});

test('configuration: every bad variable is reported at once', () => {
  let err: unknown;
  try {
    loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud', DB_POOL_SIZE: '0', TRUST_PROXY: 'sometimes', LOG_FORMAT: 'xml', WORKER: 'maybe', EMBEDDED_LOW_MEMORY: 'yes please' });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const problems = (err as ConfigError).problems.join('\n');
  for (const name of ['PORT', 'DATABASE_URL', 'LOG_LEVEL', 'DB_POOL_SIZE', 'TRUST_PROXY', 'LOG_FORMAT']) expect(problems).toContain(name);
  expect(problems).toContain('WORKER="maybe" must be on or off.');
  expect(problems).toContain('EMBEDDED_LOW_MEMORY="yes please" must be on or off.');
});

test('configuration: defaults', () => {
  const c = loadConfig({}, { stdoutIsTty: false });
  expect(c).toMatchObject({ port: 8080, host: '127.0.0.1', databaseUrl: undefined, dbPoolSize: 10, trustProxy: false, logLevel: 'info', logPretty: false, runWorker: true, embeddedLowMemory: false });
  expect(loadConfig({ WORKER: 'OFF', EMBEDDED_LOW_MEMORY: 'on' }, { stdoutIsTty: false })).toMatchObject({ runWorker: false, embeddedLowMemory: true });
  expect(loadConfig({ WORKER: '1', EMBEDDED_LOW_MEMORY: 'false' }, { stdoutIsTty: false })).toMatchObject({ runWorker: true, embeddedLowMemory: false });
  expect(c.dataDir).toMatch(/data$/);
  expect(Object.isFrozen(c)).toBe(true);
});
