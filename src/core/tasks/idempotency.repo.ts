import { and, eq, sql } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { idempotencyKeys } from '../../db/tables.js';

const key = (apiKeyId: string, k: string) => and(eq(idempotencyKeys.apiKeyId, apiKeyId), eq(idempotencyKeys.key, k));

/** Inserts the key as in flight; false when a row for it already exists. */
export async function insertInFlight(db: Executor, apiKeyId: string, k: string, requestHash: string): Promise<boolean> {
  const rows = await db
    .insert(idempotencyKeys)
    .values({ apiKeyId, key: k, requestHash, status: 'in_flight' })
    .onConflictDoNothing()
    .returning({ key: idempotencyKeys.key });
  return rows.length === 1;
}

export async function findIdempotencyKey(db: Executor, apiKeyId: string, k: string) {
  const rows = await db
    .select({
      requestHash: idempotencyKeys.requestHash,
      status: idempotencyKeys.status,
      responseStatus: idempotencyKeys.responseStatus,
      responseBody: idempotencyKeys.responseBody,
      ageSeconds: sql<number>`extract(epoch from now() - ${idempotencyKeys.created})`.mapWith(Number),
    })
    .from(idempotencyKeys)
    .where(key(apiKeyId, k));
  return rows[0];
}

export async function completeIdempotencyKey(db: Executor, apiKeyId: string, k: string, status: number, body: unknown) {
  await db.update(idempotencyKeys).set({ status: 'done', responseStatus: status, responseBody: body }).where(key(apiKeyId, k));
}

export async function deleteIdempotencyKey(db: Executor, apiKeyId: string, k: string) {
  await db.delete(idempotencyKeys).where(key(apiKeyId, k));
}

/** Takes over an in-flight row whose request died (its process crashed), if still in flight. */
export async function restartStaleInFlight(db: Executor, apiKeyId: string, k: string, staleSeconds: number): Promise<boolean> {
  const rows = await db
    .update(idempotencyKeys)
    .set({ created: sql`now()` })
    .where(and(key(apiKeyId, k), eq(idempotencyKeys.status, 'in_flight'), sql`${idempotencyKeys.created} < now() - make_interval(secs => ${staleSeconds})`))
    .returning({ key: idempotencyKeys.key });
  return rows.length === 1;
}

export async function deleteExpiredIdempotencyKeys(db: Executor, olderThanHours: number) {
  await db.delete(idempotencyKeys).where(sql`${idempotencyKeys.created} < now() - make_interval(hours => ${olderThanHours})`);
}
