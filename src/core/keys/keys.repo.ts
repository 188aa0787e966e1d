import { and, asc, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { namedStatement } from '../../db/named-statement.js';
import { apiKeys } from '../../db/tables.js';

export async function insertApiKey(db: Executor, values: typeof apiKeys.$inferInsert) {
  const rows = await db.insert(apiKeys).values(values).returning();
  return rows[0]!;
}

/** Checked on every API call, so a named statement (see named-statement.ts). */
const findKeyStatement = namedStatement<{ id: string; name: string | null; schema_name: string | null; revoked: boolean }>(
  'task_inbox_find_api_key',
  'SELECT id, name, schema_name, revoked_at IS NOT NULL AS revoked FROM api_keys WHERE key_hash = $1::text',
);

/** The key with this hash: what authenticating a request needs of it. */
export async function findApiKeyByHash(db: Executor, keyHash: string) {
  const rows = await findKeyStatement.run(db, [keyHash]);
  const row = rows[0];
  return row && { id: row.id, name: row.name, schemaName: row.schema_name, revoked: row.revoked };
}

export async function anyApiKeyExists(db: Executor): Promise<boolean> {
  const rows = await db.select({ one: sql`1` }).from(apiKeys).limit(1);
  return rows.length > 0;
}

/** Records use at most once a minute per key, so busy keys don't write on every request. */
export async function touchApiKey(db: Executor, id: string) {
  await db
    .update(apiKeys)
    .set({ lastUsedAt: sql`now()` })
    .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, sql`now() - interval '1 minute'`))));
}

export async function listApiKeys(db: Executor) {
  return db
    .select({
      id: apiKeys.id,
      name: apiKeys.name,
      prefix: apiKeys.prefix,
      schemaName: apiKeys.schemaName,
      created: apiKeys.created,
      lastUsedAt: apiKeys.lastUsedAt,
      revokedAt: apiKeys.revokedAt,
    })
    .from(apiKeys)
    .orderBy(asc(apiKeys.created));
}

export async function revokeApiKeyById(db: Executor, id: string) {
  const rows = await db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
    .where(eq(apiKeys.id, id))
    .returning({ id: apiKeys.id });
  return rows[0];
}
