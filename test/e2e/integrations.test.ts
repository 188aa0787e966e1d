import { afterAll, beforeAll, expect, test } from 'vitest';
import { ADMIN, startInbox, type Inbox } from './harness.js';

// What an application server does to a waiting task shows in the open inbox without a reload:
// merged metadata (with a history entry) and a cancellation (with its reason; the task leaves
// the unresolved list and its state buttons are off).

let inbox: Inbox;
beforeAll(async () => {
  inbox = await startInbox();
});
afterAll(async () => inbox?.close());

async function api(method: string, path: string, body: unknown) {
  const res = await fetch(`${inbox.url}${path}`, {
    method,
    headers: { 'api-key': inbox.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json();
}

test('a metadata update and a cancellation from the application appear in the open task', async () => {
  const { task } = await inbox.postTask({ task: 'flag-content', meta: { post: 'first words', author: 'zed' } });
  const { page } = await inbox.newPage({ signIn: ADMIN });
  await page.locator(`#task-row-${task.id}`).click();
  const details = page.getByRole('table', { name: 'Metadata' });
  await expect.poll(() => details.textContent()).toContain('first words');

  await api('PATCH', `/api/v1/tasks/${task.id}`, { meta: { post: 'edited words', author: null, score: 0.9 } });
  await expect.poll(() => details.textContent()).toContain('edited words');
  expect(await details.textContent()).not.toContain('zed');
  expect(await details.textContent()).toContain('score');
  const history = page.getByRole('region', { name: 'History' });
  await expect.poll(() => history.textContent()).toContain('details updated by an application server');

  await api('POST', `/api/v1/tasks/${task.id}/cancel`, { reason: 'the customer withdrew the report' });
  await page.getByRole('status').filter({ hasText: 'The application cancelled this task' }).waitFor();
  expect(await page.getByRole('status').filter({ hasText: 'cancelled this task' }).textContent()).toContain('the customer withdrew the report');
  await expect.poll(() => history.textContent()).toContain('cancelled by an application server: the customer withdrew the report');
  for (const button of await page.getByRole('group', { name: 'Set the state' }).getByRole('button').all()) expect(await button.isDisabled()).toBe(true);
  // It left the unresolved list (the default view), live.
  await expect.poll(() => page.locator(`#task-row-${task.id}`).count()).toBe(0);
  // The keyboard cannot change it either.
  await page.keyboard.press('2');
  const after = await (await fetch(`${inbox.url}/api/v1/tasks/${task.id}`, { headers: { 'api-key': inbox.apiKey } })).json();
  expect(after.task).toMatchObject({ state: null, resolved: true, cancelled: { reason: 'the customer withdrew the report' } });
});
