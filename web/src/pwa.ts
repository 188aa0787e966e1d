/// <reference types="vite/client" />
// The installable-app side of the page: service worker registration with an "update ready"
// prompt, and the online/offline state.
import { useSyncExternalStore } from 'react';

const UPDATE_CHECK_MS = 30 * 60 * 1000;

/**
 * Registers /sw.js (production builds only; the dev server has no service worker). When a new
 * version has been deployed and its worker is installed and waiting, `onUpdateReady(apply)` is
 * called; `apply()` lets the waiting worker take over and reloads the page once it does.
 * The first install is silent: there is nothing to replace.
 */
export function registerServiceWorker(onUpdateReady: (apply: () => void) => void): void {
  if (!import.meta.env.PROD || !('serviceWorker' in navigator)) return;
  const container = navigator.serviceWorker;
  let offered: ServiceWorker | null = null;
  let reloading = false;

  const reloadOnce = () => {
    if (reloading) return; // one reload per page, whatever fires
    reloading = true;
    window.location.reload();
  };

  const offer = (worker: ServiceWorker) => {
    // Only an update: with no controller this is the first install, which activates by itself.
    if (offered === worker || !container.controller) return;
    offered = worker;
    onUpdateReady(() => {
      // Another tab may have applied it already: then it is active and this page just reloads.
      if (worker.state === 'activating' || worker.state === 'activated') return reloadOnce();
      if (worker.state === 'redundant') return; // superseded by a newer worker, which will be offered
      // Listen only now, so the controllerchange of a first install (clients.claim) never reloads.
      container.addEventListener('controllerchange', reloadOnce, { once: true });
      worker.postMessage('skip-waiting');
    });
  };

  const watch = (worker: ServiceWorker | null) => {
    if (!worker) return;
    const check = () => {
      if (worker.state === 'installed') offer(worker);
    };
    worker.addEventListener('statechange', check);
    check();
  };

  const register = () => {
    container
      .register('/sw.js', { scope: '/' })
      .then((registration) => {
        if (registration.waiting) offer(registration.waiting); // left waiting by an earlier visit
        watch(registration.installing);
        registration.addEventListener('updatefound', () => watch(registration.installing));

        const checkForUpdate = () => {
          if (document.visibilityState !== 'visible') return;
          registration.update().catch(() => {
            /* offline or the server is down: try again later */
          });
        };
        document.addEventListener('visibilitychange', checkForUpdate);
        window.setInterval(checkForUpdate, UPDATE_CHECK_MS);
      })
      .catch((error: unknown) => {
        console.warn('task-inbox: service worker registration failed', error);
      });
  };

  // Register after the page has loaded, so the precache downloads don't compete with it.
  if (document.readyState === 'complete') register();
  else window.addEventListener('load', register, { once: true });
}

function subscribeOnline(onChange: () => void): () => void {
  window.addEventListener('online', onChange);
  window.addEventListener('offline', onChange);
  return () => {
    window.removeEventListener('online', onChange);
    window.removeEventListener('offline', onChange);
  };
}

/** Whether the browser believes it is online (`navigator.onLine`), updated on online/offline events. */
export function useOnline(): boolean {
  return useSyncExternalStore(
    subscribeOnline,
    () => navigator.onLine,
    () => true,
  );
}
