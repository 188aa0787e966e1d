import { createECDH, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ADMIN, MEMBER, seriousA11yViolations, startInbox, type Inbox } from './harness.js';

/*
 * Notifications in the inbox, in a real browser against a real server: turning web push on and
 * off for this device, the service worker showing a pushed message, channels (a generic JSON
 * webhook tested against a local receiver), which tasks notify, the admin's notification log,
 * accessibility and the phone layout.
 *
 * This machine has no internet, so the browser's own push service (Google's, for Chromium)
 * cannot be reached: `PushManager.prototype.subscribe` is replaced before the page loads by a
 * stand-in that records the key it is given and returns a subscription whose endpoint is a
 * local HTTP server of this test, with a real P-256 key and auth secret made here. The server
 * then really encrypts and sends to that endpoint, and this test decrypts what arrives.
 */

const ece = createRequire(import.meta.url)('http_ece') as { decrypt(buffer: Buffer, params: { version: string; privateKey: unknown; authSecret: string }): Buffer };

interface Hit {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One local server: `/push-service/*` plays the browser's push service (201), `/hook` a webhook receiver (200). */
async function startLocalServer() {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hits.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(req.url?.startsWith('/push-service/') ? 201 : 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    hits,
    async waitFor(pred: (h: Hit) => boolean, ms = 15_000): Promise<Hit> {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = hits.find(pred);
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no matching request arrived; got ${JSON.stringify(hits.map((h) => `${h.method} ${h.path}`))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let inbox: Inbox;
let local: Awaited<ReturnType<typeof startLocalServer>>;
/** The browser's key pair and auth secret for the stand-in subscription (as a real browser makes them). */
const ecdh = createECDH('prime256v1');
const p256dh = ecdh.generateKeys().toString('base64url');
const auth = randomBytes(16).toString('base64url');

beforeAll(async () => {
  inbox = await startInbox();
  local = await startLocalServer();
});
afterAll(async () => {
  await local?.close();
  await inbox?.close();
});

interface PushProbe {
  requests: number;
  keys: number[][];
  unsubscribed: number;
}

/**
 * Before any page script: counts Notification.requestPermission calls, and replaces the push
 * manager's subscribe/getSubscription with the stand-in (kept in localStorage across reloads).
 */
async function installPushStandIn(context: BrowserContext, endpoint: string) {
  await context.addInitScript(
    ({ endpoint, p256dh, auth }) => {
      const w = window as unknown as { __push: PushProbe };
      w.__push = { requests: 0, keys: [], unsubscribed: 0 };
      if (!('Notification' in window) || !('PushManager' in window)) return;
      const original = Notification.requestPermission.bind(Notification);
      Notification.requestPermission = ((cb?: NotificationPermissionCallback) => {
        w.__push.requests++;
        return original(cb);
      }) as typeof Notification.requestPermission;

      const STORE = 'test-push-subscription';
      const make = (key: number[]) => {
        const json = { endpoint, expirationTime: null, keys: { p256dh, auth } };
        return {
          endpoint,
          expirationTime: null,
          options: { userVisibleOnly: true, applicationServerKey: new Uint8Array(key).buffer },
          getKey: () => null,
          toJSON: () => json,
          unsubscribe: async () => {
            w.__push.unsubscribed++;
            localStorage.removeItem(STORE);
            return true;
          },
        } as unknown as PushSubscription;
      };
      PushManager.prototype.subscribe = async function (options?: PushSubscriptionOptionsInit) {
        const k = options?.applicationServerKey;
        if (!k || typeof k === 'string') throw new TypeError('the stand-in expects the key as bytes');
        const bytes = k instanceof ArrayBuffer ? new Uint8Array(k) : new Uint8Array(k.buffer, k.byteOffset, k.byteLength);
        const key = Array.from(bytes);
        w.__push.keys.push(key);
        localStorage.setItem(STORE, JSON.stringify(key));
        return make(key);
      };
      PushManager.prototype.getSubscription = async function () {
        const saved = localStorage.getItem(STORE);
        return saved ? make(JSON.parse(saved) as number[]) : null;
      };
    },
    { endpoint, p256dh, auth },
  );
}

/** Saves a screenshot when E2E_SCREENSHOTS names a folder (to look at the screens by eye). */
async function shot(page: Page, name: string) {
  const dir = process.env.E2E_SCREENSHOTS;
  if (dir) await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
}

const probe = (page: Page) => page.evaluate(() => (window as unknown as { __push: PushProbe }).__push);

/** A signed-in API call from inside the page (its session cookie). */
async function inPage<T>(page: Page, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  return page.evaluate(
    async ({ method, path, body }) => {
      const res = await fetch(path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, json: (text ? JSON.parse(text) : null) as T };
    },
    { method, path, body },
  );
}

interface Settings {
  topics: { schema: string; type: string | null }[] | null;
  channels: { id: string; kind: string; label: string; digest_minutes: number | null; last_error: string | null }[];
  push: { devices: number };
  email_available: boolean;
}
const settings = async (page: Page) => {
  const res = await inPage<Settings>(page, 'GET', '/api/v1/me/notifications');
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json;
};

async function openAccount(page: Page) {
  await page.goto('/taskui/account');
  await page.getByRole('heading', { level: 2, name: 'Notifications' }).waitFor();
  await page.getByText('Checking this browser…').waitFor({ state: 'detached' });
}

const pushSection = (page: Page) => page.getByRole('region', { name: 'Push notifications on this device' });

describe('web push on this device', () => {
  let context: BrowserContext;
  let page: Page;
  const endpoint = () => `${local.url}/push-service/abc`;

  beforeAll(async () => {
    ({ page, context } = await inbox.newPage({ signIn: MEMBER }));
    await context.grantPermissions(['notifications'], { origin: inbox.url });
    await installPushStandIn(context, endpoint());
  });

  test('loading the account page asks nothing; "Enable push notifications" subscribes with the server key and registers the device', async () => {
    await openAccount(page);
    const section = pushSection(page);
    const enable = section.getByRole('button', { name: 'Enable push notifications' });
    await enable.waitFor();
    expect((await probe(page)).requests).toBe(0);
    expect((await settings(page)).push.devices).toBe(0);

    // The service worker must be up before the click's subscribe (the app registers it after load).
    await page.evaluate(async () => void (await navigator.serviceWorker.ready));
    const registered = page.waitForRequest((r) => r.url() === `${inbox.url}/push/register` && r.method() === 'POST');
    await enable.click();
    const request = await registered;
    await section.getByText('This device shows a notification when a new task arrives').waitFor();

    const p = await probe(page);
    expect(p.requests).toBe(1);
    const vapid = await (await fetch(`${inbox.url}/.vapid-pk`)).text();
    expect(p.keys).toEqual([Array.from(Buffer.from(vapid.trim(), 'base64url'))]);
    expect(p.keys[0]).toHaveLength(65); // an uncompressed P-256 public key
    expect(request.postDataJSON()).toEqual({ sub: { endpoint: endpoint(), expirationTime: null, keys: { p256dh, auth } } });

    expect((await settings(page)).push.devices).toBe(1);
    await section.getByText('1 device of yours receives push notifications.').waitFor();
    expect(await section.getByRole('button', { name: 'Turn off on this device' }).isVisible()).toBe(true);
  });

  test('"Send a test" reaches the push service, encrypted for this device and signed with the VAPID key', async () => {
    const before = local.hits.length;
    await pushSection(page).getByRole('button', { name: 'Send a test' }).click();
    await pushSection(page).getByRole('status').filter({ hasText: 'Sent to 1 device.' }).waitFor();
    const hit = await local.waitFor((h) => h.path === '/push-service/abc' && local.hits.indexOf(h) >= before);
    expect(hit.method).toBe('POST');
    expect(hit.headers['content-encoding']).toBe('aes128gcm');
    expect(hit.headers.ttl).toMatch(/^\d+$/);
    const vapid = (await (await fetch(`${inbox.url}/.vapid-pk`)).text()).trim();
    expect(hit.headers.authorization).toMatch(new RegExp(`^vapid t=[\\w-]+\\.[\\w-]+\\.[\\w-]+, k=${vapid}$`));
    const message = JSON.parse(ece.decrypt(hit.body, { version: 'aes128gcm', privateKey: ecdh, authSecret: auth }).toString('utf8')) as Record<string, unknown>;
    expect(message).toMatchObject({ title: expect.any(String), body: expect.any(String), tag: expect.any(String), url: expect.stringMatching(/^\//) });
  });

  test('after a reload it still says on (and still asked nothing more)', async () => {
    await openAccount(page);
    await pushSection(page).getByText('This device shows a notification when a new task arrives').waitFor();
    expect((await probe(page)).requests).toBe(0);
  });

  test('the service worker shows a pushed message as a notification', async () => {
    const cdp = await context.newCDPSession(page);
    const registrationId = new Promise<string>((resolve) => {
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const reg = registrations.find((r) => r.scopeURL === `${inbox.url}/` && !r.isDeleted);
        if (reg) resolve(reg.registrationId);
      });
    });
    await cdp.send('ServiceWorker.enable');
    const message = { title: 'new approve', body: 'acme:moderation · flag-content', tag: 'acme:moderation/flag-content', renotify: true, url: '/taskui/tasks/00000000-0000-0000-0000-000000000001' };
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: inbox.url, registrationId: await registrationId, data: JSON.stringify(message) });

    const shown = await page.waitForFunction(
      async () => {
        const list = await (await navigator.serviceWorker.ready).getNotifications();
        return list.length ? list.map((n) => ({ title: n.title, body: n.body, tag: n.tag, renotify: (n as Notification & { renotify?: boolean }).renotify, icon: n.icon, data: n.data as unknown })) : null;
      },
      undefined,
      { timeout: 5000, polling: 100 },
    );
    const notes = await shown.jsonValue();
    expect(notes).toEqual([{ title: message.title, body: message.body, tag: message.tag, renotify: true, icon: `${inbox.url}/icons/icon-192.png`, data: { url: `${inbox.url}${message.url}` } }]);

    // Not JSON: the text itself, under the app's name.
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: inbox.url, registrationId: await registrationId, data: 'plain words' });
    await page.waitForFunction(async () => (await (await navigator.serviceWorker.ready).getNotifications()).some((n) => n.title === 'task-inbox' && n.body === 'plain words'), undefined, { timeout: 5000, polling: 100 });
    await cdp.detach();
  });

  test('"Turn off on this device" unsubscribes and unregisters the device', async () => {
    const unregistered = page.waitForRequest((r) => r.url() === `${inbox.url}/push/unregister` && r.method() === 'POST');
    await pushSection(page).getByRole('button', { name: 'Turn off on this device' }).click();
    expect((await unregistered).postDataJSON()).toEqual({ endpoint: endpoint() });
    await pushSection(page).getByRole('button', { name: 'Enable push notifications' }).waitFor();
    expect((await probe(page)).unsubscribed).toBe(1);
    await expect.poll(async () => (await settings(page)).push.devices).toBe(0);
  });

  test('blocked by the browser: says how to allow it, and offers no button', async () => {
    const { page: blocked, context: ctx } = await inbox.newPage({ signIn: MEMBER });
    const cdp = await inbox.browser.newBrowserCDPSession();
    await cdp.send('Browser.setPermission', { permission: { name: 'notifications' }, setting: 'denied', origin: inbox.url, browserContextId: await contextId(ctx) });
    await openAccount(blocked);
    await pushSection(blocked).getByText('Notifications are blocked for this site by the browser.').waitFor();
    expect(await pushSection(blocked).getByRole('button', { name: 'Enable push notifications' }).count()).toBe(0);
    await cdp.detach();
  });

  test('no PushManager: says this browser cannot receive push', async () => {
    const { page: old, context: ctx } = await inbox.newPage({ signIn: MEMBER });
    await ctx.addInitScript(() => {
      delete (window as unknown as { PushManager?: unknown }).PushManager;
    });
    await openAccount(old);
    await pushSection(old).getByText('This browser cannot receive push notifications.').waitFor();
    expect(await pushSection(old).getByRole('button', { name: 'Enable push notifications' }).count()).toBe(0);
  });
});

/** The DevTools id of a Playwright browser context (for Browser.* commands that take one). */
async function contextId(context: BrowserContext): Promise<string> {
  const page = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(page);
  const { targetInfo } = await cdp.send('Target.getTargetInfo');
  await cdp.detach();
  return targetInfo.browserContextId!;
}

describe('channels and topics', () => {
  let page: Page;

  beforeAll(async () => {
    ({ page } = await inbox.newPage({ signIn: MEMBER }));
  });

  test('a generic JSON webhook: added, tested against a local receiver, delivery changed, removed', async () => {
    await openAccount(page);
    const channels = page.getByRole('region', { name: 'Channels' });
    await channels.getByText('No channel yet.').waitFor();
    await channels.getByRole('button', { name: 'Add a channel' }).click();
    const form = page.getByRole('form', { name: 'Add a channel' });
    await form.getByLabel('Kind').selectOption({ label: 'Generic JSON webhook' });
    await form.getByLabel('Receiver address').fill(`${local.url}/hook`);
    await form.getByRole('radio', { name: /digest/ }).check();
    await form.getByLabel('Every how many').fill('2');
    await form.getByLabel('Unit').selectOption('hours');
    await form.getByRole('button', { name: 'Add channel' }).click();
    await form.waitFor({ state: 'detached' });

    const list = channels.getByRole('list', { name: 'Your channels' });
    const item = list.getByRole('listitem');
    await item.getByText('Sends digest every 2 hours').waitFor();
    expect(await item.count()).toBe(1);
    const [channel] = (await settings(page)).channels;
    expect(channel).toMatchObject({ kind: 'webhook', digest_minutes: 120, last_error: null });
    expect(await item.getByText('Generic JSON webhook', { exact: true }).isVisible()).toBe(true);

    // The test message reaches the receiver as a JSON POST, and the inbox says so.
    const before = local.hits.length;
    await item.getByRole('button', { name: /^Send a test/ }).click();
    await item.getByRole('status').filter({ hasText: 'Test sent' }).waitFor();
    const hit = await local.waitFor((h) => h.path === '/hook' && local.hits.indexOf(h) >= before);
    expect(hit.method).toBe('POST');
    expect(hit.headers['content-type']).toMatch(/^application\/json/);
    expect(() => JSON.parse(hit.body.toString('utf8'))).not.toThrow();

    // Delivery: back to immediately.
    await item.getByRole('button', { name: /^Change delivery/ }).click();
    await item.getByRole('radio', { name: /^Immediately/ }).check();
    await item.getByRole('button', { name: 'Save' }).click();
    await item.getByText('Sends immediately').waitFor();
    expect((await settings(page)).channels[0]!.digest_minutes).toBeNull();

    page.once('dialog', (d) => void d.accept());
    await item.getByRole('button', { name: 'Remove' }).click();
    await channels.getByText('No channel yet.').waitFor();
    expect((await settings(page)).channels).toEqual([]);
  });

  test('email is offered only when the server can send it', async () => {
    const s = await settings(page);
    await openAccount(page);
    const channels = page.getByRole('region', { name: 'Channels' });
    await channels.getByRole('button', { name: 'Add a channel' }).click();
    const email = page.getByRole('form', { name: 'Add a channel' }).getByRole('option', { name: /^Email/ });
    expect(await email.isDisabled()).toBe(!s.email_available);
    if (!s.email_available) expect(await channels.getByText('the administrator needs to set SMTP_URL').isVisible()).toBe(true);
    await page.getByRole('form', { name: 'Add a channel' }).getByRole('button', { name: 'Cancel' }).click();
  });

  test('which tasks notify me: chosen types are saved, and "All schemas and types" saves null', async () => {
    await openAccount(page);
    const topics = page.getByRole('form', { name: 'Which new tasks notify me' });
    expect(await topics.getByRole('radio', { name: 'All schemas and types' }).isChecked()).toBe(true);
    await topics.getByRole('radio', { name: 'Only the ones I choose' }).check();
    const schema = topics.getByRole('group', { name: 'acme:moderation' });
    await schema.getByRole('checkbox', { name: 'flag-content' }).check();
    await topics.getByRole('button', { name: 'Save' }).click();
    await topics.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    expect((await settings(page)).topics).toEqual([{ schema: 'acme:moderation', type: 'flag-content' }]);

    // The whole schema covers its types.
    await schema.getByRole('checkbox', { name: /^Every type of acme:moderation/ }).check();
    expect(await schema.getByRole('checkbox', { name: 'delete-acct' }).isDisabled()).toBe(true);
    await topics.getByRole('button', { name: 'Save' }).click();
    await topics.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    expect((await settings(page)).topics).toEqual([{ schema: 'acme:moderation', type: null }]);

    // A reload shows what was saved.
    await openAccount(page);
    expect(await topics.getByRole('radio', { name: 'Only the ones I choose' }).isChecked()).toBe(true);
    expect(await topics.getByRole('group', { name: 'acme:moderation' }).getByRole('checkbox', { name: /^Every type/ }).isChecked()).toBe(true);

    await topics.getByRole('radio', { name: 'All schemas and types' }).check();
    await topics.getByRole('button', { name: 'Save' }).click();
    await topics.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    expect((await settings(page)).topics).toBeNull();
  });
});

describe('the admin notification log', () => {
  test('lists the sent push test and filters by status', async () => {
    const { page } = await inbox.newPage({ signIn: ADMIN });
    await page.goto('/taskui/admin/notifications');
    await page.getByRole('heading', { level: 1, name: 'Notifications' }).waitFor();
    await page.getByText('Loading…').waitFor({ state: 'detached' });
    const table = page.getByRole('table', { name: 'Notifications' });
    await table.waitFor();
    expect(await table.getByRole('row').filter({ hasText: MEMBER.username }).count()).toBeGreaterThan(0);
    await page.getByLabel('Status').selectOption('dead');
    await page.getByText('No notification has this status.').waitFor();
    expect(new URL(page.url()).searchParams.get('status')).toBe('dead');
    await page.getByLabel('Status').selectOption('');
    await table.waitFor();
    await shot(page, 'notification-log');
    expect(await seriousA11yViolations(page)).toEqual([]);
  });

  test('dark, and at 390 px wide: nothing serious for axe, no sideways scrolling', async () => {
    const dark = (await inbox.newPage({ signIn: ADMIN, colorScheme: 'dark' })).page;
    await dark.goto('/taskui/admin/notifications');
    await dark.getByRole('table', { name: 'Notifications' }).waitFor();
    expect(await seriousA11yViolations(dark)).toEqual([]);
    const phone = (await inbox.newPage({ signIn: ADMIN, viewport: { width: 390, height: 844 } })).page;
    await phone.goto('/taskui/admin/notifications');
    await phone.getByRole('table', { name: 'Notifications' }).waitFor();
    expect(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  });
});

describe('accessibility and phones', () => {
  async function openWithChannel(opts: { viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark' }) {
    const { page } = await inbox.newPage({ signIn: MEMBER, ...opts });
    await openAccount(page);
    const channels = page.getByRole('region', { name: 'Channels' });
    if ((await settings(page)).channels.length === 0) {
      await channels.getByRole('button', { name: 'Add a channel' }).click();
      const form = page.getByRole('form', { name: 'Add a channel' });
      await form.getByLabel('Kind').selectOption({ label: 'Generic JSON webhook' });
      await form.getByLabel('Receiver address').fill(`${local.url}/hook/${'a-long-path-segment/'.repeat(6)}end`);
      await form.getByRole('button', { name: 'Add channel' }).click();
      await form.waitFor({ state: 'detached' });
    }
    await channels.getByRole('listitem').first().waitFor();
    // Show every part: the add form and the chosen-topics list.
    await channels.getByRole('button', { name: 'Add a channel' }).click();
    await page.getByRole('form', { name: 'Which new tasks notify me' }).getByRole('radio', { name: 'Only the ones I choose' }).check();
    await page.getByRole('group', { name: 'acme:moderation' }).waitFor();
    await page.waitForTimeout(200);
    return page;
  }

  test.each(['light', 'dark'] as const)('axe-core finds nothing serious on the account page with notifications, %s', async (colorScheme) => {
    const page = await openWithChannel({ colorScheme });
    await shot(page, `notifications-${colorScheme}`);
    expect(await seriousA11yViolations(page)).toEqual([]);
  });

  test('390×844: no sideways scrolling, and the controls are at least 44 px tall', async () => {
    const page = await openWithChannel({ viewport: { width: 390, height: 844 } });
    await shot(page, 'notifications-phone');
    const widths = await page.evaluate(() => {
      const out: Record<string, [number, number]> = { document: [document.documentElement.scrollWidth, window.innerWidth] };
      for (const s of ['.notifications', '.channel-list', '.add-channel', '.topic-schema']) {
        const el = document.querySelector(s);
        out[s] = el ? [el.scrollWidth, el.clientWidth] : [-1, -1];
      }
      return out;
    });
    for (const [what, [scroll, client]] of Object.entries(widths)) {
      expect(client, `${what} is missing`).toBeGreaterThan(0);
      expect(scroll, `${what} scrolls sideways`).toBeLessThanOrEqual(client);
    }
    expect(await page.evaluate(() => window.scrollX)).toBe(0);
    // Buttons, and the rows of radio buttons and checkboxes (the whole label is the target).
    const small = await page.evaluate(() =>
      [...document.querySelectorAll('.notifications button, .notifications .checkbox')]
        .filter((el) => (el as HTMLElement).offsetParent !== null && el.getBoundingClientRect().height < 44)
        .map((el) => `${el.tagName} “${el.textContent?.trim().slice(0, 30)}” ${el.getBoundingClientRect().height}px`),
    );
    expect(small).toEqual([]);
  });
});
