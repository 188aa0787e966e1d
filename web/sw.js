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
// Reserved for the later push issue: 'push' (show a notification), 'notificationclick'
// (focus or open /taskui/...) and 'pushsubscriptionchange' listeners go here. /push/ and
// /.vapid-pk are already left to the network by the fetch handler above.
