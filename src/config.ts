import { existsSync } from 'node:fs';
import path from 'node:path';

/** Validated, frozen configuration. Only this module reads `process.env`. */
export interface Config {
  /** Address the HTTP server binds to. */
  readonly host: string;
  readonly port: number;
  /** `postgres://…` selects PostgreSQL; absent selects the embedded database in `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** Folder of the embedded database (and, later, generated secrets). */
  readonly dataDir: string;
  /** Connections in the PostgreSQL pool. */
  readonly dbPoolSize: number;
  /** Fastify `trustProxy`: false, true, a hop count, or a list of addresses/CIDRs. */
  readonly trustProxy: boolean | number | string[];
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Pretty one-line logs for people when stdout is a terminal, JSON lines otherwise. */
  readonly logPretty: boolean;
  /** Encrypts secrets at rest (webhook keys). Absent in embedded mode: a generated one in the data folder is used. */
  readonly secretKey: string | undefined;
  /** How long a sync webhook may take before the change is refused. */
  readonly webhookTimeoutMs: number;
  /** Delays before each retry of an async webhook delivery, in ms. */
  readonly webhookRetrySchedule: readonly number[];
  /** How long a rotated webhook key keeps being used beside the new one, in ms. */
  readonly webhookRotationGraceMs: number;
  /** How long a worker may hold a claimed delivery before another may take it, in ms. */
  readonly webhookLeaseMs: number;
  /** Whether `serve` also runs the delivery worker. */
  readonly runWorker: boolean;
  /** The embedded database's WebAssembly stays on V8's baseline compiler (EMBEDDED_LOW_MEMORY). */
  readonly embeddedLowMemory: boolean;
  /** How long a stop waits for requests and deliveries in flight (SHUTDOWN_TIMEOUT). */
  readonly shutdownTimeoutMs: number;
  /** A session ends after this long without use. */
  readonly sessionIdleMs: number;
  /** A session ends this long after sign-in, however active. */
  readonly sessionLifetimeMs: number;
  /** The URL people open, e.g. https://inbox.example.org; its origin is the only one allowed to send cookies' unsafe requests. */
  readonly publicUrl: string | undefined;
  /** A folder with `private_key.pem` and `claims.json` (the earlier version's VAPID files); absent: a key pair is generated and kept in the database. */
  readonly vapidPath: string | undefined;
  /** The VAPID `sub` claim (a mailto: or https: URL) when not given by claims.json. */
  readonly vapidSubject: string | undefined;
  /** `smtp://…` or `smtps://…`: where email notifications are handed over; absent: no email channel. */
  readonly smtpUrl: string | undefined;
  /** The sender address of email notifications. */
  readonly smtpFrom: string;
  /** How long a one-tap action link in a notification stays valid, in ms. */
  readonly actionLinkTtlMs: number;
  /** With it, `GET /metrics` on the main port needs `Authorization: Bearer <token>`. */
  readonly metricsToken: string | undefined;
  /** With it, `/metrics` is served (without a token) only on this separate port. */
  readonly metricsPort: number | undefined;
  readonly metricsHost: string;
}

