/*
 * Web push on this machine: a real local HTTP server standing in for a browser vendor's push
 * service, browser-side subscriptions (a P-256 key pair and an auth secret, as a browser makes
 * them) that can decrypt what arrives (RFC 8291, aes128gcm, with `http_ece`), and a checker for
 * the VAPID `Authorization` header (RFC 8292) with nothing but node:crypto.
 */
import { createECDH, createPublicKey, randomBytes, verify, type ECDH } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';

const ece = createRequire(import.meta.url)('http_ece') as {
  decrypt(buffer: Buffer, params: { version: 'aes128gcm'; privateKey: ECDH; authSecret: string }): Buffer;
};

/** A browser's push subscription and the private half only the browser has. */
export interface Device {
  /** What the browser gives the page (`JSON.stringify(pushSubscription)`), for POST /push/register. */
  sub: { endpoint: string; keys: { p256dh: string; auth: string } };
  ecdh: ECDH;
}

export function makeDevice(endpoint: string): Device {
  const ecdh = createECDH('prime256v1');
  const p256dh = ecdh.generateKeys().toString('base64url');
  return { sub: { endpoint, keys: { p256dh, auth: randomBytes(16).toString('base64url') } }, ecdh };
}

/** Decrypts a pushed body as the browser would (throws if it was not encrypted for this device). */
export function decryptFor(device: Device, body: Buffer): string {
  return ece.decrypt(body, { version: 'aes128gcm', privateKey: device.ecdh, authSecret: device.sub.keys.auth }).toString('utf8');
}

export interface PushHit {
  at: number;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** How the push service answers: a status (after `delayMs`), or `hang` (never answers). */
export type PushAnswer = { status: number; delayMs?: number } | 'hang';

/** A push service on 127.0.0.1. It records every request and answers as `respond` says (default 201). */
export async function startPushService(respond: (hit: PushHit, n: number) => PushAnswer = () => ({ status: 201 }), port = 0) {
  const hits: PushHit[] = [];
  const open = new Set<http.ServerResponse>();
  let handler = respond;
  let inFlight = 0;
  let maxInFlight = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit: PushHit = { at: Date.now(), path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      hits.push(hit);
      const answer = handler(hit, hits.length);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      open.add(res);
      res.on('close', () => {
        if (open.delete(res)) inFlight--;
      });
      if (answer === 'hang') return;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status, { 'content-type': 'text/plain' });
        res.end(answer.status < 300 ? '' : `answered ${answer.status}`);
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    hits,
    /** Requests received and not answered yet. */
    inFlight: () => inFlight,
    maxInFlight: () => maxInFlight,
    setAnswer(fn: typeof respond) {
      handler = fn;
    },
    /** A new subscription whose endpoint is on this service. */
    device: (name: string) => makeDevice(`${origin}/push/${name}`),
    async waitFor(n: number, ms = 20_000, what = (h: PushHit) => true) {
      const deadline = Date.now() + ms;
      while (hits.filter(what).length < n) {
        if (Date.now() > deadline) throw new Error(`the push service got ${hits.filter(what).length} of ${n} requests within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return hits.filter(what);
    },
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type PushService = Awaited<ReturnType<typeof startPushService>>;

/** The key a raw uncompressed P-256 point (base64url, as in `k=` and /.vapid-pk) stands for. */
export function publicKeyOfRaw(raw: string) {
  const point = Buffer.from(raw, 'base64url');
  if (point.length !== 65 || point[0] !== 4) throw new Error(`not an uncompressed P-256 point: ${raw}`);
  const x = point.subarray(1, 33).toString('base64url');
  const y = point.subarray(33).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
}

export interface VapidClaims {
  aud: string;
  exp: number;
  sub: string;
}

/**
 * Checks `Authorization: vapid t=<JWT>, k=<public key>`: an ES256 JWT whose signature verifies
 * under `k`. Returns the claims and `k`; throws when anything is off.
 */
export function checkVapid(header: string | undefined): { claims: VapidClaims; k: string } {
  const m = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+), k=([\w-]+)$/.exec(header ?? '');
  if (!m) throw new Error(`not a VAPID authorization header: ${header}`);
  const [, jwt, k] = m as unknown as [string, string, string];
  const [head, payload, sig] = jwt.split('.') as [string, string, string];
  const h = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: string; typ?: string };
  if (h.alg !== 'ES256') throw new Error(`JWT alg is ${h.alg}, not ES256`);
  const ok = verify('sha256', Buffer.from(`${head}.${payload}`), { key: publicKeyOfRaw(k), dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
  if (!ok) throw new Error('the VAPID JWT signature does not verify under k');
  return { claims: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as VapidClaims, k };
}
