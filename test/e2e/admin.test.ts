import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { installSchema } from '../../src/core/schemas/index.js';
import { loadSecretBox } from '../../src/core/secrets/secret-box.js';
import { Webhooks } from '../../src/core/webhooks/index.js';
import { startReceiver } from '../helpers/receiver.js';
import { ADMIN, MEMBER, seriousA11yViolations, startInbox, type Inbox } from './harness.js';

/*
 * The admin screens in a real browser against a real server: people, schemas, API keys, webhook
 * keys, deliveries and the audit log; accessibility in both colour schemes; a phone's width;
 * and that members cannot get in.
 */

const SECTIONS = [
  { label: 'People', path: 'people', title: 'People' },
  { label: 'Schemas', path: 'schemas', title: 'Schemas' },
  { label: 'API keys', path: 'api-keys', title: 'API keys' },
  { label: 'Webhook keys', path: 'webhook-keys', title: 'Webhook keys' },
  { label: 'Deliveries', path: 'deliveries', title: 'Deliveries' },
  { label: 'Notifications', path: 'notifications', title: 'Notifications' },
  { label: 'Audit', path: 'audit', title: 'Audit log' },
] as const;

const HOOKS = 'acme:hooks';
let inbox: Inbox;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let admin: Page;

beforeAll(async () => {
  inbox = await startInbox();
  // An application server that refuses webhooks with an answer that looks like markup.
  receiver = await startReceiver(() => ({ status: 500, body: '<b>not today</b>' }));
  await installSchema(
    inbox.database,
    `name: '${HOOKS}'\nsemver: '1'\ndefault_hook_url: '${receiver.url}'\nhook_mode: async\nhook_auth:\n  kind: head\n  val: x-hook-key\ntasktypes:\n- name: review\n  pending_states: ['open']\n  resolved_states: ['done']\n`,
  );
  ({ page: admin } = await inbox.newPage({ signIn: ADMIN }));
});
afterAll(async () => {
  await inbox?.close();
  await receiver?.close();
});

/** Opens an admin section through its link in the admin navigation (or by URL for the first one). */
async function openSection(page: Page, section: (typeof SECTIONS)[number]) {
  const nav = page.getByRole('navigation', { name: 'Admin' });
  if (await nav.count()) await nav.getByRole('link', { name: section.label, exact: true }).click();
  else await page.goto(`/taskui/admin/${section.path}`);
  await page.getByRole('heading', { level: 1, name: section.title, exact: true }).waitFor();
  await page.getByText('Loading…').waitFor({ state: 'detached' });
}
const section = (path: (typeof SECTIONS)[number]['path']) => SECTIONS.find((s) => s.path === path)!;

/** Answers the next window.confirm with OK and returns its question. */
function acceptNextConfirm(page: Page): Promise<string> {
  return new Promise((resolve) => {
    page.once('dialog', (d) => {
      resolve(d.message());
      void d.accept();
    });
  });
}

/** Saves a screenshot when E2E_SCREENSHOTS names a folder (to look at the screens by eye). */
async function shot(page: Page, name: string) {
  const dir = process.env.E2E_SCREENSHOTS;
  if (dir) await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
}

async function signInFails(username: string, password: string) {
  const { page, context } = await inbox.newPage();
  await page.goto('/taskui');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor();
  await context.close();
}

