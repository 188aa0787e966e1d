import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Page, Response } from 'playwright-core';
import { cliActor } from '../../src/core/audit/audit.js';
import { createApiKey } from '../../src/core/keys/index.js';
import { createSetupToken, createUser } from '../../src/core/people/index.js';
import { installSchema } from '../../src/core/schemas/index.js';
import { loadSecretBox } from '../../src/core/secrets/secret-box.js';
import { createWebhookKey } from '../../src/core/webhooks/index.js';
import { sampleSchema } from '../helpers/app.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { ADMIN, MEMBER, startInbox, type Inbox } from './harness.js';

// The web inbox end to end: first-run setup, sign-in, the list and its filters, working a task,
// live updates, a refused sync webhook, and the keyboard shortcuts.

interface ApiTask {
  id: string;
  state: string | null;
  resolved: boolean;
}

let inbox: Inbox;
let apiKey = '';
let receiver: Receiver | undefined;

beforeAll(async () => {
  // No accounts: the first admin is made through the setup page below.
  inbox = await startInbox({ seed: false });
  await installSchema(inbox.database, sampleSchema);
  apiKey = (await createApiKey(inbox.database, { name: 'e2e' })).key;
});
afterAll(async () => {
  await receiver?.close();
  await inbox?.close();
});

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${inbox.url}${path}`, {
    method,
    headers: { 'api-key': apiKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}

/** POST /api/v1/tasks/ as an application server (the harness's postTask needs its seeded key). */
async function postTask(task: string, meta: Record<string, unknown>, schema = 'acme:moderation'): Promise<string> {
  const res = await api<{ task: ApiTask }>('POST', '/api/v1/tasks/', { schema_name: schema, task, meta });
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json.task.id;
}

async function getTask(id: string): Promise<ApiTask> {
  const res = await api<{ task: ApiTask }>('GET', `/api/v1/tasks/${id}`);
  expect(res.status).toBe(200);
  return res.json.task;
}

/**
 * Loads the page again and waits until its event stream is connected and the refresh that the
 * stream's `ready` starts has been sent and answered.
 */
async function reloadConnected(page: Page) {
  let connected = false;
  const onResponse = (r: Response) => {
    if (new URL(r.url()).pathname === '/api/v1/events') connected = true;
  };
  page.on('response', onResponse);
  try {
    const refresh = page.waitForRequest((req) => connected && new URL(req.url()).pathname === '/api/v1/tasks/');
    await page.reload();
    await (await refresh).response();
  } finally {
    page.off('response', onResponse);
  }
}

const taskList = (page: Page) => page.getByRole('list', { name: 'Task list' });
const row = (page: Page, id: string) => page.locator(`#task-row-${id}`);
const pathOf = (page: Page) => new URL(page.url()).pathname;
const searchOf = (page: Page) => new URL(page.url()).searchParams;

async function signInPage(who: { username: string; password: string } = ADMIN) {
  return (await inbox.newPage({ signIn: who })).page;
}