/** Every configuration variable, with its default and meaning: the README's table is written from this. */
export const configVariables = [
  ['PORT', '8080', 'TCP port of the HTTP server.'],
  ['HOST', '127.0.0.1', 'Address to listen on; `0.0.0.0` to accept connections from other machines or containers.'],
  ['DATABASE_URL', '(unset)', '`postgres://user:pass@host:5432/db` uses PostgreSQL; unset uses the embedded database.'],
  ['TI_DATA_DIR', './data', 'Folder of the embedded database (created if missing).'],
  ['DB_POOL_SIZE', '10', 'Connections in the PostgreSQL pool (1–200).'],
  ['TRUST_PROXY', 'false', 'Honour `X-Forwarded-*` headers: `true`, a hop count, or comma-separated proxy addresses/CIDRs.'],
  ['LOG_LEVEL', 'info', 'One of fatal, error, warn, info, debug, trace, silent.'],
  ['LOG_FORMAT', 'auto', '`pretty`, `json`, or `auto` (pretty when stdout is a terminal).'],
  ['SECRET_KEY', '(generated)', 'At least 32 characters; encrypts webhook keys, the VAPID private key, push subscriptions and notification settings at rest, and signs one-tap links. Required with `DATABASE_URL`; in embedded mode a random one is generated in the data folder (mode 0600).'],
  ['WEBHOOK_TIMEOUT', '10s', 'How long a sync webhook may take before the state change is refused (e.g. `10s`, `2500ms`).'],
  ['WEBHOOK_RETRY_SCHEDULE', '5s,5m,30m,2h,5h,10h,10h', 'Delays before each retry of an async delivery (±20 % jitter); after the last, the delivery is dead.'],
  ['WEBHOOK_ROTATION_GRACE', '24h', 'After `webhook-key rotate`, how long the old key still signs beside the new one.'],
  ['WEBHOOK_LEASE', '60s', 'How long a worker holds a claimed delivery; a crashed worker\'s deliveries are retried after it.'],
  ['SESSION_IDLE_TIMEOUT', '14d', 'A sign-in ends after this long without use.'],
  ['SESSION_LIFETIME', '90d', 'A sign-in ends this long after it began, however active.'],
  ['PUBLIC_URL', '(unset)', 'The address people open (e.g. `https://inbox.example.org`): used in the first-run setup link and as the only origin allowed to make cookie-authenticated changes. Unset: the request\'s own host.'],
  ['VAPID_PATH', '(unset)', 'A folder holding `private_key.pem` and `claims.json` (with `sub`), as the earlier version used, for web push. Unset: a key pair is generated at first start and kept in the database (the private key encrypted with SECRET_KEY).'],
  ['VAPID_SUBJECT', '(PUBLIC_URL)', 'The contact push services see for web push (`mailto:ops@example.org` or an https URL) when `claims.json` gives none. Unset: PUBLIC_URL, else `mailto:task-inbox@localhost`.'],
  ['SMTP_URL', '(unset)', '`smtp://user:pass@host:587` or `smtps://…:465`: enables email notifications. Unset: people cannot choose email.'],
  ['SMTP_FROM', 'task-inbox <task-inbox@localhost>', 'The sender of email notifications, e.g. `Inbox <inbox@example.org>`.'],
  ['ACTION_LINK_TTL', '7d', 'How long a one-tap action link in an email, ntfy or chat message stays valid (each works once).'],
  ['METRICS_TOKEN', '(unset)', 'Serves Prometheus metrics at `GET /metrics` on the main port to requests with `Authorization: Bearer <token>` (at least 16 characters).'],
  ['METRICS_PORT', '(unset)', 'Serves `/metrics` without a token on this separate port instead (bind it where only Prometheus reaches, see METRICS_HOST). With neither set, `/metrics` answers 404.'],
  ['METRICS_HOST', '127.0.0.1', 'Address the metrics port listens on (`0.0.0.0` in a container).'],
  ['WORKER', 'on', '`off` to run no webhook or notification worker inside `serve` (run `task-inbox worker` separately).'],
  ['EMBEDDED_LOW_MEMORY', 'off', '`on` keeps the embedded database\'s WebAssembly on V8\'s baseline compiler: about 50–80 MB less memory once the server has worked (idle 145–160 MB instead of 195–225), POSTs 5–15 % slower. No effect with `DATABASE_URL`.'],
  ['SHUTDOWN_TIMEOUT', '25s', 'On SIGTERM, how long requests and deliveries in flight may take to finish; deliveries still running then are handed back to other instances. A second SIGTERM stops at once.'],
] as const;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250ms`, `5s`, `30m`, `2h`, `1d` → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(text);
  return m ? Math.round(Number(m[1]) * units[m[2]!]!) : undefined;
}

function durationVar(name: string, raw: string | undefined, fallback: string, problems: string[]): number {
  const ms = parseDuration(raw || fallback);
  if (ms === undefined || ms <= 0) {
    problems.push(`${name}=${JSON.stringify(raw)} must be a duration such as 500ms, 10s, 5m, 2h or 1d.`);
    return parseDuration(fallback)!;
  }
  return ms;
}

function parseIntIn(name: string, raw: string | undefined, fallback: number, min: number, max: number, problems: string[]): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push(`${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}.`);
    return fallback;
  }
  return n;
}

/** An on/off switch (also true/false, 1/0). */
function onOff(name: string, raw: string | undefined, fallback: boolean, problems: string[]): boolean {
  const value = (raw || (fallback ? 'on' : 'off')).toLowerCase();
  if (['on', 'true', '1'].includes(value)) return true;
  if (['off', 'false', '0'].includes(value)) return false;
  problems.push(`${name}=${JSON.stringify(raw)} must be on or off.`);
  return fallback;
}

function parseTrustProxy(raw: string | undefined, problems: string[]): Config['trustProxy'] {
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  if (/^\d+$/.test(raw)) return Number(raw);
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.some((s) => !/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(s) && !['loopback', 'linklocal', 'uniquelocal'].includes(s))) {
    problems.push(`TRUST_PROXY=${JSON.stringify(raw)} must be true, false, a hop count, or comma-separated addresses/CIDRs.`);
    return false;
  }
  return list;
}

/**
 * Reads and checks every variable, reporting all problems at once.
 * With no argument it reads `process.env`, after loading `.env` from the working folder if present.
 */
export function loadConfig(env?: Record<string, string | undefined>, opts: { stdoutIsTty?: boolean } = {}): Config {
  if (env === undefined) {
    if (existsSync('.env')) process.loadEnvFile('.env');
    env = process.env;
  }
  const problems: string[] = [];
  const port = parseIntIn('PORT', env.PORT, 8080, 0, 65535, problems);
  const dbPoolSize = parseIntIn('DB_POOL_SIZE', env.DB_POOL_SIZE, 10, 1, 200, problems);

  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl !== undefined) {
    let ok = false;
    try {
      ok = ['postgres:', 'postgresql:'].includes(new URL(databaseUrl).protocol);
    } catch {
      ok = false;
    }
    if (!ok) problems.push('DATABASE_URL must look like postgres://user:password@host:5432/database.');
  }

  const logLevel = (env.LOG_LEVEL || 'info') as Config['logLevel'];
  if (!logLevels.includes(logLevel)) problems.push(`LOG_LEVEL=${JSON.stringify(env.LOG_LEVEL)} must be one of ${logLevels.join(', ')}.`);

  const logFormat = env.LOG_FORMAT || 'auto';
  if (!['auto', 'pretty', 'json'].includes(logFormat)) problems.push(`LOG_FORMAT=${JSON.stringify(logFormat)} must be auto, pretty or json.`);
  const stdoutIsTty = opts.stdoutIsTty ?? Boolean(process.stdout.isTTY);

  const trustProxy = parseTrustProxy(env.TRUST_PROXY, problems);

  const secretKey = env.SECRET_KEY || undefined;
  if (secretKey !== undefined && secretKey.length < 32) problems.push('SECRET_KEY must be at least 32 characters (e.g. the output of `openssl rand -base64 32`).');
  if (secretKey === undefined && databaseUrl !== undefined) {
    problems.push('SECRET_KEY is required with DATABASE_URL: it encrypts webhook keys at rest. Generate one with `openssl rand -base64 32` and keep it safe.');
  }
  const webhookTimeoutMs = durationVar('WEBHOOK_TIMEOUT', env.WEBHOOK_TIMEOUT, '10s', problems);
  const webhookRotationGraceMs = durationVar('WEBHOOK_ROTATION_GRACE', env.WEBHOOK_ROTATION_GRACE, '24h', problems);
  const webhookLeaseMs = durationVar('WEBHOOK_LEASE', env.WEBHOOK_LEASE, '60s', problems);
  const scheduleText = env.WEBHOOK_RETRY_SCHEDULE || '5s,5m,30m,2h,5h,10h,10h';
  const webhookRetrySchedule = scheduleText.split(',').map((part) => parseDuration(part));
  if (webhookRetrySchedule.some((ms) => ms === undefined)) {
    problems.push(`WEBHOOK_RETRY_SCHEDULE=${JSON.stringify(scheduleText)} must be comma-separated durations such as 5s,5m,30m.`);
  }
  const sessionIdleMs = durationVar('SESSION_IDLE_TIMEOUT', env.SESSION_IDLE_TIMEOUT, '14d', problems);
  const sessionLifetimeMs = durationVar('SESSION_LIFETIME', env.SESSION_LIFETIME, '90d', problems);
  let publicUrl = env.PUBLIC_URL || undefined;
  if (publicUrl !== undefined) {
    try {
      const u = new URL(publicUrl);
      if (!['http:', 'https:'].includes(u.protocol)) throw new Error();
      publicUrl = u.origin;
    } catch {
      problems.push(`PUBLIC_URL=${JSON.stringify(publicUrl)} must be an http(s) URL such as https://inbox.example.org.`);
    }
  }
  const runWorker = onOff('WORKER', env.WORKER, true, problems);
  const embeddedLowMemory = onOff('EMBEDDED_LOW_MEMORY', env.EMBEDDED_LOW_MEMORY, false, problems);

  const vapidPath = env.VAPID_PATH ? path.resolve(env.VAPID_PATH) : undefined;
  if (vapidPath !== undefined && !existsSync(path.join(vapidPath, 'private_key.pem'))) {
    problems.push(`VAPID_PATH=${JSON.stringify(env.VAPID_PATH)} must be a folder holding private_key.pem (and claims.json); ${path.join(vapidPath, 'private_key.pem')} does not exist.`);
  }
  const vapidSubject = env.VAPID_SUBJECT || undefined;
  if (vapidSubject !== undefined && !/^(mailto:\S+@\S+|https:\/\/\S+)$/.test(vapidSubject)) {
    problems.push(`VAPID_SUBJECT=${JSON.stringify(vapidSubject)} must be a mailto: address or an https: URL.`);
  }
  const smtpUrl = env.SMTP_URL || undefined;
  if (smtpUrl !== undefined) {
    let ok = false;
    try {
      ok = ['smtp:', 'smtps:'].includes(new URL(smtpUrl).protocol);
    } catch {
      ok = false;
    }
    if (!ok) problems.push('SMTP_URL must look like smtp://user:password@mail.example.org:587 or smtps://…:465.');
  }
  const smtpFrom = env.SMTP_FROM || 'task-inbox <task-inbox@localhost>';
  if (!/^[^<>@\s]+@[^<>@\s]+$|<[^<>@\s]+@[^<>@\s]+>\s*$/.test(smtpFrom)) problems.push(`SMTP_FROM=${JSON.stringify(smtpFrom)} must be an address such as inbox@example.org or "Inbox <inbox@example.org>".`);
  const actionLinkTtlMs = durationVar('ACTION_LINK_TTL', env.ACTION_LINK_TTL, '7d', problems);
  const shutdownTimeoutMs = durationVar('SHUTDOWN_TIMEOUT', env.SHUTDOWN_TIMEOUT, '25s', problems);
  const metricsToken = env.METRICS_TOKEN || undefined;
  if (metricsToken !== undefined && metricsToken.length < 16) problems.push('METRICS_TOKEN must be at least 16 characters (e.g. the output of `openssl rand -hex 16`).');
  const metricsPort = env.METRICS_PORT ? parseIntIn('METRICS_PORT', env.METRICS_PORT, 0, 0, 65535, problems) : undefined;

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    host: env.HOST || '127.0.0.1',
    port,
    databaseUrl,
    dataDir: path.resolve(env.TI_DATA_DIR || 'data'),
    dbPoolSize,
    trustProxy,
    logLevel,
    logPretty: logFormat === 'pretty' || (logFormat === 'auto' && stdoutIsTty),
    secretKey,
    webhookTimeoutMs,
    webhookRetrySchedule: Object.freeze(webhookRetrySchedule as number[]),
    webhookRotationGraceMs,
    webhookLeaseMs,
    runWorker,
    embeddedLowMemory,
    shutdownTimeoutMs,
    sessionIdleMs,
    sessionLifetimeMs,
    publicUrl,
    vapidPath,
    vapidSubject,
    smtpUrl,
    smtpFrom,
    actionLinkTtlMs,
    metricsToken,
    metricsPort,
    metricsHost: env.METRICS_HOST || '127.0.0.1',
  });
}
