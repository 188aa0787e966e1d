import { afterAll, beforeAll, expect, test } from 'vitest';
import { ADMIN, startInbox, type Inbox } from './harness.js';

// Task metadata comes from application servers and is shown to people: it must stay text.

const IMG = '<img src=x onerror=alert(1)>';
const JS_URL = 'javascript:alert(1)';
const SHOT = 'https://images.example.test/shots/frame-17.png';

let inbox: Inbox;
beforeAll(async () => {
  inbox = await startInbox();
});
afterAll(async () => inbox?.close());

test('hostile metadata is shown as text: no script runs, no element or javascript: link is made', async () => {
  const { task } = await inbox.postTask({
    task: 'flag-content',
    meta: { comment: IMG, [IMG]: 'as a key', link__preview: JS_URL, shot__preview: SHOT },
  });
  const { page, context } = await inbox.newPage({ signIn: ADMIN });
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  // Previews load from the network: answer the test host's image locally (a 1×1 PNG).
  await context.route('https://images.example.test/**', (route) =>
    route.fulfill({ status: 200, contentType: 'image/png', body: Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64') }),
  );

  // The list's summary line shows the value as text too.
  const row = page.locator(`#task-row-${task.id}`);
  await row.waitFor();
  expect(await row.locator('.summary').textContent()).toContain(`comment: ${IMG}`);

  await row.click();
  await page.getByRole('heading', { level: 1, name: 'flag-content' }).waitFor();
  const table = page.getByRole('table', { name: 'Metadata' });
  await table.waitFor();

  // The three hostile texts, visible as text: as a value, as a key, and as a preview "URL".
  const valueCell = table.getByRole('row', { name: /^comment/ }).getByRole('cell');
  expect(await valueCell.textContent()).toBe(IMG);
  expect(await valueCell.isVisible()).toBe(true);
  const keyHeader = table.getByRole('rowheader', { name: IMG, exact: true });
  expect(await keyHeader.isVisible()).toBe(true);
  expect(await table.getByRole('row', { name: /^</ }).getByRole('cell').textContent()).toBe('as a key');
  const linkCell = table.getByRole('row', { name: /^link/ }).getByRole('cell');
  expect(await linkCell.textContent()).toBe(JS_URL);
  expect(await linkCell.isVisible()).toBe(true);
  expect(await linkCell.locator('a').count()).toBe(0);
  for (const text of [IMG, JS_URL]) expect(await page.getByText(text, { exact: true }).first().isVisible()).toBe(true);

  // The safe preview: a link and a lazy image.
  const shotCell = table.getByRole('row', { name: /^shot/ }).getByRole('cell');
  const shotLink = shotCell.getByRole('link', { name: SHOT });
  expect(await shotLink.getAttribute('href')).toBe(SHOT);
  expect(await shotLink.getAttribute('rel')).toContain('noopener');
  const shotImg = shotCell.getByRole('img', { name: 'shot preview' });
  expect(await shotImg.getAttribute('src')).toBe(SHOT);
  expect(await shotImg.getAttribute('loading')).toBe('lazy');
  await page.waitForFunction(() => [...document.images].some((i) => i.alt === 'shot preview' && i.complete && i.naturalWidth === 1));

  // Give an injected handler the chance to run, then look at the whole document.
  await page.waitForTimeout(300);
  expect(dialogs).toEqual([]);
  const dom = await page.evaluate(() => ({
    imgX: [...document.querySelectorAll('img')].filter((i) => i.getAttribute('src') === 'x' || i.src.endsWith('/x')).length,
    onerror: document.querySelectorAll('[onerror]').length,
    jsLinks: [...document.querySelectorAll('a')].filter((a) => /^\s*javascript:/i.test(a.getAttribute('href') ?? '') || a.protocol === 'javascript:').length,
    images: [...document.querySelectorAll('img')].map((i) => i.getAttribute('src')),
  }));
  expect(dom).toMatchObject({ imgX: 0, onerror: 0, jsLinks: 0 });
  expect(dom.images.sort()).toEqual(['/icons/icon.svg', SHOT]);
});
