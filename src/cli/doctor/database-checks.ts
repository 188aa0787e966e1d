import { createECDH } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config.js';
import { defaultSubject, readVapidFolder } from '../../core/notify/vapid.js';
import { createSecretBox, type SecretBox } from '../../core/secrets/secret-box.js';
import { embeddedDatabaseExists, openDatabase, openPostgres, pendingMigrations, type Database } from '../../db/index.js';
import type { CliIo } from '../context.js';
import { fail, messageOf, ok, redactUrl, skip, warn, type CheckResult } from './check.js';
import { findStoredVapidKey, sealedSamples, serverVersion } from './doctor.repo.js';

/*
 * Checks of the database and of what is kept in it. Nothing here writes: no migration, no
 * generated secret, no generated VAPID key. (Opening the embedded folder directly takes its lock
 * file for the moment, as every command does.)
 */

export interface OpenedDatabase {
  database: Database;
  close(): Promise<void>;
}

/** Why PostgreSQL could not be reached, and what to change. */
function postgresFailure(config: Config, err: unknown): CheckResult {
  const e = err as { code?: string; message?: string };
  const url = new URL(config.databaseUrl!);
  const where = `${url.hostname || url.searchParams.get('host') || 'localhost'}:${url.port || 5432}`;
  const title = (what: string) => `Database: ${what} (DATABASE_URL=${redactUrl(config.databaseUrl!)})`;
  const data = { error: messageOf(err) };
  switch (e.code) {
    case 'ECONNREFUSED':
      return fail('database', title(`nothing accepts connections at ${where}`), `Start PostgreSQL there, or fix the host and port in DATABASE_URL.`, data);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return fail('database', title(`the host ${url.hostname} is not found`), 'Fix the host name in DATABASE_URL (or this machine’s DNS).', data);
    case '28P01':
    case '28000':
      return fail('database', title(`PostgreSQL refused the login: ${e.message}`), 'Fix the user name and password in DATABASE_URL.', data);
    case '3D000':
      return fail(
        'database',
        title(`${e.message}`),
        `Create the database (e.g. \`createdb ${decodeURIComponent(url.pathname.slice(1))}\`) and run \`task-inbox migrate\`, or fix the database name in DATABASE_URL.`,
        data,
      );
    default:
      if (/timeout|timed out/i.test(e.message ?? '') || e.code === 'ETIMEDOUT') {
        return fail('database', title(`no answer from ${where}`), 'Check that PostgreSQL runs there and that this machine may reach it (firewall, network), or fix DATABASE_URL.', data);
      }
      return fail('database', title(`cannot connect: ${messageOf(err)}`), 'Check DATABASE_URL and that PostgreSQL is running and reachable from here.', data);
  }
}

/** Opens the configured database without migrating it; a ✗ with the fix when that fails. */
export async function openForDoctor(io: CliIo, config: Config, timeoutMs: number): Promise<{ opened?: OpenedDatabase; result: CheckResult }> {
  if (io.database) {
    await io.database.query('SELECT 1');
    return { opened: { database: io.database, close: async () => {} }, result: ok('database', `Database: ${io.database.kind} (given by the caller) answers`) };
  }
  if (config.databaseUrl) {
    const database = openPostgres({
      connection: { connectionString: config.databaseUrl, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs },
      poolSize: 2,
    });
    try {
      const version = await serverVersion(database);
      return { opened: { database, close: () => database.close() }, result: ok('database', `Database: PostgreSQL ${version} at ${redactUrl(config.databaseUrl)} answers`) };
    } catch (err) {
      await database.close().catch(() => {});
      return { result: postgresFailure(config, err) };
    }
  }
  if (!embeddedDatabaseExists(config.dataDir)) {
    return {
      result: fail(
        'database',
        `Database: no embedded database in ${config.dataDir}`,
        '`task-inbox migrate` (or the first `task-inbox serve`) creates it there. If it lives elsewhere, set TI_DATA_DIR to that folder; ' +
          'for PostgreSQL, set DATABASE_URL (postgres://user:password@host:5432/database).',
      ),
    };
  }
  try {
    const database = await openDatabase(config, 'cli');
    // A socket connection speaks the PostgreSQL protocol: the running server holds the folder.
    const how = database.kind === 'postgres' ? 'through the running server' : 'opened directly';
    await database.query('SELECT 1');
    return { opened: { database, close: () => database.close() }, result: ok('database', `Database: embedded in ${config.dataDir} answers (${how})`) };
  } catch (err) {
    return {
      result: fail(
        'database',
        `Database: the embedded database in ${config.dataDir} cannot be opened: ${messageOf(err)}`,
        'If another task-inbox process holds the folder, let it finish (or stop it). Otherwise restore the folder from a backup, or set TI_DATA_DIR or DATABASE_URL to the database to use.',
      ),
    };
  }
}

export async function checkMigrations(database: Database): Promise<CheckResult> {
  const pending = await pendingMigrations(database);
  if (pending.length === 0) return ok('migrations', 'Database migrations are current');
  return fail(
    'migrations',
    `Database migrations: ${pending.length} pending (${pending.join(', ')})`,
    'Run `task-inbox migrate` (`task-inbox serve` also applies them when it starts).',
    { pending },
  );
}

/** The secret key the server would use, without generating one. */
export function secretKeySource(config: Config): { box?: SecretBox; label: string; hint?: CheckResult } {
  if (config.secretKey) return { box: createSecretBox(config.secretKey), label: 'SECRET_KEY' };
  const file = path.join(config.dataDir, 'secret.key');
  if (!existsSync(file)) return { label: `the secret key in ${file}` };
  const loose = (statSync(file).mode & 0o077) !== 0;
  return {
    box: createSecretBox(readFileSync(file, 'utf8').trim()),
    label: `the secret key in ${file}`,
    hint: loose ? warn('secret-key', `${file} can be read by other users`, `Run \`chmod 600 ${file}\`: it decrypts the secrets kept in the database.`) : undefined,
  };
}

