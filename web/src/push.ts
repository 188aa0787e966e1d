// Web push on this device: whether the browser can do it, and turning it on and off. The
// permission is asked only from `enablePush`, i.e. after the person pressed the button.
import { api } from './api';

/** Where push stands on this device. */
export type PushState = 'unsupported' | 'insecure' | 'denied' | 'off' | 'on';

const SERVICE_WORKER_WAIT_MS = 15_000;

function hasPushApi(): boolean {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** The bytes of a base64url string (the VAPID key is sent that way). */
export function base64UrlBytes(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.trim().replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function sameBytes(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
}

/** The service worker's registration; it is registered after the page loads, so this may wait a little. */
async function registration(): Promise<ServiceWorkerRegistration> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('The inbox’s service worker is not running, so push cannot be set up. Reload the page and try again.')), SERVICE_WORKER_WAIT_MS);
  });
  try {
    return await Promise.race([navigator.serviceWorker.ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** This device's subscription, if the service worker is registered and subscribed. */
async function currentSubscription(): Promise<PushSubscription | null> {
  const reg = await navigator.serviceWorker.getRegistration();
  return reg ? reg.pushManager.getSubscription() : null;
}

/** Where push stands now, without asking the person anything. */
export async function pushState(): Promise<PushState> {
  if (!window.isSecureContext) return 'insecure';
  if (!hasPushApi()) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  if (Notification.permission !== 'granted') return 'off';
  return (await currentSubscription()) ? 'on' : 'off';
}

/**
 * Tells the server again about this device's subscription (it may have been dropped, e.g. at a
 * sign-out, or belong to the person signed in before). Quiet: nothing is asked.
 */
export async function syncPush(): Promise<void> {
  const sub = await currentSubscription();
  if (sub) await api.pushRegister(sub.toJSON() as Parameters<typeof api.pushRegister>[0]);
}

/**
 * Asks for the permission, subscribes this device with the server's VAPID key and registers the
 * subscription. Resolves to the state afterwards ('denied' when the person or browser said no,
 * 'off' when the question was dismissed).
 */
export async function enablePush(): Promise<PushState> {
  const permission = await Notification.requestPermission();
  if (permission === 'denied') return 'denied';
  if (permission !== 'granted') return 'off';
  const key = base64UrlBytes(await api.vapidKey());
  const reg = await registration();
  let sub = await reg.pushManager.getSubscription();
  // A subscription made with another key (the server's key changed) cannot be used: replace it.
  if (sub && !sameBytes(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await api.pushRegister(sub.toJSON() as Parameters<typeof api.pushRegister>[0]);
  return 'on';
}

/** Unsubscribes this device (so nothing more arrives here), then tells the server. */
export async function disablePush(): Promise<void> {
  const sub = await currentSubscription();
  if (!sub) return;
  const endpoint = sub.endpoint;
  await sub.unsubscribe();
  await api.pushUnregister(endpoint);
}
