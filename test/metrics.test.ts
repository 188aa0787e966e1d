/*
 * Issue 8 (part): liveness and readiness probes, and the Prometheus metrics — off by default,
 * behind a token on the main port, or on a separate port — with the series the operations guide
 * lists, read by parsing the exposition format.
 */
import { afterEach, expect, test } from 'vitest';
import { sql } from 'drizzle-orm';
import { startMetricsServer } from '../src/http/metrics-server.js';
import { Notifications } from '../src/core/notify/index.js';
import { loadSecretBox } from '../src/core/secrets/secret-box.js';
import { Webhooks } from '../src/core/webhooks/index.js';
import { buildApp } from '../src/http/app.js';
import { createTestApp, testConfig, type TestApp } from './helpers/app.js';
import { startReceiver } from './helpers/receiver.js';
import { installSchema } from '../src/core/schemas/index.js';

const TOKEN = 'metrics-token-0123456789';
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text exposition format (0.0.4): HELP/TYPE comments and `name{labels} value` lines. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#')) {
      expect(line).toMatch(/^# HELP \S+ .+$/);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `a sample line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    for (const pair of m![2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[pair[1]!] = pair[2]!;
    const raw = m![3]!;
    // Go's ParseFloat, which Prometheus uses, also takes NaN in any case and ±Inf.
    const value = /^[+-]?inf$/i.test(raw) ? (raw.startsWith('-') ? -Infinity : Infinity) : /^nan$/i.test(raw) ? NaN : Number(raw);
    expect(/^nan$/i.test(raw) || !Number.isNaN(value), line).toBe(true);
    samples.push({ name: m![1]!, labels, value });
  }
  return { samples, types };
}

const valueOf = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);

async function scrape(t: TestApp) {
  const res = await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(res.body);
}

