import { and, desc, eq, gt, inArray, isNull, or, sql } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { taskSchemas, webhookDeliveries, webhookKeys } from '../../db/tables.js';

export async function insertWebhookKey(db: Executor, values: typeof webhookKeys.$inferInsert) {
  const rows = await db.insert(webhookKeys).values(values).returning();
  return rows[0]!;
}

const live = () => and(isNull(webhookKeys.revokedAt), or(isNull(webhookKeys.expiresAt), gt(webhookKeys.expiresAt, sql`now()`)));

/** Keys that sign for a (schema, hook_auth) pair now, newest first. */
export async function findLiveKeys(db: Executor, schemaId: number, fingerprint: string) {
  return db
    .select()
    .from(webhookKeys)
    .where(and(eq(webhookKeys.schemaId, schemaId), eq(webhookKeys.authFingerprint, fingerprint), live()))
    .orderBy(desc(webhookKeys.created));
}

/** Keys that sign now for any hook_auth of these schemas, newest first. */
export async function findLiveKeysOfSchemas(db: Executor, schemaIds: number[]) {
  if (schemaIds.length === 0) return [];
  return db
    .select()
    .from(webhookKeys)
    .where(and(inArray(webhookKeys.schemaId, schemaIds), live()))
    .orderBy(desc(webhookKeys.created));
}

/** Gives the current keys of a pair an end: they keep signing beside a new key until then. */
export async function expireLiveKeys(db: Executor, schemaId: number, fingerprint: string, graceMs: number) {
  await db
    .update(webhookKeys)
    .set({ expiresAt: sql`now() + make_interval(secs => ${graceMs / 1000})` })
    .where(and(eq(webhookKeys.schemaId, schemaId), eq(webhookKeys.authFingerprint, fingerprint), isNull(webhookKeys.expiresAt), isNull(webhookKeys.revokedAt)));
}

export async function listWebhookKeys(db: Executor, schemaId?: number) {
  return db
    .select({
      id: webhookKeys.id,
      schemaName: taskSchemas.name,
      kind: webhookKeys.kind,
      authFingerprint: webhookKeys.authFingerprint,
      prefix: webhookKeys.prefix,
      created: webhookKeys.created,
      expiresAt: webhookKeys.expiresAt,
      revokedAt: webhookKeys.revokedAt,
    })
    .from(webhookKeys)
    .innerJoin(taskSchemas, eq(taskSchemas.id, webhookKeys.schemaId))
    .where(schemaId === undefined ? undefined : eq(webhookKeys.schemaId, schemaId))
    .orderBy(taskSchemas.name, webhookKeys.created);
}

export async function revokeWebhookKeyById(db: Executor, id: string) {
  await db.update(webhookKeys).set({ revokedAt: sql`coalesce(${webhookKeys.revokedAt}, now())` }).where(eq(webhookKeys.id, id));
}

/** Deliveries that were waiting for a key of this schema go out now. */
export async function wakeDeliveriesWaitingForKey(db: Executor, schemaId: number) {
  await db
    .update(webhookDeliveries)
    .set({ nextAttemptAt: sql`now()` })
    .where(and(eq(webhookDeliveries.schemaId, schemaId), eq(webhookDeliveries.status, 'pending'), eq(webhookDeliveries.lastError, WAITING_FOR_KEY)));
}

/** `last_error` of a delivery held back because its schema has no webhook key yet. */
export const WAITING_FOR_KEY = 'waiting for a webhook key';
