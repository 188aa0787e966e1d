import { afterAll, beforeAll, expect, test } from 'vitest';
import { startInbox, type Inbox } from './harness.js';

// The API reference at /docs: Swagger UI from this server's own files, under its
// Content-Security-Policy, reading /openapi.json, and able to call the API it describes.

let inbox: Inbox;
beforeAll(async () => {
  inbox = await startInbox();
});
afterAll(async () => inbox?.close());

test('/docs shows every tag and operation, loads nothing from elsewhere, breaks no CSP rule, and "Try it out" calls this server', async () => {
  const { page } = await inbox.newPage();
  // Recorded by the browser itself (an init script is not subject to the page's policy).
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { cspViolations: string[] }).cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const problems: string[] = [];
  const foreign: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => {
    if (!r.url().startsWith(`${inbox.url}/`) && !r.url().startsWith('data:')) foreign.push(r.url());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });

  await page.goto('/docs');
  await page.getByRole('heading', { name: /task-inbox/ }).waitFor();
  for (const tag of ['tasks', 'webhooks', 'people', 'admin', 'health']) await page.locator(`#operations-tag-${tag}`).waitFor();
  await page.getByText('Create a task', { exact: true }).waitFor();
  expect(await page.locator('.opblock').count()).toBeGreaterThan(30);

  const health = page.locator('#operations-health-getHealth');
  await health.locator('.opblock-summary').click();
  await health.getByRole('button', { name: 'Try it out' }).click();
  await health.getByRole('button', { name: 'Execute' }).click();
  const status = health.locator('.live-responses-table .response .response-col_status');
  await status.waitFor();
  expect((await status.textContent())?.trim()).toBe('200');

  expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).toEqual([]);
  expect(problems).toEqual([]);
  expect(foreign).toEqual([]);
});
