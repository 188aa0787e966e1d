import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new `webhook-id`: stays the same on every retry of one delivery. */
export const newWebhookId = (): string => `msg_${randomBytes(16).toString('base64url')}`;

/** A Standard Webhooks secret: `whsec_` and base64 of random bytes. */
export const generateStandardSecret = (bytes = 24): string => `whsec_${randomBytes(bytes).toString('base64')}`;

/** A `head` key: sent as is in the configured header. */
export const generateHeaderKey = (bytes = 24): string => randomBytes(bytes).toString('base64url');

/** Whether `text` is a usable Standard Webhooks secret. */
export function isStandardSecret(text: string): boolean {
  if (!text.startsWith('whsec_')) return false;
  const raw = text.slice(6);
  return /^[A-Za-z0-9+/]+={0,2}$/.test(raw) && Buffer.from(raw, 'base64').length >= 16;
}

/** `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the secret's bytes (Standard Webhooks). */
export function signStandard(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** Checks a `webhook-signature` header (space-separated `v1,…` entries) against any of the secrets. */
export function verifyStandard(secrets: string[], id: string, timestamp: number, body: string, header: string): boolean {
  const given = header.split(' ').filter((s) => s.startsWith('v1,'));
  return secrets.some((secret) => {
    const expected = Buffer.from(signStandard(secret, id, timestamp, body));
    return given.some((g) => g.length === expected.length && timingSafeEqual(Buffer.from(g), expected));
  });
}
