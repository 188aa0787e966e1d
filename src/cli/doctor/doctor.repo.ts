import type { Database } from '../../db/index.js';

/*
 * The doctor's read-only queries, in raw SQL so that they also run on a database that is migrated
 * only part of the way: a table that does not exist yet reads as empty.
 */

/** PostgreSQL's "undefined table" and "undefined column": the database lacks migrations. */
export const notMigratedYet = (err: unknown) => ['42P01', '42703'].includes((err as { code?: string }).code ?? '');

async function rowsIfMigrated<T>(database: Database, sql: string): Promise<T[]> {
  try {
    return await database.query<T>(sql);
  } catch (err) {
    if (notMigratedYet(err)) return [];
    throw err;
  }
}

export async function serverVersion(database: Database): Promise<string> {
  const rows = await database.query<{ server_version: string }>('SHOW server_version');
  return rows[0]?.server_version ?? 'unknown';
}

/** One value of each kind that is sealed with the secret key: what proves the key is the right one. */
export async function sealedSamples(database: Database): Promise<{ what: string; sealed: string }[]> {
  const queries: [string, string][] = [
    ['the VAPID private key', "SELECT 'the VAPID private key' AS what, secret_enc AS sealed FROM server_keys WHERE name = 'vapid'"],
    [
      'a webhook key',
      "SELECT 'the webhook key of ' || s.name AS what, w.secret_enc AS sealed FROM webhook_keys w JOIN task_schemas s ON s.id = w.schema_id " +
        'WHERE w.revoked_at IS NULL ORDER BY w.created DESC LIMIT 1',
    ],
    ['a notification channel', "SELECT 'the settings of a ' || kind || ' channel' AS what, config_enc AS sealed FROM notification_channels ORDER BY created DESC LIMIT 1"],
    ['a push subscription', "SELECT 'a push subscription' AS what, subscription_enc AS sealed FROM push_subscriptions ORDER BY created DESC LIMIT 1"],
  ];
  const found = await Promise.all(queries.map(([, sql]) => rowsIfMigrated<{ what: string; sealed: string }>(database, sql)));
  return found.flat();
}

export async function findStoredVapidKey(database: Database): Promise<{ publicValue: string; secretEnc: string } | undefined> {
  const rows = await rowsIfMigrated<{ public_value: string; secret_enc: string }>(database, "SELECT public_value, secret_enc FROM server_keys WHERE name = 'vapid'");
  return rows[0] ? { publicValue: rows[0].public_value, secretEnc: rows[0].secret_enc } : undefined;
}

export interface HookUse {
  url: string;
  schema: string;
  semver: string;
  /** Set when deliveries to the URL are paused after it answered 410 Gone. */
  disabledReason: string | null;
}

/**
 * The hook URLs webhooks can go to: those of each schema's latest version (new tasks) and of older
 * versions that still have unresolved tasks (their changes are sent to their own version's URL).
 * Throws what `notMigratedYet` recognises on a database without the webhook tables.
 */
export async function listHookUses(database: Database): Promise<HookUse[]> {
  const rows = await database.query<{ url: string; schema: string; semver: string; disabled_reason: string | null }>(
    `SELECT DISTINCT coalesce(t.hook_url, v.default_hook_url) AS url, s.name AS schema, v.semver, v.version, d.reason AS disabled_reason
       FROM task_types t
       JOIN schema_versions v ON v.id = t.version_id
       JOIN task_schemas s ON s.id = v.schema_id
       LEFT JOIN webhook_disabled_endpoints d ON d.url = coalesce(t.hook_url, v.default_hook_url)
      WHERE coalesce(t.hook_url, v.default_hook_url) IS NOT NULL
        AND (v.version = (SELECT max(version) FROM schema_versions l WHERE l.schema_id = v.schema_id)
             OR EXISTS (SELECT 1 FROM tasks x WHERE x.ttype_id = t.id AND NOT x.resolved))
      ORDER BY s.name, v.version, url`,
  );
  return rows.map((r) => ({ url: r.url, schema: r.schema, semver: r.semver, disabledReason: r.disabled_reason }));
}
