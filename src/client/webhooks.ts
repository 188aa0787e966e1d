import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { WebhookPayload } from '../contract/index.js';
import { WebhookVerificationError } from './errors.js';

/** Request headers as Node (`req.headers`), Express, Fastify or the Fetch API (`Headers`) give them. */
export type IncomingHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** The schema's `hook_auth.kind` (default `standard`). Never take it from the request. */
  kind?: 'standard' | 'head';
  /** `head` only: the header carrying the key, the schema's `hook_auth.val` (default `ti-key`). */
  header?: string;
  /** `standard` only: how far `webhook-timestamp` may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** `standard` only: the current time in Unix seconds (for tests). */
  now?: number;
}

/**
 * Checks that a webhook request comes from task-inbox and returns its payload; throws
 * `WebhookVerificationError` otherwise (answer 401; 400 for `bad-body`).
 *
 * - `body`: the **raw** request body (a string or the received bytes), not JSON parsed and
 *   serialised again: the signature covers the exact bytes.
 * - `secret`: the webhook key from `task-inbox webhook_key SCHEMA` (for `standard`, the
 *   `whsec_…` secret). Several during a rotation: any of them is accepted.
 * - `standard`: `webhook-signature` must hold a `v1,` signature (of possibly several, space
 *   separated) equal to base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed with
 *   the secret's bytes, compared in constant time; `webhook-timestamp` must be within
 *   `toleranceSeconds` of now (replays of old requests fail).
 * - `head`: the header named `header` must equal a secret (constant-time).
 *
 * Then drop a `webhook-id` you have already handled: async deliveries come at least once.
 */
export function verifyWebhook(body: string | Uint8Array, headers: IncomingHeaders, secret: string | readonly string[], opts: VerifyWebhookOptions = {}): WebhookPayload {
  const secrets = (typeof secret === 'string' ? [secret] : [...secret]).filter((s) => s.length > 0);
  if (secrets.length === 0) throw new TypeError('verifyWebhook: no secret given (the key printed by `task-inbox webhook_key SCHEMA`)');
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const kind = opts.kind ?? 'standard';
  if (kind === 'head') verifyHead(headers, secrets, (opts.header ?? 'ti-key').toLowerCase());
  else if (kind === 'standard') verifyStandard(raw, headers, secrets, opts);
  else throw new TypeError(`verifyWebhook: kind must be 'standard' or 'head', not '${String(kind)}'`);

  let payload: unknown;
  try {
    payload = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new WebhookVerificationError('bad-body', 'The webhook body is not JSON.');
  }
  const p = payload as Partial<WebhookPayload> | null;
  if (!p || typeof p !== 'object' || typeof p.event !== 'string' || !p.task || typeof p.task !== 'object') {
    throw new WebhookVerificationError('bad-body', 'The webhook body is not a task-inbox event (no `event` or `task`).');
  }
  return payload as WebhookPayload;
}

function verifyHead(headers: IncomingHeaders, secrets: string[], name: string) {
  const given = headerOf(headers, name);
  if (given === undefined || given === '') throw new WebhookVerificationError('missing-header', `The request has no ${name} header.`);
  // Hashing first gives equal lengths, so the comparison leaks neither the key's length nor where it differs.
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  const g = digest(given);
  let ok = false;
  for (const s of secrets) ok = timingSafeEqual(g, digest(s)) || ok;
  if (!ok) throw new WebhookVerificationError('wrong-key', `The ${name} header does not hold the webhook key.`);
}

function verifyStandard(raw: Buffer, headers: IncomingHeaders, secrets: string[], opts: VerifyWebhookOptions) {
  const id = headerOf(headers, 'webhook-id');
  const timestamp = headerOf(headers, 'webhook-timestamp');
  const signature = headerOf(headers, 'webhook-signature', ' ');
  for (const [name, value] of [['webhook-id', id], ['webhook-timestamp', timestamp], ['webhook-signature', signature]] as const) {
    if (value === undefined || value === '') throw new WebhookVerificationError('missing-header', `The request has no ${name} header.`);
  }
  if (!/^\d{1,15}$/.test(timestamp!)) throw new WebhookVerificationError('bad-timestamp', 'webhook-timestamp is not a Unix time in seconds.');
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const tolerance = opts.toleranceSeconds ?? 300;
  const age = now - Number(timestamp);
  if (age > tolerance) throw new WebhookVerificationError('timestamp-too-old', `webhook-timestamp is ${age} s old (more than ${tolerance} s): a replay, or a clock off.`);
  if (-age > tolerance) throw new WebhookVerificationError('timestamp-in-future', `webhook-timestamp is ${-age} s in the future (more than ${tolerance} s): a clock off.`);

  const given = signature!
    .split(/\s+/) // several during a key rotation
    .map((s) => s.replace(/,$/, '')) // a repeated header joined with ', '
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  let ok = false;
  for (const secret of secrets) {
    const expected = createHmac('sha256', secretBytes(secret)).update(`${id}.${timestamp}.`, 'utf8').update(raw).digest();
    for (const g of given) if (g.length === expected.length && timingSafeEqual(g, expected)) ok = true;
  }
  if (!ok) throw new WebhookVerificationError('bad-signature', 'No webhook-signature matches the body and secret: the body was altered, or the secret is not this schema’s.');
}

/** The HMAC key of a Standard Webhooks secret: the base64 after `whsec_` (as the server derives it). */
function secretBytes(secret: string): Buffer {
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new TypeError("verifyWebhook: a 'standard' secret is 'whsec_' followed by base64 (the key `task-inbox webhook_key` printed)");
  return Buffer.from(b64, 'base64');
}

/** A header's value, case-insensitively; repeated headers are joined with `join`. */
function headerOf(headers: IncomingHeaders, name: string, join = ','): string | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    return (headers as Headers).get(name)?.trim() ?? undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  let value = record[name];
  if (value === undefined) {
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  return Array.isArray(value) ? value.map((v) => v.trim()).join(join) : value?.trim();
}
