import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { createApiKey } from '../../src/core/keys/index.js';
import { createUser } from '../../src/core/people/index.js';
import { cliActor } from '../../src/core/audit/audit.js';
import { installSchema } from '../../src/core/schemas/index.js';
import type { Database } from '../../src/db/index.js';
import { buildApp } from '../../src/http/app.js';
import { createTestDatabase } from '../helpers/db.js';
import { sampleSchema, testConfig } from '../helpers/app.js';
import type { Config } from '../../src/config.js';

/** Debian's Chromium, driven by playwright-core (no browser download). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

export const ADMIN = { username: 'admin', password: 'admin-password-1', name: 'Ada Admin' };
export const MEMBER = { username: 'mia', password: 'member-password-1', name: 'Mia Member' };

export interface Inbox {
  /** `http://127.0.0.1:<port>`: a real server listening on loopback, with the built web inbox. */
  url: string;
  app: FastifyInstance;
  database: Database;
  config: Config;
  /** A live API key with no schema limit. */
  apiKey: string;
  browser: Browser;
  /** A fresh browser context (its own cookies) and page; `signIn` signs in through the form. */
  newPage(opts?: { signIn?: { username: string; password: string }; viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark' }): Promise<{ page: Page; context: BrowserContext }>;
  /** POST /api/v1/tasks/ with the API key, as an application server does. */
  postTask(body: { schema_name?: string; task: string; state?: string | null; meta?: Record<string, unknown> | null }): Promise<{ task: { id: string } }>;
  close(): Promise<void>;
}

/**
 * A real inbox for browser tests: the server on a fresh database (the sample schema
 * `acme:moderation`, an admin and a member, no tasks unless `setup` is false and none of that
 * exists), listening on a free loopback port, and a headless Chromium.
 */
export async function startInbox(opts: { seed?: boolean; env?: Record<string, string> } = {}): Promise<Inbox> {
  const { database } = await createTestDatabase();
  const config = testConfig(opts.env);
  let apiKey = '';
  if (opts.seed !== false) {
    await installSchema(database, sampleSchema);
    apiKey = (await createApiKey(database, { name: 'e2e' })).key;
    await createUser(database, cliActor, { ...ADMIN, role: 'admin' });
    await createUser(database, cliActor, { ...MEMBER, role: 'member' });
  }
  const app = await buildApp({ config, database });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const contexts: BrowserContext[] = [];

  return {
    url,
    app,
    database,
    config,
    apiKey,
    browser,
    async newPage(o = {}) {
      const context = await browser.newContext({ viewport: o.viewport ?? { width: 1280, height: 800 }, colorScheme: o.colorScheme ?? 'light', baseURL: url });
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      if (o.signIn) {
        await page.goto('/taskui');
        await page.getByLabel('Username').fill(o.signIn.username);
        await page.getByLabel('Password').fill(o.signIn.password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('navigation', { name: 'Main' }).waitFor();
      }
      return { page, context };
    },
    async postTask(body) {
      const res = await fetch(`${url}/api/v1/tasks/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'api-key': apiKey },
        body: JSON.stringify({ schema_name: 'acme:moderation', ...body }),
      });
      if (!res.ok) throw new Error(`POST /api/v1/tasks/ answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as { task: { id: string } };
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {});
      await browser.close();
      await app.close();
      await database.close();
    },
  };
}

/** Runs axe-core in the page and returns the serious and critical violations (empty when clean). */
export async function seriousA11yViolations(page: Page): Promise<{ id: string; impact: string; help: string; nodes: string[] }[]> {
  const { createRequire } = await import('node:module');
  const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
  const { readFileSync } = await import('node:fs');
  // Evaluated through the DevTools protocol, so the page's Content-Security-Policy stays on.
  await page.evaluate(readFileSync(axePath, 'utf8'));
  const result = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
    return axe.run(document, { resultTypes: ['violations'] });
  });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
}