describe('first run', () => {
  test('the setup link creates the first admin, signs them in, and works only once', async () => {
    const { page } = await inbox.newPage();
    // Before: the sign-in page says there is no account yet.
    await page.goto('/taskui');
    await page.getByText('No account exists yet.').waitFor();

    const token = await createSetupToken(inbox.database);
    expect(token).toBeTruthy();
    await page.goto(`/setup#${token}`);
    await page.getByRole('heading', { name: 'Create the first admin' }).waitFor();
    await page.getByLabel('Username').fill(ADMIN.username);
    await page.getByLabel('Display name').fill(ADMIN.name);
    await page.getByLabel('Password (at least 10 characters)').fill(ADMIN.password);
    await page.getByLabel('Password again').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Create admin and sign in' }).click();

    // Signed in, on the inbox.
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(pathOf(page)).toBe('/taskui');
    await page.getByRole('region', { name: 'Tasks' }).waitFor();
    await page.getByRole('link', { name: 'Admin' }).waitFor();
    const me = await page.evaluate(() => fetch('/api/v1/me').then((r) => r.json()));
    expect(me.user).toMatchObject({ username: ADMIN.username, name: ADMIN.name, role: 'admin' });

    // The same link again, in another browser: refused, nobody signed in.
    const other = (await inbox.newPage()).page;
    await other.goto(`/setup#${token}`);
    await other.getByLabel('Username').fill('mallory');
    await other.getByLabel('Display name').fill('Mallory');
    await other.getByLabel('Password (at least 10 characters)').fill('mallory-password-1');
    await other.getByLabel('Password again').fill('mallory-password-1');
    await other.getByRole('button', { name: 'Create admin and sign in' }).click();
    const alert = other.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/already used/);
    expect(pathOf(other)).toBe('/setup');
    expect(await other.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    expect((await other.evaluate(() => fetch('/api/v1/me').then((r) => r.status)))).toBe(401);

    await createUser(inbox.database, cliActor, { ...MEMBER, role: 'member' });
  });

  test('sign-in: a wrong password shows an error, the right one the inbox', async () => {
    const { page } = await inbox.newPage();
    await page.goto('/taskui');
    await page.getByRole('heading', { name: 'Sign in to task-inbox' }).waitFor();
    await page.getByLabel('Username').fill(MEMBER.username);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('Wrong username or password.');
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);

    await page.getByLabel('Password').fill(MEMBER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.getByRole('region', { name: 'Tasks' }).waitFor();
    expect(await page.getByRole('link', { name: 'Admin' }).count()).toBe(0); // a member
  });
});

