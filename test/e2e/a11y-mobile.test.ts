import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Page } from 'playwright-core';
import { ADMIN, seriousA11yViolations, startInbox, type Inbox } from './harness.js';

// Accessibility (axe-core: nothing serious or critical) in light and dark, and the phone layout:
// no sideways scrolling, and state buttons big enough to hit with a thumb.

let inbox: Inbox;
let plainId = '';
let busyId = '';

beforeAll(async () => {
  inbox = await startInbox();
  // Tasks in every badge style, and one whose metadata is long, wide and unbroken.
  plainId = (await inbox.postTask({ task: 'flag-content', meta: { post: 'hello', author: 'eve' } })).task.id;
  busyId = (
    await inbox.postTask({
      task: 'flag-content',
      state: 'level1',
      meta: {
        post: 'A rather long post text that goes on and on so that the summary line in the list has to be cut off somewhere',
        token: 'x'.repeat(300),
        link__preview: `https://example.test/${'very-long-path-segment/'.repeat(12)}page`,
        nested: { list: ['a'.repeat(120), 'b'], deep: { key: 'value' } },
        a_key_that_is_itself_very_long_and_has_no_spaces_anywhere_in_it_at_all_really: 'short',
      },
    })
  ).task.id;
  await inbox.postTask({ task: 'delete-acct', state: 'deleted', meta: { account: 'acct-1' } });
});
afterAll(async () => inbox?.close());

const violations = async (page: Page) => {
  // Let transitions and late renders settle before measuring contrast.
  await page.waitForTimeout(200);
  return seriousA11yViolations(page);
};

describe.each(['light', 'dark'] as const)('axe-core, %s', (colorScheme) => {
  test('the sign-in page', async () => {
    const { page } = await inbox.newPage({ colorScheme });
    await page.goto('/taskui');
    await page.getByRole('heading', { name: 'Sign in to task-inbox' }).waitFor();
    expect(await violations(page)).toEqual([]);
    // With the error shown, too.
    await page.getByLabel('Username').fill('nobody');
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    expect(await violations(page)).toEqual([]);
  });

  test('the inbox list', async () => {
    const { page } = await inbox.newPage({ signIn: ADMIN, colorScheme });
    await page.goto('/taskui?view=all');
    await page.locator(`#task-row-${busyId}`).waitFor();
    expect(await page.getByRole('list', { name: 'Task list' }).getByRole('listitem').count()).toBe(3);
    expect(await page.evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches)).toBe(colorScheme === 'dark');
    expect(await violations(page)).toEqual([]);
  });

  test('the task view', async () => {
    const { page } = await inbox.newPage({ signIn: ADMIN, colorScheme });
    await page.goto(`/taskui/tasks/${busyId}`);
    await page.getByRole('heading', { level: 1, name: 'flag-content' }).waitFor();
    await page.getByRole('region', { name: 'History' }).getByRole('listitem').first().waitFor();
    expect(await violations(page)).toEqual([]);
    // The shortcuts dialog over it.
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    expect(await violations(page)).toEqual([]);
  });
});

describe('a phone, 390×844', () => {
  const viewport = { width: 390, height: 844 };

  /** Widths of the page and of each given element: content never wider than the box. */
  async function overflow(page: Page, selectors: string[]) {
    return page.evaluate((sels) => {
      const out: Record<string, { scrollWidth: number; clientWidth: number }> = {
        document: { scrollWidth: document.documentElement.scrollWidth, clientWidth: window.innerWidth },
      };
      for (const s of sels) {
        const el = document.querySelector(s);
        out[s] = el ? { scrollWidth: el.scrollWidth, clientWidth: el.clientWidth } : { scrollWidth: -1, clientWidth: -1 };
      }
      return out;
    }, selectors);
  }
  function expectNoSideways(widths: Record<string, { scrollWidth: number; clientWidth: number }>) {
    for (const [what, w] of Object.entries(widths)) {
      expect(w.clientWidth, `${what} is missing or empty`).toBeGreaterThan(0);
      expect(w.scrollWidth, `${what} scrolls sideways`).toBeLessThanOrEqual(w.clientWidth);
    }
  }

  test('the inbox list does not scroll sideways', async () => {
    const { page } = await inbox.newPage({ signIn: ADMIN, viewport });
    await page.goto('/taskui?view=all');
    await page.locator(`#task-row-${busyId}`).waitFor();
    expect(await page.getByRole('region', { name: 'Tasks', exact: true }).isVisible()).toBe(true);
    expect(await page.getByRole('region', { name: 'Task', exact: true }).isVisible()).toBe(false); // one pane at a time
    expectNoSideways(await overflow(page, ['.app-header', '.list-pane', '.filters', '.task-list', `#task-row-${busyId}`]));
    expect(await page.evaluate(() => window.scrollX)).toBe(0);
  });

  test('the task view does not scroll sideways, and every state button is at least 44 px tall', async () => {
    const { page } = await inbox.newPage({ signIn: ADMIN, viewport });
    await page.goto(`/taskui?view=all`);
    await page.locator(`#task-row-${busyId}`).click();
    await page.getByRole('heading', { level: 1, name: 'flag-content' }).waitFor();
    expect(await page.getByRole('region', { name: 'Tasks', exact: true }).isVisible()).toBe(false);
    await page.getByRole('link', { name: 'Back to the list' }).waitFor();
    await page.getByRole('region', { name: 'History' }).getByRole('listitem').first().waitFor();
    expectNoSideways(await overflow(page, ['.app-header', '.task-pane', '.task-view', '.meta-table', '.state-buttons']));

    const buttons = page.getByRole('group', { name: 'Set the state' }).getByRole('button');
    expect(await buttons.count()).toBe(5);
    for (const button of await buttons.all()) {
      const box = await button.boundingBox();
      expect(box, await button.textContent() ?? '').not.toBeNull();
      expect(box!.height, `${await button.textContent()} height`).toBeGreaterThanOrEqual(44);
      expect(box!.width, `${await button.textContent()} width`).toBeGreaterThanOrEqual(44);
      expect(box!.x + box!.width, `${await button.textContent()} is off screen`).toBeLessThanOrEqual(viewport.width);
    }

    // Back goes to the list, which still fits.
    await page.getByRole('link', { name: 'Back to the list' }).click();
    await page.locator(`#task-row-${plainId}`).waitFor();
    expectNoSideways(await overflow(page, ['.list-pane', '.task-list']));
  });
});