test('/livez and /readyz answer 200 on a migrated database; /readyz 503 with a pending migration and when the database is gone', async () => {
  const t = await createTestApp();
  cleanups.push(() => t.close());
  expect((await t.app.inject({ method: 'GET', url: '/livez' })).json()).toEqual({ status: 'ok' });
  expect((await t.app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'ok' });

  await t.database.db.execute(sql`DELETE FROM drizzle.__drizzle_migrations WHERE id = (SELECT max(id) FROM drizzle.__drizzle_migrations)`);
  const pending = await t.app.inject({ method: 'GET', url: '/readyz' });
  expect(pending.statusCode).toBe(503);
  expect(pending.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(pending.json()).toMatchObject({ type: 'urn:task-inbox:problem:not-ready', errors: ['1 database migration(s) pending: run task-inbox migrate'] });
  expect((await t.app.inject({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
});

test('/readyz answers 503 when the database does not answer, /livez still 200', async () => {
  const t = await createTestApp();
  await t.database.close();
  cleanups.push(() => t.app.close().catch(() => undefined));
  const res = await t.app.inject({ method: 'GET', url: '/readyz' });
  expect(res.statusCode).toBe(503);
  expect(res.json().errors[0]).toMatch(/^the database does not answer/);
  expect((await t.app.inject({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
});

test('/metrics is off by default (404), and with METRICS_TOKEN needs the token (401 without or wrong)', async () => {
  const off = await createTestApp();
  cleanups.push(() => off.close());
  const res = await off.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(404);
  expect(res.json().detail).toContain('METRICS_TOKEN');

  const on = await createTestApp({ env: { METRICS_TOKEN: TOKEN } });
  cleanups.push(() => on.close());
  expect((await on.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
  expect((await on.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer wrong-token-0123456789' } })).statusCode).toBe(401);
  expect((await on.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
});

test('the listed series: HTTP latency by route, tasks created, state changes, webhook deliveries with latency, outbox depth and age, notifications', async () => {
  const receiver = await startReceiver();
  cleanups.push(() => receiver.close());
  const t = await createTestApp({ env: { METRICS_TOKEN: TOKEN } });
  cleanups.push(() => t.close());
  await installSchema(t.database, `name: 'acme:async'\nsemver: '1'\ndefault_hook_url: '${receiver.url}'\nhook_mode: async\ntasktypes:\n- name: review\n  resolved_states: ['ok']\n`);
  const secrets = loadSecretBox(t.config);
  const webhooks = new Webhooks({ database: t.database, config: t.config, secrets });
  const notifications = new Notifications({ database: t.database, config: t.config, secrets, baseUrl: () => 'http://inbox.test' });
  cleanups.push(() => notifications.close());
  // A second app on the same database whose webhooks and notifications the test drives.
  const app = await buildApp({ config: testConfig({ METRICS_TOKEN: TOKEN }), database: t.database, webhooks, notifications });
  cleanups.push(() => app.close());
  const before = await scrape(t);

  const created = await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:async', task: 'review' } });
  expect(created.statusCode).toBe(200);
  await t.call({ method: 'POST', url: '/api/v1/tasks/', payload: { schema_name: 'acme:moderation', task: 'delete-acct' } });
  const channel = await t.call({ method: 'POST', url: '/api/v1/me/channels', key: null, cookie: t.adminCookie, payload: { kind: 'webhook', url: `${receiver.url}/notify` } });
  expect(channel.statusCode).toBe(200);

  // Waiting: two new tasks not fanned out yet.
  const waiting = await scrape(t);
  expect(valueOf(waiting.samples, 'task_inbox_outbox_depth', { outbox: 'notifications' })).toBe(2);
  expect(valueOf(waiting.samples, 'task_inbox_outbox_oldest_age_seconds', { outbox: 'notifications' })).toBeGreaterThan(0);

  const id = created.json().task.id as string;
  const changed = await t.call({ method: 'PATCH', url: `/api/v1/tasks/${id}/state?state=ok` });
  expect(changed.statusCode).toBe(200);
  const queued = await scrape(t);
  expect(await t.database.query('SELECT status, mode FROM webhook_deliveries')).toEqual([{ status: 'pending', mode: 'async' }]);
  expect(valueOf(queued.samples, 'task_inbox_outbox_depth', { outbox: 'webhooks' })).toBe(1);
  expect(valueOf(queued.samples, 'task_inbox_outbox_oldest_age_seconds', { outbox: 'webhooks' })).toBeGreaterThanOrEqual(0);

  expect(await webhooks.runDue()).toBe(1);
  for (const batch of await notifications.claimDue(10)) await notifications.deliver(batch);
  const after = await scrape(t);

  const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after.samples, name, labels) - valueOf(before.samples, name, labels);
  expect(after.types.get('task_inbox_http_request_duration_seconds')).toBe('histogram');
  expect(delta('task_inbox_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/tasks/', status: '200' })).toBe(2);
  expect(delta('task_inbox_http_request_duration_seconds_count', { method: 'PATCH', route: '/api/v1/tasks/:id/state', status: '200' })).toBe(1);
  // Routes, not URLs: no series names a task id.
  expect(after.samples.some((s) => s.labels.route?.includes(id))).toBe(false);
  expect(after.types.get('task_inbox_tasks_created_total')).toBe('counter');
  expect(delta('task_inbox_tasks_created_total')).toBe(2);
  expect(delta('task_inbox_task_state_changes_total', { by: 'api-key' })).toBe(1);
  expect(delta('task_inbox_webhook_deliveries_total', { mode: 'async', outcome: 'delivered' })).toBe(1);
  expect(delta('task_inbox_webhook_delivery_duration_seconds_count', { mode: 'async', outcome: 'delivered' })).toBe(1);
  expect(after.types.get('task_inbox_webhook_delivery_duration_seconds')).toBe('histogram');
  // The first task was resolved before the fan-out: only the second one is announced.
  expect(delta('task_inbox_notifications_total', { kind: 'webhook', outcome: 'sent' })).toBe(1);
  expect(valueOf(after.samples, 'task_inbox_outbox_depth', { outbox: 'webhooks' })).toBe(0);
  expect(valueOf(after.samples, 'task_inbox_outbox_depth', { outbox: 'notifications' })).toBe(0);
  expect(valueOf(after.samples, 'task_inbox_outbox_oldest_age_seconds', { outbox: 'notifications' })).toBe(0);
  expect(valueOf(after.samples, 'task_inbox_process_resident_memory_bytes')).toBeGreaterThan(0);
});

test('METRICS_PORT: a separate listener serves GET /metrics without a token, and nothing else', async () => {
  const server = await startMetricsServer('127.0.0.1', 0);
  cleanups.push(() => server.close());
  const res = await fetch(server.url);
  expect(res.status).toBe(200);
  const { types } = parseExposition(await res.text());
  expect(types.get('task_inbox_tasks_created_total')).toBe('counter');
  expect((await fetch(server.url.replace('/metrics', '/health'))).status).toBe(404);
  expect((await fetch(server.url, { method: 'POST' })).status).toBe(404);
});