describe('working the inbox', () => {
  test('the list shows tasks, filters narrow it, a task is opened, moved on, resolved, and its history names who', async () => {
    const flagId = await postTask('flag-content', { post: 'hello world', author: 'eve' });
    const deleteId = await postTask('delete-acct', { account: 'acct-42' });
    const page = await signInPage();

    // Both rows: type, schema, state badge, summary.
    await row(page, deleteId).waitFor();
    expect(await taskList(page).getByRole('listitem').count()).toBe(2);
    const flagRow = row(page, flagId);
    expect(await flagRow.locator('.type').textContent()).toBe('flag-content');
    expect(await flagRow.locator('.schema').textContent()).toBe('acme:moderation');
    expect(await flagRow.locator('.badge').textContent()).toBe('new');
    expect(await flagRow.locator('.summary').textContent()).toBe('post: hello world · author: eve');
    expect(await row(page, deleteId).locator('.type').textContent()).toBe('delete-acct');
    expect(await row(page, deleteId).locator('.summary').textContent()).toBe('account: acct-42');

    // The type filter narrows the list (and lives in the URL).
    await page.getByLabel('Type').selectOption('delete-acct');
    await flagRow.waitFor({ state: 'detached' });
    expect(searchOf(page).get('type')).toBe('delete-acct');
    expect(await taskList(page).getByRole('listitem').count()).toBe(1);
    await row(page, deleteId).waitFor();
    await page.getByLabel('Type').selectOption('');
    await flagRow.waitFor();

    // So does the search box.
    await page.getByLabel('Search in metadata').fill('acct-42');
    await flagRow.waitFor({ state: 'detached' });
    expect(await taskList(page).getByRole('listitem').count()).toBe(1);
    expect(searchOf(page).get('q')).toBe('acct-42');
    await page.getByLabel('Search in metadata').fill('');
    await flagRow.waitFor();

    // Opening a task shows its metadata.
    await flagRow.click();
    await page.getByRole('heading', { level: 1, name: 'flag-content' }).waitFor();
    expect(pathOf(page)).toBe(`/taskui/tasks/${flagId}`);
    const meta = page.getByRole('table', { name: 'Metadata' });
    expect(await meta.getByRole('row').count()).toBe(2);
    expect(await meta.getByRole('row', { name: /post/ }).getByRole('cell').textContent()).toBe('hello world');
    expect(await meta.getByRole('row', { name: /author/ }).getByRole('cell').textContent()).toBe('eve');

    // A pending state, then a resolved one.
    const buttons = page.getByRole('group', { name: 'Set the state' });
    await buttons.getByRole('button', { name: 'level1', exact: true }).click();
    await buttons.locator('button[aria-pressed="true"]', { hasText: 'level1' }).waitFor();
    await expect.poll(() => getTask(flagId)).toMatchObject({ state: 'level1', resolved: false });
    await flagRow.locator('.badge', { hasText: 'level1' }).waitFor(); // the list follows

    await buttons.getByRole('button', { name: 'block (resolves the task)' }).click();
    await buttons.locator('button[aria-pressed="true"]', { hasText: 'block' }).waitFor();
    await expect.poll(() => getTask(flagId)).toMatchObject({ state: 'block', resolved: true });

    // Resolved: gone from the Unresolved list, still open beside it.
    await flagRow.waitFor({ state: 'detached' });
    expect(await page.getByRole('button', { name: 'Unresolved' }).getAttribute('aria-pressed')).toBe('true');
    await row(page, deleteId).waitFor();
    await page.getByRole('heading', { level: 1, name: 'flag-content' }).waitFor();

    // The history says who did it.
    const history = page.getByRole('region', { name: 'History' }).getByRole('listitem');
    await expect.poll(() => history.allTextContents()).toHaveLength(3);
    const lines = await history.allTextContents();
    expect(lines[0]).toContain('created by the application');
    expect(lines[1]).toContain('level1');
    expect(lines[1]).toContain(`set by ${ADMIN.name}`);
    expect(lines[2]).toContain('block');
    expect(lines[2]).toContain(`set by ${ADMIN.name}`);

    // Resolve the other one too, through the API, so later tests start from an empty list.
    expect((await api('PATCH', `/api/v1/tasks/${deleteId}/state?state=deleted`)).status).toBe(200);
  });

  test('a task posted through the API appears without a reload, and the unresolved count in the title follows', async () => {
    const first = await postTask('flag-content', { post: 'first live' });
    const page = await signInPage();
    // From here on only the stream's events can bring the page news: its refresh on connecting is over.
    await reloadConnected(page);
    await row(page, first).waitFor();
    await expect.poll(() => page.title()).toBe('(1) task-inbox');
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));

    const second = await postTask('flag-content', { post: 'arrived live' });
    await row(page, second).waitFor({ timeout: 5000 });
    expect(await row(page, second).locator('.summary').textContent()).toBe('post: arrived live');
    await expect.poll(() => page.title(), { timeout: 5000 }).toBe('(2) task-inbox');
    expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Inbox/ }).textContent()).toContain('2');
    // Still the same document: no reload happened.
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);

    // A change made elsewhere (here: an application server) also arrives.
    expect((await api('PATCH', `/api/v1/tasks/${first}/state?state=allow`)).status).toBe(200);
    await row(page, first).waitFor({ state: 'detached', timeout: 5000 });
    await expect.poll(() => page.title(), { timeout: 5000 }).toBe('(1) task-inbox');
    expect((await api('PATCH', `/api/v1/tasks/${second}/state?state=allow`)).status).toBe(200);
    await expect.poll(() => page.title(), { timeout: 5000 }).toBe('task-inbox');
  });

  test('a task posted while the event stream is still connecting shows up once it connects', async () => {
    const page = await signInPage();
    await reloadConnected(page);
    const before = await page.title();
    // Hold the stream's request: the list is loaded, but the server does not listen for this page yet.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let held = false;
    await page.route('**/api/v1/events', async (route) => {
      held = true;
      await released;
      await route.continue();
    });
    const listed = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/tasks/');
    await page.reload();
    expect((await listed).status()).toBe(200);
    await expect.poll(() => held).toBe(true);
    const early = await postTask('flag-content', { post: 'before the stream' });
    // No event will ever name this task: it was made before the stream listened.
    release();
    await row(page, early).waitFor({ timeout: 5000 });
    await expect.poll(() => page.title(), { timeout: 5000 }).not.toBe(before);
    expect((await api('PATCH', `/api/v1/tasks/${early}/state?state=allow`)).status).toBe(200);
    await row(page, early).waitFor({ state: 'detached', timeout: 5000 });
    await page.unroute('**/api/v1/events');
  });

  test('a refused sync webhook shows the receiver\'s answer and leaves the state as it was', async () => {
    receiver = await startReceiver(() => ({ status: 409, body: 'account is locked by legal hold' }));
    await installSchema(
      inbox.database,
      `name: 'acme:legal'
semver: '1'
default_hook_url: ${receiver.url}
hook_mode: sync
hook_auth:
  kind: standard
tasktypes:
- name: close-acct
  pending_states: ['review']
  resolved_states: ['closed']
`,
    );
    await createWebhookKey(inbox.database, loadSecretBox(inbox.config), { schemaName: 'acme:legal', graceMs: 0 });
    const id = await postTask('close-acct', { account: 'acct-7' }, 'acme:legal');

    const page = await signInPage();
    await page.goto(`/taskui/tasks/${id}`);
    await page.getByRole('heading', { level: 1, name: 'close-acct' }).waitFor();
    const buttons = page.getByRole('group', { name: 'Set the state' });
    await buttons.getByRole('button', { name: 'closed (resolves the task)' }).click();

    const alert = page.getByRole('region', { name: 'State' }).getByRole('alert');
    await alert.waitFor();
    const text = (await alert.textContent()) ?? '';
    expect(text).toContain('The state was not changed.');
    expect(text).toContain('409');
    expect(text).toContain('account is locked by legal hold');
    expect(receiver.received).toHaveLength(1);

    // Unchanged on the page and on the server.
    expect(await buttons.getByRole('button', { name: 'Unset' }).getAttribute('aria-pressed')).toBe('true');
    expect(await buttons.getByRole('button', { name: 'closed (resolves the task)' }).getAttribute('aria-pressed')).toBe('false');
    expect(await getTask(id)).toMatchObject({ state: null, resolved: false });
    const history = await api<{ history: unknown[] }>('GET', `/api/v1/tasks/${id}/history`);
    expect(history.json.history).toHaveLength(1);
    await row(page, id).locator('.badge', { hasText: 'new' }).waitFor();

    // Out of the way of the keyboard test: resolved behind the inbox's back (no webhook there).
    await inbox.database.query("UPDATE tasks SET state = 'closed', resolved = true WHERE id = $1", [id]);
  });
});

