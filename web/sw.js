// task-inbox service worker (classic script, no imports).
// The build (serviceWorker() in vite.config.ts) substitutes two tokens, each on its first
// occurrence only, so they appear exactly once below and never in a comment:
//   the precache list -> a JSON array of URL paths: '/taskui' (the page) and every built file
//   the version       -> a string that changes whenever any precached file does
/* eslint-env serviceworker */
'use strict';

/** @type {string[]} */
const PRECACHE = self.__PRECACHE__ || ['/taskui'];
/** @type {string} */
const VERSION = self.__VERSION__ || 'dev';

const CACHE_PREFIX = 'task-inbox-shell-';
const CACHE = CACHE_PREFIX + VERSION;
/** The cached page that every inbox navigation falls back to when offline. */
const SHELL = '/taskui';

/** Never handled here: the API, health and metrics probes, push, and the VAPID key. */
const BYPASS = /^\/(api|push)(\/|$)|^\/(health|livez|readyz|metrics|\.vapid-pk)(\/|$)/;
/** Navigations that get the inbox page (the server's client-side routes). */
const PAGE = /^\/(taskui(\/.*)?|setup)?$/;

// Install: fetch the whole shell. 'no-cache' revalidates with the server so an HTTP-cached
// copy from an older deploy can't slip in. No skipWaiting() here: the page asks the person
// first and then posts 'skip-waiting'.
self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: 'no-cache' })))),
  );
});

// Activate: drop the shells of older versions, then take control of open pages.
self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith(CACHE_PREFIX) && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || BYPASS.test(url.pathname)) return;

  if (request.mode === 'navigate') {
    if (!PAGE.test(url.pathname)) return;
    // Network first, so a signed-in page is always current; the cached page when offline.
    // The fresh response is not written back: the cached page must keep matching the cached
    // assets of this version (the next version's worker precaches its own).
    event.respondWith(
      fetch(request).catch(() =>
        caches
          .open(CACHE)
          .then((cache) => cache.match(SHELL))
          .then((cached) => cached || Response.error()),
      ),
    );
    return;
  }

  // Hashed /assets/*, icons, manifest: cache first, then the network (not stored).
  event.respondWith(
    caches
      .open(CACHE)
      .then((cache) => cache.match(request))
      .then((cached) => cached || fetch(request)),
  );
});

// ---- Push notifications -------------------------------------------------------------------
// The server sends a PushMessage (src/contract/notifications.ts) as JSON: title, body, tag,
// renotify and url (a path on the inbox). /push/ and /.vapid-pk are left to the network by the
// fetch handler above.

const ICON = '/icons/icon-192.png';

/** The inbox page a notification opens: a path on this origin, or the inbox itself. */
function inboxUrl(url) {
  try {
    const target = new URL(typeof url === 'string' && url ? url : SHELL, self.location.origin);
    return target.origin === self.location.origin ? target.href : new URL(SHELL, self.location.origin).href;
  } catch {
    return new URL(SHELL, self.location.origin).href;
  }
}

/** What to show for a push: the server's message, or the plain text of anything else. */
function readPush(data) {
  if (!data) return { title: 'task-inbox', body: 'Something new in the inbox.' };
  let text = '';
  try {
    text = data.text();
    const msg = JSON.parse(text);
    if (msg && typeof msg === 'object') return msg;
  } catch {
    /* not JSON: show the text as it is */
  }
  return { title: 'task-inbox', body: text };
}

self.addEventListener('push', (event) => {
  const msg = readPush(event.data);
  const title = typeof msg.title === 'string' && msg.title ? msg.title : 'task-inbox';
  const tag = typeof msg.tag === 'string' ? msg.tag : '';
  const options = {
    body: typeof msg.body === 'string' ? msg.body : '',
    icon: ICON,
    data: { url: inboxUrl(msg.url) },
  };
  // Messages of one type share a tag (they replace each other); renotify alerts again, and
  // browsers refuse it without a tag.
  if (tag) {
    options.tag = tag;
    options.renotify = msg.renotify === true;
  }
  event.waitUntil(self.registration.showNotification(title, options));
});

// A click: focus an open inbox window and show the task there, or open a new window.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = inboxUrl(event.notification.data && event.notification.data.url);
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
      const mine = windows.filter((w) => new URL(w.url).origin === self.location.origin);
      const inbox = mine.find((w) => PAGE.test(new URL(w.url).pathname)) || mine[0];
      if (!inbox) return self.clients.openWindow(url);
      return inbox
        .focus()
        .then((w) => (w || inbox).navigate(url))
        .catch(() => self.clients.openWindow(url));
    }),
  );
});

/** The bytes of a base64url string (the VAPID key). */
function base64UrlBytes(text) {
  const b64 = text.trim().replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function postJson(path, body) {
  return fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

// The push service replaced or expired the subscription: subscribe again with the server's key
// and register the new one (the session cookie says whose it is); forget the old endpoint.
self.addEventListener('pushsubscriptionchange', (event) => {
  const old = event.oldSubscription;
  event.waitUntil(
    Promise.resolve(event.newSubscription || null)
      .then((fresh) =>
        fresh ||
        fetch('/.vapid-pk', { credentials: 'same-origin' })
          .then((res) => {
            if (!res.ok) throw new Error('GET /.vapid-pk answered ' + res.status);
            return res.text();
          })
          .then((key) => self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64UrlBytes(key) })),
      )
      .then((sub) =>
        postJson('/push/register', { sub: sub.toJSON() }).then(() =>
          old && old.endpoint && old.endpoint !== sub.endpoint ? postJson('/push/unregister', { endpoint: old.endpoint }) : undefined,
        ),
      )
      .catch((error) => console.warn('task-inbox: could not renew the push subscription', error)),
  );
});
