import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AuthRule } from '../src/http/auth.js';
import { formatOpenApiDocument, openApiPath } from '../src/http/openapi.js';
import { generateOpenApiDocument, OPENAPI_FILE } from '../src/http/openapi-file.js';
import { packageRoot } from '../src/paths.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { dbKind } from './helpers/db.js';

// The OpenAPI document: generated from the routes, committed as docs/openapi.json, linted, and
// shown at /docs. It does not depend on the database, so this runs on PGlite only.

type Json = Record<string, any>;
const METHODS = ['get', 'put', 'post', 'patch', 'delete'];
const SECURITY: Record<AuthRule, Json[]> = {
  public: [],
  'api-key': [{ apiKey: [] }],
  member: [{ sessionCookie: [] }],
  admin: [{ sessionCookie: ['admin'] }],
  'member-or-api-key': [{ sessionCookie: [] }, { apiKey: [] }],
};
/** Routes that are the API; everything else (the web inbox's files, /docs, /openapi.json) stays out of the document. */
// The earlier version's web push routes (SPEC §2.7) live outside /api/ but are API all the same.
const isApi = (url: string) => url.startsWith('/api/') || url.startsWith('/push/') || ['/health', '/livez', '/readyz'].includes(url);

describe.skipIf(dbKind !== 'pglite')('OpenAPI', () => {
  let t: TestApp;
  let generated: string;
  let doc: Json;
  beforeAll(async () => {
    generated = formatOpenApiDocument(await generateOpenApiDocument());
    doc = JSON.parse(generated);
    t = await createTestApp();
  });
  afterAll(() => t?.close());

  const operations = () =>
    Object.entries(doc.paths as Record<string, Json>).flatMap(([p, item]) =>
      Object.entries(item)
        .filter(([m]) => METHODS.includes(m))
        .map(([method, op]) => ({ where: `${method.toUpperCase()} ${p}`, op: op as Json })),
    );

  test('docs/openapi.json is the document the server generates', () => {
    const committed = readFileSync(OPENAPI_FILE, 'utf8');
    if (committed !== generated) {
      const a = committed.split('\n');
      const b = generated.split('\n');
      const line = a.findIndex((l, i) => l !== b[i]);
      expect.fail(
        `docs/openapi.json is out of date (first difference at line ${line + 1}: ${JSON.stringify(a[line])} ≠ ${JSON.stringify(b[line])}). ` +
          'Run `npm run openapi` and commit docs/openapi.json.',
      );
    }
  });

  test('GET /openapi.json serves it to anyone, as JSON', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual(doc);
  });

  test('OpenAPI 3.1 with info, a relative server, tags and the two security schemes', () => {
    const pkg = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8'));
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(doc.info).toMatchObject({ title: 'task-inbox', version: pkg.version });
    expect(doc.info.description).toContain('application/problem+json');
    for (const server of doc.servers ?? []) expect(server.url).toMatch(/^\//);
    expect(doc.tags.map((tag: Json) => tag.name)).toEqual(['tasks', 'webhooks', 'notifications', 'people', 'admin', 'health']);
    expect(doc.components.securitySchemes).toEqual({
      apiKey: expect.objectContaining({ type: 'apiKey', in: 'header', name: 'api-key' }),
      sessionCookie: expect.objectContaining({ type: 'apiKey', in: 'cookie', name: 'ti_session' }),
    });
  });

  test('every API route is an operation whose security follows its auth rule; nothing else is', () => {
    const documented = new Set(operations().map((o) => o.where));
    const expected = new Set<string>();
    for (const route of t.app.routeRules) {
      const where = `${route.method} ${openApiPath(route.url)}`;
      if (!isApi(route.url)) {
        expect(documented.has(where), `${where} is not part of the API`).toBe(false);
        continue;
      }
      expected.add(where);
      const op = doc.paths[openApiPath(route.url)]?.[route.method.toLowerCase()];
      expect(op, `${where} is missing from the document`).toBeDefined();
      expect(op.security, `${where} (${route.auth})`).toEqual(SECURITY[route.auth]);
    }
    expect([...documented].sort()).toEqual([...expected].sort());
  });

  test('operations have a unique camelCase operationId, a summary and a declared tag', () => {
    const tags = new Set(doc.tags.map((tag: Json) => tag.name));
    const ids = new Set<string>();
    for (const { where, op } of operations()) {
      expect(op.operationId, where).toMatch(/^[a-z][A-Za-z0-9]*$/);
      expect(ids.has(op.operationId), `${where}: operationId ${op.operationId} is used twice`).toBe(false);
      ids.add(op.operationId);
      expect(op.summary, `${where} has no summary: add it to OPERATIONS in src/http/openapi-operations.ts (or as schema.summary)`).toBeTruthy();
      expect(op.tags, where).toHaveLength(1);
      expect(tags.has(op.tags[0]), `${where}: tag ${op.tags[0]}`).toBe(true);
    }
    expect(ids.size).toBeGreaterThan(30);
  });

  test('answers: JSON for success, application/problem+json with the Problem schema for every error', () => {
    for (const { where, op } of operations()) {
      const statuses = Object.keys(op.responses);
      expect(statuses.some((s) => s.startsWith('2')), `${where} has a 2xx answer`).toBe(true);
      for (const status of statuses) {
        const response = op.responses[status];
        expect(response.description, `${where} ${status}`).toBeTruthy();
        if (Number(status) >= 400) {
          expect(response.content, `${where} ${status}`).toEqual({ 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } });
        } else if (where !== 'GET /api/v1/events') {
          expect(Object.keys(response.content), `${where} ${status}`).toEqual(['application/json']);
        }
      }
    }
  });

  test('the main contract objects are named components, and referred to by name', () => {
    const schemas = doc.components.schemas;
    for (const name of ['Task', 'TaskType', 'HistoryEntry', 'Problem', 'WebhookPayload', 'WebhookDelivery', 'User', 'Session', 'ApiKeyInfo']) {
      expect(schemas[name], name).toBeDefined();
    }
    expect(schemas.Task.required).toEqual(expect.arrayContaining(['id', 'created', 'ttype_id', 'state', 'user_id', 'resolved']));
    expect(schemas.Task.properties.created).toMatchObject({ type: 'string', format: 'date-time' });
    // Answers may gain fields (SPEC §2.4): clients must not be told to refuse unknown ones.
    expect(JSON.stringify(doc)).not.toContain('"additionalProperties":false');
    const created = doc.paths['/api/v1/tasks'].post.responses['200'].content['application/json'].schema;
    expect(created.properties.task).toEqual({ $ref: '#/components/schemas/Task' });
    expect(schemas.WebhookPayload.properties.task).toEqual({ $ref: '#/components/schemas/Task' });
    // Only what something refers to: no unused input twins.
    const text = JSON.stringify({ paths: doc.paths, webhooks: doc.webhooks, schemas });
    for (const name of Object.keys(schemas)) expect(text, `${name} is used`).toContain(`"#/components/schemas/${name}"`);
  });

  test('webhooks: task.state_changed is POSTed with the WebhookPayload body and the Standard Webhooks headers', () => {
    const post = doc.webhooks['task.state_changed'].post;
    expect(post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/WebhookPayload' });
    const headers = Object.fromEntries(post.parameters.map((p: Json) => [p.name, p]));
    expect(Object.keys(headers)).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    for (const h of Object.values(headers)) expect(h.in).toBe('header');
    expect([headers['webhook-id'].required, headers['webhook-timestamp'].required, headers['webhook-signature'].required]).toEqual([true, true, false]);
    expect(Object.keys(post.responses)).toContain('2XX');
  });

  test('the live event stream is documented as text/event-stream; the idempotency header and query parameters are there', () => {
    const events = doc.paths['/api/v1/events'].get;
    expect(Object.keys(events.responses['200'].content)).toEqual(['text/event-stream']);
    const create = doc.paths['/api/v1/tasks'].post;
    expect(create.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false })]));
    const list = doc.paths['/api/v1/tasks'].get.parameters.map((p: Json) => `${p.in}:${p.name}`);
    expect(list).toEqual(expect.arrayContaining(['query:resolved', 'query:q', 'query:order', 'query:limit', 'query:cursor']));
    expect(doc.paths['/api/v1/tasks/{id}'].get.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'path', name: 'id', required: true })]));
  });

  test('GET /docs: the reference, public, from files served here, under a strict Content-Security-Policy', async () => {
    const page = await t.app.inject({ method: 'GET', url: '/docs' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(page.body).not.toMatch(/<script>|<style|\sstyle=|\son\w+=/); // nothing inline
    const urls = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(urls.length).toBe(4);
    for (const url of urls) {
      expect(url, 'served by this server').toMatch(/^\/docs\//);
      const res = await t.app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'gzip' } });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toMatch(url.endsWith('.css') ? /^text\/css/ : url.endsWith('.png') ? /^image\/png/ : /^text\/javascript/);
    }
    const start = await t.app.inject({ method: 'GET', url: '/docs/reference.js' });
    expect(start.body).toContain("url: '/openapi.json'");
    expect(start.body).toContain('validatorUrl: null');
  });

  test('the document passes Redocly’s recommended lint rules (redocly.yaml): no errors, no warnings', async () => {
    const cli = path.join(path.dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin', 'cli.js');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [cli, 'lint', path.relative(packageRoot, OPENAPI_FILE), '--format=json', '--config', 'redocly.yaml'],
      // Nothing leaves this machine: no usage data, no update check.
      { cwd: packageRoot, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', REDOCLY_SUPPRESS_NOTIFICATIONS: 'true' } },
    ).catch((err: { stdout?: string; stderr?: string }) => {
      if (!err.stdout) throw err; // lint exits 1 on errors, with its report on stdout
      return { stdout: err.stdout };
    });
    const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };
    const problems = report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
    expect(problems, 'npx redocly lint docs/openapi.json').toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  });
});