const LOST_KEY_FIX =
  'If that key is lost, what it sealed is lost too: revoke and re-create the webhook keys (`task-inbox webhook-key revoke ID`, ' +
  "`task-inbox webhook_key SCHEMA`), clear push subscriptions (`task-inbox webpush_clear --yes`), have people add their channels again, and delete the stored VAPID key (DELETE FROM server_keys WHERE name = 'vapid'; a new pair is generated at the next start).";

/** Whether the secret key opens what is sealed in the database (one value of each kind is tried). */
export async function checkSecretKey(config: Config, database: Database | undefined): Promise<CheckResult[]> {
  const source = secretKeySource(config);
  const extra = source.hint ? [source.hint] : [];
  const none = `no SECRET_KEY, and no ${path.join(config.dataDir, 'secret.key')} yet`;
  if (!database) {
    const have = source.box ? `${source.label} is present` : `${none} (generated at the first start)`;
    return [skip('secret-key', `Secret key: ${have}; not tried on the database`, 'skipped: the database is not reachable'), ...extra];
  }
  const samples = await sealedSamples(database);
  if (!source.box) {
    if (samples.length === 0) return [ok('secret-key', `Secret key: ${none} (generated at the first start)`)];
    return [
      fail(
        'secret-key',
        `Secret key: ${none}, but the database holds ${samples.map((s) => s.what).join(', ')}`,
        `Restore secret.key from the backup of the data folder, or set SECRET_KEY to the key the server ran with. ${LOST_KEY_FIX}`,
      ),
    ];
  }
  if (samples.length === 0) return [ok('secret-key', `Secret key: ${source.label} is present (nothing is sealed in the database yet to try it on)`), ...extra];
  const refused = samples.filter((s) => !opens(source.box!, s.sealed));
  if (refused.length > 0) {
    return [
      fail(
        'secret-key',
        `Secret key: ${source.label} does not open ${refused.map((s) => s.what).join(', ')} in the database`,
        `Set SECRET_KEY to the key these were sealed with: the one the server ran with (the same on every instance). ${LOST_KEY_FIX}`,
        { refused: refused.map((s) => s.what) },
      ),
      ...extra,
    ];
  }
  return [ok('secret-key', `Secret key: ${source.label} opens ${samples.map((s) => s.what).join(', ')}`), ...extra];
}

function opens(box: SecretBox, sealed: string): boolean {
  try {
    box.decrypt(sealed);
    return true;
  } catch {
    return false;
  }
}

/** The raw public point of a raw P-256 private key (both base64url), as web push uses them. */
function publicKeyOf(privateKey: string): string {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(privateKey, 'base64url'));
  return ecdh.getPublicKey().toString('base64url');
}

function subjectHint(subject: string): CheckResult[] {
  if (!/localhost/i.test(subject)) return [];
  return [
    warn(
      'vapid-subject',
      `Web push contact (VAPID subject) is ${subject}`,
      'Set VAPID_SUBJECT to a real contact (mailto:ops@example.org or an https URL): push services use it to reach you, and Apple’s refuses localhost.',
    ),
  ];
}

/** The web push keys: VAPID_PATH's files, or the pair kept in the database, or none yet. */
export async function checkVapid(config: Config, database: Database | undefined): Promise<CheckResult[]> {
  if (config.vapidPath) {
    try {
      const files = readVapidFolder(config.vapidPath);
      const subject = files.subject ?? defaultSubject(config);
      return [ok('vapid', `VAPID keys: read from VAPID_PATH ${config.vapidPath} (subject ${subject})`), ...subjectHint(subject)];
    } catch (err) {
      return [
        fail(
          'vapid',
          `VAPID keys: VAPID_PATH ${config.vapidPath} cannot be used: ${messageOf(err)}`,
          'VAPID_PATH must hold private_key.pem, a P-256 private key (`openssl ecparam -name prime256v1 -genkey -noout -out private_key.pem`), ' +
            'and may hold claims.json ({"sub": "mailto:ops@example.org"}). Or unset VAPID_PATH to use a key pair kept in the database.',
        ),
      ];
    }
  }
  const subject = defaultSubject(config);
  if (!database) return [skip('vapid', 'VAPID keys: kept in the database', 'skipped: the database is not reachable')];
  const stored = await findStoredVapidKey(database);
  if (!stored) return [ok('vapid', 'VAPID keys: none yet; a key pair is generated at the first start and kept in the database'), ...subjectHint(subject)];
  const { box, label } = secretKeySource(config);
  if (!box) return [skip('vapid', 'VAPID keys: stored in the database', 'skipped: there is no secret key to open the private key with (see above)')];
  let privateKey: string;
  try {
    privateKey = box.decrypt(stored.secretEnc);
  } catch {
    return [fail('vapid', `VAPID keys: the private key in the database cannot be opened with ${label}`, 'See the secret key check: the server cannot start until this is fixed.')];
  }
  if (publicKeyOf(privateKey) !== stored.publicValue) {
    return [
      fail(
        'vapid',
        'VAPID keys: the stored private key does not belong to the stored public key',
        "Delete the stored pair (DELETE FROM server_keys WHERE name = 'vapid'): a new one is generated at the next start. Then run `task-inbox webpush_clear --yes`.",
      ),
    ];
  }
  return [ok('vapid', `VAPID keys: stored in the database (subject ${subject})`), ...subjectHint(subject)];
}
