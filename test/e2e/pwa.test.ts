import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { webDistFolder } from '../../src/http/routes/web-app.js';
import { ADMIN, startInbox, type Inbox } from './harness.js';

// The installable app: the manifest and its icons, the service worker, the offline shell, and
// the "new version" prompt when a changed service worker is deployed.

let inbox: Inbox;
beforeAll(async () => {
  inbox = await startInbox();
});
afterAll(async () => inbox?.close());

interface ManifestIcon {
  src: string;
  sizes: string;
  type: string;
  purpose?: string;
}

/** Width and height from a PNG's IHDR chunk (bytes 16–23, right after the signature and chunk header). */
function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'PNG signature').toBe(true);
  expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe('the manifest', () => {
  test('is valid, names the app, starts at /taskui, and has 192 and 512 px icons for any and maskable use', async () => {
    const res = await fetch(`${inbox.url}/manifest.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/(manifest\+)?json/);
    const manifest = (await res.json()) as Record<string, unknown> & { icons: ManifestIcon[] };
    expect(manifest).toMatchObject({ name: 'task-inbox', start_url: '/taskui' });
    expect(typeof manifest.short_name).toBe('string');
    expect((manifest.short_name as string).length).toBeGreaterThan(0);
    expect((manifest.short_name as string).length).toBeLessThanOrEqual(12);
    expect(['standalone', 'fullscreen', 'minimal-ui']).toContain(manifest.display);
    expect(manifest.theme_color).toMatch(/^#[0-9a-f]{6}$/i);
    expect(manifest.background_color).toMatch(/^#[0-9a-f]{6}$/i);

    // The page links it, with the same theme colour.
    const page = await (await fetch(`${inbox.url}/taskui`)).text();
    expect(page).toContain('<link rel="manifest" href="/manifest.json"');
    expect(page).toContain(`<meta name="theme-color" content="${manifest.theme_color as string}"`);

    const purposes = (i: ManifestIcon) => (i.purpose ?? 'any').split(/\s+/);
    for (const size of ['192x192', '512x512']) {
      for (const purpose of ['any', 'maskable']) {
        expect(manifest.icons.some((i) => i.sizes.split(/\s+/).includes(size) && purposes(i).includes(purpose) && i.type === 'image/png'), `a ${size} PNG icon for ${purpose}`).toBe(true);
      }
    }

    for (const icon of manifest.icons) {
      const url = new URL(icon.src, `${inbox.url}/manifest.json`);
      expect(url.origin).toBe(inbox.url);
      const r = await fetch(url);
      expect(r.status, icon.src).toBe(200);
      expect(r.headers.get('content-type'), icon.src).toMatch(/^image\//);
      expect(r.headers.get('content-type')!.split(';')[0]).toBe(icon.type);
      const bytes = Buffer.from(await r.arrayBuffer());
      if (icon.type === 'image/png') {
        const [w, h] = icon.sizes.split('x').map(Number);
        expect(pngSize(bytes), icon.src).toEqual({ width: w, height: h });
      } else {
        expect(bytes.toString('utf8'), icon.src).toContain('<svg');
      }
    }
  });
});

describe('the service worker', () => {
  // One origin that can switch servers: first the inbox (dist/web), then a second app on the
  // same database whose web folder has a changed sw.js, as after a deploy.
  let front: http.Server;
  let frontUrl = '';
  let backend: FastifyInstance;
  let deployed: FastifyInstance | undefined;
  let folder = '';
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    backend = inbox.app;
    front = http.createServer((req, res) => backend.server.emit('request', req, res));
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    context = await inbox.browser.newContext({ baseURL: frontUrl, viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.setDefaultTimeout(10_000);
  });
  afterAll(async () => {
    await context?.close();
    front?.closeAllConnections();
    await new Promise<void>((r) => (front ? front.close(() => r()) : r()));
    await deployed?.close();
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  const cacheNames = () => page.evaluate(() => caches.keys());

  test('registers with scope / and takes control of the page', async () => {
    await page.goto('/taskui');
    await page.getByLabel('Username').fill(ADMIN.username);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();

    const reg = await page.evaluate(async () => {
      const r = await navigator.serviceWorker.ready;
      return { scope: r.scope, script: r.active?.scriptURL };
    });
    expect(reg).toEqual({ scope: `${frontUrl}/`, script: `${frontUrl}/sw.js` });
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);

    // The shell is precached.
    const names = await cacheNames();
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^task-inbox-shell-[0-9a-f]{12}$/);
    const cached = await page.evaluate(async (name) => (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname), names[0]!);
    expect(cached).toContain('/taskui');
    expect(cached).toContain('/manifest.json');
    expect(cached.some((p) => p.startsWith('/assets/') && p.endsWith('.js'))).toBe(true);
  });

  test('offline, a reload still shows the app, saying it is offline; back online it recovers', async () => {
    await context.setOffline(true);
    try {
      const res = await page.reload();
      expect(res?.status()).toBe(200);
      expect(res?.fromServiceWorker()).toBe(true);
      await page.getByRole('heading', { name: 'You are offline' }).waitFor();
      expect(await page.getByRole('status').filter({ hasText: 'You are offline.' }).isVisible()).toBe(true);
      expect(await page.title()).toBe('task-inbox');

      // A deep link too (the server's client-side routes all get the shell).
      const deep = await page.goto('/taskui/tasks/00000000-0000-0000-0000-000000000000?view=all');
      expect(deep?.fromServiceWorker()).toBe(true);
      await page.getByRole('heading', { name: 'You are offline' }).waitFor();
    } finally {
      await context.setOffline(false);
    }
    await page.getByRole('button', { name: 'Try again' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'You are offline.' }).waitFor({ state: 'detached' });
  });

  test('a changed sw.js brings the "new version" prompt; Reload switches to it', async () => {
    // Deploy: the same build with a new service worker version, served on the same origin.
    folder = mkdtempSync(path.join(tmpdir(), 'task-inbox-web-'));
    cpSync(webDistFolder, folder, { recursive: true });
    const swPath = path.join(folder, 'sw.js');
    const oldSw = readFileSync(swPath, 'utf8');
    const oldVersion = /const VERSION = "([0-9a-f]+)"/.exec(oldSw)?.[1];
    expect(oldVersion).toBeTruthy();
    expect(await cacheNames()).toEqual([`task-inbox-shell-${oldVersion}`]);
    const newVersion = `${oldVersion}-next`;
    writeFileSync(swPath, oldSw.replace(`const VERSION = "${oldVersion}"`, `const VERSION = "${newVersion}"`));
    deployed = await buildApp({ config: inbox.config, database: inbox.database, webFolder: folder });
    await deployed.ready();
    backend = deployed;

    // The page checks for an update when it becomes visible again.
    expect(await page.getByText('A new version of task-inbox is ready.').count()).toBe(0);
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    const prompt = page.getByRole('status').filter({ hasText: 'A new version of task-inbox is ready.' });
    await prompt.waitFor({ timeout: 20_000 });
    // The new worker waits; the old one still controls the page.
    const state = await page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration();
      return { waiting: r?.waiting?.state, controller: navigator.serviceWorker.controller?.state };
    });
    expect(state).toEqual({ waiting: 'installed', controller: 'activated' });
    expect((await cacheNames()).sort()).toEqual([`task-inbox-shell-${newVersion}`, `task-inbox-shell-${oldVersion}`].sort());

    // Reload: the waiting worker takes over and the page reloads once, on the new version.
    await page.evaluate(() => ((window as unknown as { beforeUpdate: boolean }).beforeUpdate = true));
    const reloaded = page.waitForEvent('load');
    await prompt.getByRole('button', { name: 'Reload' }).click();
    await reloaded;
    expect(await page.evaluate(() => (window as unknown as { beforeUpdate?: boolean }).beforeUpdate)).toBeUndefined();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(await cacheNames()).toEqual([`task-inbox-shell-${newVersion}`]); // the old shell is gone
    const after = await page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration();
      return { waiting: r?.waiting ?? null, controller: navigator.serviceWorker.controller?.state };
    });
    expect(after).toEqual({ waiting: null, controller: 'activated' });
    expect(await prompt.count()).toBe(0);
  });
});