describe('keyboard', () => {
  test('j/k select, Enter/o open, Esc closes, 1–9 set states, u toggles the view, / searches, ? shows the shortcuts', async () => {
    const ids = [await postTask('flag-content', { n: 'one' }), await postTask('flag-content', { n: 'two' }), await postTask('flag-content', { n: 'three' })];
    const page = await signInPage();
    for (const id of ids) await row(page, id).waitFor();
    const rowIds = async () => (await taskList(page).locator('a.task-row').evaluateAll((as) => as.map((a) => a.id.replace('task-row-', ''))));
    expect(await rowIds()).toEqual(ids);
    const selected = async () => (await page.locator('a.task-row.selected').getAttribute('id'))?.replace('task-row-', '');
    const heading = page.getByRole('heading', { level: 1 });

    // j / k move the selection.
    expect(await selected()).toBe(ids[0]);
    await page.keyboard.press('j');
    await expect.poll(selected).toBe(ids[1]);
    await page.keyboard.press('j');
    await expect.poll(selected).toBe(ids[2]);
    await page.keyboard.press('j'); // stays on the last
    await expect.poll(selected).toBe(ids[2]);
    await page.keyboard.press('k');
    await expect.poll(selected).toBe(ids[1]);

    // Enter opens the selected task; Esc closes it.
    await page.keyboard.press('Enter');
    await expect.poll(() => pathOf(page)).toBe(`/taskui/tasks/${ids[1]}`);
    await page.getByRole('table', { name: 'Metadata' }).getByRole('cell', { name: 'two' }).waitFor();
    await page.keyboard.press('Escape');
    await expect.poll(() => pathOf(page)).toBe('/taskui');
    await page.getByText('Select a task to work on it.').waitFor();
    expect(await selected()).toBe(ids[1]);

    // o opens too; with a task open, j moves to the next one and opens it.
    await page.keyboard.press('k');
    await expect.poll(selected).toBe(ids[0]);
    await page.keyboard.press('o');
    await expect.poll(() => pathOf(page)).toBe(`/taskui/tasks/${ids[0]}`);
    await page.getByRole('table', { name: 'Metadata' }).getByRole('cell', { name: 'one' }).waitFor();
    await page.keyboard.press('j');
    await expect.poll(() => pathOf(page)).toBe(`/taskui/tasks/${ids[1]}`);
    await page.getByRole('table', { name: 'Metadata' }).getByRole('cell', { name: 'two' }).waitFor();

    // 1–9 press the n-th state button: Unset, level1, level2, block, allow.
    const buttons = page.getByRole('group', { name: 'Set the state' });
    const pressed = (name: string) => buttons.getByRole('button', { name, exact: true, pressed: true }).waitFor();
    await page.keyboard.press('3');
    await expect.poll(() => getTask(ids[1]!)).toMatchObject({ state: 'level2', resolved: false });
    await pressed('level2');
    await page.keyboard.press('2');
    await expect.poll(() => getTask(ids[1]!)).toMatchObject({ state: 'level1', resolved: false });
    await pressed('level1');
    await page.keyboard.press('1');
    await expect.poll(() => getTask(ids[1]!)).toMatchObject({ state: null, resolved: false });
    await pressed('Unset');
    await page.keyboard.press('9'); // no 9th button: nothing happens
    await page.keyboard.press('5');
    await expect.poll(() => getTask(ids[1]!)).toMatchObject({ state: 'allow', resolved: true });
    await pressed('allow (resolves the task)');
    await row(page, ids[1]!).waitFor({ state: 'detached' }); // resolved: out of the Unresolved list
    expect(await getTask(ids[0]!)).toMatchObject({ state: null }); // only the open task changed
    expect(await getTask(ids[2]!)).toMatchObject({ state: null });

    // u switches between unresolved and all tasks.
    await page.keyboard.press('Escape');
    await expect.poll(() => pathOf(page)).toBe('/taskui');
    await page.keyboard.press('u');
    await expect.poll(() => searchOf(page).get('view')).toBe('all');
    await page.getByRole('button', { name: 'All', exact: true, pressed: true }).waitFor();
    await row(page, ids[1]!).waitFor(); // the resolved one is back
    await page.keyboard.press('u');
    await expect.poll(() => searchOf(page).get('view')).toBe(null);
    await page.getByRole('button', { name: 'Unresolved', pressed: true }).waitFor();
    await row(page, ids[1]!).waitFor({ state: 'detached' });

    // / focuses the search box; typing there is not a shortcut; Esc leaves it.
    const before = await selected();
    await page.keyboard.press('/');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('task-search');
    await page.keyboard.type('jk');
    expect(await page.getByLabel('Search in metadata').inputValue()).toBe('jk');
    expect(await selected()).toBe(before);
    await page.keyboard.press('Backspace');
    await page.keyboard.press('Backspace');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).not.toBe('task-search');
    await expect.poll(() => searchOf(page).get('q')).toBe(null);

    // ? opens the shortcuts dialog; Esc closes it.
    const dialog = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
    expect(await dialog.isVisible()).toBe(false);
    await page.keyboard.press('?');
    await dialog.waitFor();
    expect(await dialog.getByRole('row').count()).toBe(7);
    expect(await dialog.textContent()).toContain('Press the n-th state button');
    // The dialog's close event arrives a moment after it hides; a listener added now runs after React's.
    await page.evaluate(() => {
      const w = window as unknown as { dialogClosed: boolean };
      w.dialogClosed = false;
      document.querySelector('dialog')!.addEventListener('close', () => (w.dialogClosed = true), { once: true });
    });
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await page.waitForFunction(() => (window as unknown as { dialogClosed: boolean }).dialogClosed);
    // …and it opens again after closing (the component's state followed the dialog).
    await page.keyboard.press('?');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(await heading.count()).toBe(0);
  });
});
