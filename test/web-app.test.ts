/*
 * The built web inbox served by the API server (src/http/routes/web-app.ts), from a folder made
 * here rather than the real build: the page at its client-side routes with a strict policy,
 * hashed assets cached for good and gzipped, other files revalidated, and a clear answer when
 * the inbox was not built.
 */
import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Database } from '../src/db/index.js';
import { buildApp } from '../src/http/app.js';
import { testConfig } from './helpers/app.js';
import { createTestDatabase } from './helpers/db.js';

const INDEX = '<!doctype html><html lang="en"><head><script type="module" src="/assets/app-abc123.js"></script></head><body><div id="root"></div></body></html>';
// Over 2 KB, so it is stored gzipped too.
const APP_JS = `export const routes = ${JSON.stringify(Array.from({ length: 200 }, (_, i) => `/taskui/route-${i}`))};\nconsole.log(routes.length);\n`;
const SMALL_CSS = 'body{margin:0}';
const MANIFEST = JSON.stringify({ name: 'task-inbox', start_url: '/taskui', display: 'standalone' });
const SW = "self.addEventListener('fetch', () => {});\n";

/** Writes `files` (path → content) into a new temporary folder. */
function folderWith(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ti-web-'));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

let database: Database;
const folders: string[] = [];
const apps: FastifyInstance[] = [];

async function appServing(folder: string): Promise<FastifyInstance> {
  const app = await buildApp({ config: testConfig(), database, webFolder: folder });
  await app.ready();
  apps.push(app);
  return app;
}

beforeAll(async () => {
  ({ database } = await createTestDatabase());
});
afterAll(async () => {
  for (const app of apps) await app.close();
  await database.close();
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

describe('a built web inbox', () => {
  let app: FastifyInstance;
  const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

  beforeAll(async () => {
    const folder = folderWith({
      'index.html': INDEX,
      'assets/app-abc123.js': APP_JS,
      'assets/small-def456.css': SMALL_CSS,
      'manifest.json': MANIFEST,
      'sw.js': SW,
    });
    folders.push(folder);
    // The assets are bigger than the gzip threshold and smaller, as the tests assume.
    expect(Buffer.byteLength(APP_JS)).toBeGreaterThan(2048);
    app = await appServing(folder);
  });

  test('the page at /, /taskui and its client-side routes, and /setup, with a strict policy and no caching', async () => {
    for (const url of ['/', '/taskui', '/taskui/', `/taskui/tasks/${randomUUID()}`, '/taskui/settings/sessions', '/setup', '/setup?token=abc']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toBe('text/html; charset=utf-8');
      expect(res.body, url).toBe(INDEX);
      const csp = String(res.headers['content-security-policy']);
      expect(csp, url).toContain("script-src 'self'");
      expect(csp, url).toContain("frame-ancestors 'none'");
      expect(csp, url).toContain("object-src 'none'");
      expect(csp, url).not.toContain('unsafe-inline');
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      expect(res.headers['x-frame-options'], url).toBe('DENY');
      expect(res.headers['cache-control'], url).toBe('no-cache');
    }
  });

  test('the page is public: no session or key is needed', async () => {
    const res = await app.inject({ method: 'GET', url: '/taskui' });
    expect(res.statusCode).toBe(200);
  });

  test('a hashed asset: cached for good, gzipped when the browser accepts it', async () => {
    const plain = await get('/assets/app-abc123.js');
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(plain.headers['cache-control']).toMatch(/\bimmutable\b/);
    expect(plain.headers['cache-control']).toMatch(/\bmax-age=31536000\b/);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body).toBe(APP_JS);
    expect(plain.headers['x-content-type-options']).toBe('nosniff');
    expect(String(plain.headers.vary)).toMatch(/accept-encoding/i);

    const zipped = await get('/assets/app-abc123.js', { 'accept-encoding': 'br, gzip, deflate' });
    expect(zipped.statusCode).toBe(200);
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.rawPayload.length).toBeLessThan(Buffer.byteLength(APP_JS));
    expect(gunzipSync(zipped.rawPayload).toString('utf8')).toBe(APP_JS);
  });

  test('ETag: the same tag again → 304 without a body; another tag → the file', async () => {
    const first = await get('/assets/app-abc123.js');
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^"[^"]+"$/);
    const again = await get('/assets/app-abc123.js', { 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const other = await get('/assets/app-abc123.js', { 'if-none-match': '"something-else"' });
    expect(other.statusCode).toBe(200);
    expect(other.body).toBe(APP_JS);
    // The page has its own tag, which changes with its content.
    const page = await get('/taskui');
    expect(page.headers.etag).toMatch(/^"[^"]+"$/);
    expect(page.headers.etag).not.toBe(etag);
    expect((await get('/taskui', { 'if-none-match': String(page.headers.etag) })).statusCode).toBe(304);
  });

  test('a small asset is not gzipped', async () => {
    const res = await get('/assets/small-def456.css', { 'accept-encoding': 'gzip' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body).toBe(SMALL_CSS);
  });

  test('a missing asset → 404 problem, not the page', async () => {
    for (const url of ['/assets/missing.js', '/assets/app-abc123.js.map', '/assets/../index.html', '/assets/..%2f..%2fpackage.json']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
      expect(res.body, url).not.toContain('<div id="root">');
    }
  });

  test('manifest.json and sw.js: their types, revalidated on every use', async () => {
    const manifest = await get('/manifest.json');
    expect(manifest.statusCode).toBe(200);
    expect(manifest.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(manifest.headers['cache-control']).toBe('no-cache');
    expect(manifest.json()).toEqual(JSON.parse(MANIFEST));

    const sw = await get('/sw.js');
    expect(sw.statusCode).toBe(200);
    expect(sw.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(sw.headers['cache-control']).toBe('no-cache');
    expect(sw.body).toBe(SW);
  });

  test('the API is untouched: unknown API paths and other paths answer problem+json 404', async () => {
    for (const url of ['/api/v1/nope', '/api/v1/tasks/x/y/z', '/nope']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
      expect(res.json(), url).toMatchObject({ status: 404, type: 'urn:task-inbox:problem:not-found' });
    }
    const health = await get('/health');
    expect(health.statusCode).toBe(200);
    expect(health.headers['content-type']).toMatch(/^application\/json/);
  });
});

describe('a web inbox that was not built', () => {
  test('the page answers 503 telling to run `npm run build`; the API still works', async () => {
    const folder = folderWith({ 'assets/app-abc123.js': APP_JS, 'sw.js': SW }); // no index.html
    folders.push(folder);
    const app = await appServing(folder);
    for (const url of ['/taskui', '/', '/setup', `/taskui/tasks/${randomUUID()}`]) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(503);
      expect(res.headers['content-type'], url).toMatch(/^text\/html/);
      expect(res.body, url).toContain('npm run build');
    }
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/nope' })).statusCode).toBe(404);
  });

  test('a folder that does not exist is the same as one not built', async () => {
    const app = await appServing(path.join(os.tmpdir(), `ti-web-missing-${randomUUID()}`));
    const res = await app.inject({ method: 'GET', url: '/taskui' });
    expect(res.statusCode).toBe(503);
    expect(res.body).toContain('npm run build');
  });
});
