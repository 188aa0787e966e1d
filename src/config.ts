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
] as const;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function parseIntIn(name: string, raw: string | undefined, fallback: number, min: number, max: number, problems: string[]): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push(`${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}.`);
    return fallback;
  }
  return n;
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
  });
}
