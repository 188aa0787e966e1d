import type { CliIo } from '../context.js';
import { fail, guarded, messageOf, skip, type CheckResult } from './check.js';
import { checkMigrations, checkSecretKey, checkVapid, openForDoctor } from './database-checks.js';
import { listHookUses, notMigratedYet } from './doctor.repo.js';
import { checkConfig, checkNode, checkProxy, checkPublicUrl } from './local-checks.js';
import { checkHooks, checkSmtp } from './network-checks.js';

export interface DoctorOptions {
  /** How long each network check (database connection, SMTP, each hook URL) may take. */
  timeoutMs: number;
}

const NO_DATABASE = 'skipped: the database is not reachable';

async function hookChecks(database: NonNullable<CliIo['database']>, timeoutMs: number): Promise<CheckResult[]> {
  try {
    return await checkHooks(await listHookUses(database), timeoutMs);
  } catch (err) {
    if (notMigratedYet(err)) return [skip('hook', 'Hook URLs of installed schemas', 'skipped until the database is migrated')];
    throw err;
  }
}

/**
 * Runs every check and returns the results in report order. Reads only: nothing is migrated,
 * generated or sent that could act on an application server.
 */
export async function runDoctor(io: CliIo, opts: DoctorOptions): Promise<CheckResult[]> {
  const node = checkNode();
  const { config, result: configResult } = checkConfig(io.env);
  if (!config) return [node, configResult, skip('database', 'Database, secrets, web push, SMTP and hook URLs', 'skipped: the configuration must be valid first')];
  const t = opts.timeoutMs;
  // The mail server needs no database: it is asked while the database opens.
  const smtp = guarded('smtp', 'SMTP server', t + 2000, async () => [await checkSmtp(config, t)]);
  const { result: databaseResult, opened } = await openForDoctor(io, config, t).catch((err: unknown) => ({
    result: fail('database', `Database: ${messageOf(err)}`, 'Check DATABASE_URL, or TI_DATA_DIR for the embedded database.'),
    opened: undefined,
  }));
  try {
    const database = opened?.database;
    const [migrations, secretKey, vapid, hooks] = await Promise.all([
      database ? guarded('migrations', 'Database migrations', t + 2000, async () => [await checkMigrations(database)]) : [skip('migrations', 'Database migrations', NO_DATABASE)],
      guarded('secret-key', 'Secret key', t + 2000, () => checkSecretKey(config, database)),
      guarded('vapid', 'VAPID keys', t + 2000, () => checkVapid(config, database)),
      // Each hook request has its own timeout; the list may be long, so no overall one.
      database ? guarded('hook', 'Hook URLs', undefined, () => hookChecks(database, t)) : [skip('hook', 'Hook URLs of installed schemas', NO_DATABASE)],
    ]);
    return [node, configResult, databaseResult, ...migrations, ...secretKey, ...vapid, checkPublicUrl(config), checkProxy(config), ...(await smtp), ...hooks];
  } finally {
    await opened?.close();
  }
}