describe('admin screens', () => {
  test('the admin navigation marks the current section and every section has its h1', async () => {
    await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await admin.getByRole('heading', { level: 1, name: 'People' }).waitFor();
    const nav = admin.getByRole('navigation', { name: 'Admin' });
    expect(await nav.getByRole('link').allTextContents()).toEqual(SECTIONS.map((s) => s.label));
    for (const s of SECTIONS) {
      await openSection(admin, s);
      expect(admin.url()).toBe(`${inbox.url}/taskui/admin/${s.path}`);
      expect(await nav.locator('[aria-current="page"]').allTextContents()).toEqual([s.label]);
    }
  });

  test('people: an admin adds a person, who can sign in; deactivated, they cannot; reactivated with a reset password, they can', async () => {
    await openSection(admin, section('people'));
    await admin.getByRole('button', { name: 'Add a person' }).click();
    const form = admin.getByRole('form', { name: 'Add a person' });
    await form.getByLabel('Username').fill('sam');
    await form.getByLabel('Display name').fill('Sam Support');
    await form.getByLabel('Email (optional)').fill('sam@example.com');
    await form.getByLabel('Role').selectOption('member');
    await form.getByLabel('Password').fill('sam-password-1');
    await form.getByRole('button', { name: 'Add person' }).click();
    await admin.getByRole('status').filter({ hasText: 'Added Sam Support' }).waitFor();
    const row = admin.getByRole('row').filter({ hasText: 'Sam Support' });
    await expect.poll(() => row.textContent()).toContain('active');
    await shot(admin, 'people-1280');

    // Sam signs in in a browser of their own.
    const sam = await inbox.newPage({ signIn: { username: 'sam', password: 'sam-password-1' } });

    // The admin sees that session, then deactivates Sam.
    await row.getByRole('button', { name: 'Manage Sam Support' }).click();
    const dialog = admin.getByRole('dialog', { name: 'Sam Support' });
    await dialog.getByRole('button', { name: 'End session' }).waitFor();
    expect(await dialog.locator('.session-list li').count()).toBe(1);
    expect(await seriousA11yViolations(admin)).toEqual([]);
    await shot(admin, 'people-dialog-1280');
    const question = acceptNextConfirm(admin);
    await dialog.getByRole('button', { name: 'Deactivate' }).click();
    expect(await question).toContain('Deactivate Sam Support?');
    await dialog.getByRole('button', { name: 'Reactivate' }).waitFor();
    await dialog.getByText('Not signed in anywhere.').waitFor(); // deactivation ended the session

    // Sam's open page loses its session, and signing in again is refused.
    await sam.page.reload();
    await sam.page.getByRole('heading', { name: 'Sign in to task-inbox' }).waitFor();
    await signInFails('sam', 'sam-password-1');

    // Reactivated with a new password, Sam gets in with that one only.
    await dialog.getByRole('button', { name: 'Reactivate' }).click();
    await dialog.getByRole('button', { name: 'Deactivate' }).waitFor();
    await dialog.getByLabel('New password for Sam Support').fill('sam-new-password-2');
    await dialog.getByRole('button', { name: 'Set password' }).click();
    await dialog.getByRole('status').filter({ hasText: 'Password changed' }).waitFor();
    await signInFails('sam', 'sam-password-1');
    const again = await inbox.newPage({ signIn: { username: 'sam', password: 'sam-new-password-2' } });
    await again.context.close();
    await sam.context.close();

    await admin.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(admin.url()).toBe(`${inbox.url}/taskui/admin/people`);
  });

  test('schemas: an upload with a mistake shows it with its line and installs nothing; a good one installs, expands and deletes', async () => {
    await openSection(admin, section('schemas'));
    const upload = admin.getByLabel('Upload a YAML file');
    const broken = `name: 'acme:support'\nsemver: '1'\ntasktypes:\n- name: answer\n  resolved_states: ['done']\n- pending_states: ['open']\n  resolved_states: ['closed']\n`;
    await upload.setInputFiles({ name: 'support.yaml', mimeType: 'application/yaml', buffer: Buffer.from(broken) });
    // The upload lands in the textarea and is checked at once.
    await expect.poll(() => admin.getByLabel('Schema YAML').inputValue()).toBe(broken);
    const error = admin.getByRole('alert').filter({ hasText: 'Line 6' });
    await error.waitFor();
    expect(await error.textContent()).toContain('Line 6, tasktypes[1].name: is required but missing');
    await shot(admin, 'schemas-error-1280');
    // Install refuses too, and nothing was installed.
    await admin.getByRole('button', { name: 'Install', exact: true }).click();
    await admin.getByRole('alert').filter({ hasText: 'Not installed' }).waitFor();
    const listed = async () => ((await (await admin.request.get('/api/v1/schemas')).json()) as { schemas: { name: string }[] }).schemas.map((s) => s.name);
    expect(await listed()).not.toContain('acme:support');
    expect(await admin.getByRole('heading', { name: 'acme:support' }).count()).toBe(0);

    // The fixed file: the check says what it would do, Install does it.
    const fixed = broken.replace("- pending_states: ['open']", "- name: escalate\n  pending_states: ['open']");
    await upload.setInputFiles({ name: 'support.yaml', mimeType: 'application/yaml', buffer: Buffer.from(fixed) });
    await admin.getByRole('status').filter({ hasText: 'Looks good' }).waitFor();
    expect(await listed()).not.toContain('acme:support'); // a check installs nothing
    await admin.getByRole('button', { name: 'Install', exact: true }).click();
    const installed = admin.getByRole('status').filter({ hasText: 'Installed acme:support, version 0 (semver 1)' });
    await installed.waitFor();
    expect(await installed.getByRole('row').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('answer'), expect.stringContaining('escalate')]));
    expect(await listed()).toContain('acme:support');

    // A second version pasted into the textarea.
    await admin.getByLabel('Schema YAML').fill(fixed.replace("semver: '1'", "semver: '1.1'").replace("['closed']", "['closed', 'merged']"));
    await admin.getByRole('button', { name: 'Check' }).click();
    await admin.getByRole('status').filter({ hasText: 'Installing it adds version 1 of acme:support' }).waitFor();
    await admin.getByRole('button', { name: 'Install', exact: true }).click();
    await admin.getByRole('status').filter({ hasText: 'Installed acme:support, version 1 (semver 1.1)' }).waitFor();

    // The card lists both versions with their types and states.
    const card = admin.getByRole('listitem').filter({ has: admin.getByRole('heading', { name: 'acme:support' }) });
    await card.getByText('latest 1.1').waitFor();
    await card.getByText('Versions and task types').click();
    await card.getByRole('heading', { name: /Version 1 · semver 1\.1/ }).waitFor();
    await card.getByRole('heading', { name: /Version 0 · semver 1$/ }).waitFor();
    expect(await card.getByRole('table', { name: 'Task types of acme:support version 1' }).textContent()).toContain('merged');
    expect(await card.getByRole('table', { name: 'Task types of acme:support version 0' }).textContent()).not.toContain('merged');
    await shot(admin, 'schemas-1280');

    // Deleting says how many tasks go.
    await inbox.postTask({ schema_name: 'acme:support', task: 'answer' });
    await admin.reload();
    await admin.getByRole('heading', { name: 'acme:support' }).waitFor();
    const question = acceptNextConfirm(admin);
    await card.getByRole('button', { name: 'Delete schema' }).click();
    expect(await question).toMatch(/Delete schema acme:support\?[\s\S]*2 versions and 1 task/);
    await admin.getByRole('status').filter({ hasText: 'Deleted acme:support' }).waitFor();
    expect(await listed()).not.toContain('acme:support');
  });

  test('API keys: a new key is shown once, works, and is gone after leaving the screen or reloading', async () => {
    await openSection(admin, section('api-keys'));
    await admin.getByLabel('Name').fill('ci server');
    await admin.getByLabel('Limit to schema').selectOption('acme:moderation');
    await admin.getByRole('button', { name: 'Create key' }).click();
    const shown = admin.locator('.secret');
    await shown.waitFor();
    const key = (await shown.textContent())!.trim();
    expect(key.length).toBeGreaterThan(20);
    await admin.getByText('shown only once').waitFor();
    expect(await admin.getByRole('button', { name: 'Copy key' }).isVisible()).toBe(true);
    await shot(admin, 'api-key-new-1280');

    // It works for an application server.
    const post = (apiKey: string) =>
      fetch(`${inbox.url}/api/v1/tasks/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'api-key': apiKey },
        body: JSON.stringify({ schema_name: 'acme:moderation', task: 'flag-content', meta: { via: 'new key' } }),
      });
    expect((await post(key)).status).toBe(200);

    const nowhere = async () => {
      expect(await admin.content()).not.toContain(key);
      expect(await admin.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }))).not.toContain(key);
    };
    // Away and back: the key is gone, its row stays (used just now).
    await openSection(admin, section('people'));
    await openSection(admin, section('api-keys'));
    const row = admin.getByRole('row').filter({ hasText: 'ci server' });
    await row.waitFor();
    expect(await row.textContent()).toContain(key.slice(0, 6));
    await expect.poll(() => row.textContent()).not.toContain('never'); // last used: just now
    await nowhere();
    await admin.getByRole('form', { name: 'Create an API key' }).waitFor();

    // Create another and reload: gone as well.
    await admin.getByRole('button', { name: 'Create key' }).click();
    const second = (await shown.textContent())!.trim();
    await admin.reload();
    await admin.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
    await admin.getByRole('form', { name: 'Create an API key' }).waitFor();
    expect(await admin.content()).not.toContain(second);
    await nowhere();

    // Revoked, the key is refused.
    const question = acceptNextConfirm(admin);
    await row.getByRole('button', { name: 'Revoke' }).click();
    expect(await question).toContain('Revoke API key ci server?');
    await row.getByText('revoked').waitFor();
    expect((await post(key)).status).toBe(403);
  });

  test('webhook keys: create one for a schema (shown once), rotate it (the old one keeps a grace period), revoke', async () => {
    await openSection(admin, section('webhook-keys'));
    await admin.getByLabel('Schema').selectOption(HOOKS);
    await admin.getByRole('button', { name: 'Create key' }).click();
    await admin.getByRole('heading', { name: `New webhook key for ${HOOKS}` }).waitFor();
    const first = (await admin.locator('.secret').textContent())!.trim();
    await admin.getByText('shown only once').waitFor();
    await admin.getByRole('button', { name: 'I have copied it' }).click();
    expect(await admin.content()).not.toContain(first);

    // The form now offers a rotation for that schema; the row has its own Rotate button too.
    await admin.getByLabel('Schema').selectOption(HOOKS);
    await admin.getByRole('button', { name: 'Rotate key' }).waitFor();
    await admin.getByRole('row').filter({ hasText: HOOKS }).getByRole('button', { name: 'Rotate' }).click();
    await admin.getByRole('heading', { name: `Rotated webhook key for ${HOOKS}` }).waitFor();
    await expect.poll(() => admin.getByRole('row').filter({ hasText: HOOKS }).allTextContents()).toEqual([
      expect.stringContaining('active'),
      expect.stringContaining('in grace period'),
    ]);
    await shot(admin, 'webhook-keys-1280');

    // A schema without hook_auth gets the server's explanation.
    await admin.getByRole('button', { name: 'I have copied it' }).click();
    await admin.getByLabel('Schema').selectOption('acme:moderation');
    await admin.getByRole('button', { name: 'Create key' }).click();
    await admin.getByRole('alert').filter({ hasText: 'has no hook_auth' }).waitFor();

    // Revoking the one in its grace period.
    const graceRow = admin.getByRole('row').filter({ hasText: 'in grace period' });
    const question = acceptNextConfirm(admin);
    await graceRow.getByRole('button', { name: 'Revoke' }).click();
    expect(await question).toContain('stops working at once');
    await admin.getByRole('row').filter({ hasText: 'revoked' }).waitFor();
  });

  test('deliveries: filter, open one to see attempts (answers as text) and payload, redeliver', async () => {
    // A change to a task of the hooks schema queues a webhook; one send attempt gets a 500.
    const { task } = await inbox.postTask({ schema_name: HOOKS, task: 'review', state: 'open' });
    const changed = await fetch(`${inbox.url}/api/v1/tasks/${task.id}/state?state=done`, { method: 'PATCH', headers: { 'api-key': inbox.apiKey } });
    expect(changed.status).toBe(200);
    const webhooks = new Webhooks({ database: inbox.database, config: inbox.config, secrets: loadSecretBox(inbox.config) });
    expect(await webhooks.runDue()).toBe(1);
    expect(receiver.received).toHaveLength(1);

    await openSection(admin, section('deliveries'));
    const row = admin.getByRole('row').filter({ hasText: HOOKS });
    await row.waitFor();
    expect(await row.textContent()).toContain('500');
    await shot(admin, 'deliveries-1280');

    // Filters narrow the list and stay in the URL.
    await admin.getByLabel('Status').selectOption('delivered');
    await admin.getByText('No delivery matches these filters.').waitFor();
    expect(admin.url()).toContain('status=delivered');
    await admin.getByLabel('Status').selectOption('');
    await admin.getByLabel('Schema').selectOption(HOOKS);
    await row.waitFor();

    // A click on the row opens it.
    await row.getByRole('cell', { name: HOOKS }).click();
    const dialog = admin.getByRole('dialog', { name: /^Delivery #\d+$/ });
    await dialog.getByRole('heading', { name: 'Attempts' }).waitFor();
    const body = dialog.locator('pre').filter({ hasText: 'not today' });
    expect(await body.textContent()).toBe('<b>not today</b>'); // the receiver's answer, as text
    expect(await dialog.locator('b').count()).toBe(0);
    const payload = JSON.parse((await dialog.locator('pre').last().textContent())!) as { task: { id: string; state: string } };
    expect(payload.task).toMatchObject({ id: task.id, state: 'done' });
    expect(await seriousA11yViolations(admin)).toEqual([]);
    await shot(admin, 'delivery-dialog-1280');

    await dialog.getByRole('button', { name: 'Redeliver' }).click();
    await dialog.getByRole('status').filter({ hasText: 'Queued to be sent again' }).waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
  });

  test('audit: events with their actor, filtered by action and actor', async () => {
    await openSection(admin, section('audit'));
    await admin.getByRole('row').filter({ hasText: 'schema.install' }).first().waitFor();
    await admin.getByLabel('Action').selectOption('api-key.create');
    // Two keys made here and the harness's own, made on the command line.
    await expect.poll(() => admin.locator('tbody tr').count()).toBe(3);
    for (const text of await admin.locator('tbody tr').allTextContents()) expect(text).toContain('api-key.create');
    await admin.getByLabel('Actor').fill('nobody-at-all');
    await admin.getByText('No event matches these filters.').waitFor();
    await admin.getByLabel('Actor').fill(ADMIN.username);
    await expect.poll(() => admin.locator('tbody tr').count()).toBe(2);
    expect(admin.url()).toContain('actor=admin');
    await admin.getByRole('button', { name: 'Clear filters' }).click();
    await admin.getByRole('row').filter({ hasText: 'auth.sign-in-failed' }).first().waitFor();
    await shot(admin, 'audit-1280');
  });

  test('axe: no serious or critical violations on any admin screen, in light and dark', async () => {
    const dark = await inbox.newPage({ signIn: ADMIN, colorScheme: 'dark' });
    for (const page of [admin, dark.page]) {
      for (const s of SECTIONS) {
        await openSection(page, s);
        await page.waitForTimeout(50);
        expect({ section: s.path, violations: await seriousA11yViolations(page) }).toEqual({ section: s.path, violations: [] });
      }
    }
    await shot(dark.page, 'audit-dark-1280');
    await dark.context.close();
  });

  test('at 390 px wide no admin screen scrolls sideways', async () => {
    const phone = await inbox.newPage({ signIn: ADMIN, viewport: { width: 390, height: 844 } });
    const fits = () => phone.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    for (const s of SECTIONS) {
      await openSection(phone.page, s);
      if (s.path === 'schemas') await phone.page.getByText('Versions and task types').first().click();
      await shot(phone.page, `${s.path}-390`);
      expect({ section: s.path, fits: await fits() }).toEqual({ section: s.path, fits: true });
    }
    // With a person's details open, too.
    await openSection(phone.page, section('people'));
    await phone.page.getByRole('button', { name: `Manage ${MEMBER.name}` }).click();
    await phone.page.getByRole('dialog', { name: MEMBER.name }).waitFor();
    expect(await fits()).toBe(true);
    await shot(phone.page, 'people-dialog-390');
    await phone.context.close();
  });

  test('a member has no Admin link and the admin screens say "Admins only"', async () => {
    const { page, context } = await inbox.newPage({ signIn: MEMBER });
    const main = page.getByRole('navigation', { name: 'Main' });
    await main.getByRole('link', { name: 'Account' }).waitFor();
    expect(await main.getByRole('link', { name: 'Admin' }).count()).toBe(0);
    await page.goto('/taskui/admin/people');
    await page.getByRole('heading', { level: 1, name: 'Admins only' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Admin' }).count()).toBe(0);
    expect((await page.request.get('/api/v1/users')).status()).toBe(403);
    await context.close();
  });
});
