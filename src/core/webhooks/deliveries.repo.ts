import { and, asc, desc, eq, gt, gte, inArray, lt, or, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { disabledEndpoints, taskSchemas, webhookAttempts, webhookDeliveries } from '../../db/tables.js';

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;

export async function insertDelivery(db: Executor, values: typeof webhookDeliveries.$inferInsert) {
  const rows = await db.insert(webhookDeliveries).values(values).returning();
  return rows[0]!;
}

export async function insertAttempt(db: Executor, values: typeof webhookAttempts.$inferInsert) {
  await db.insert(webhookAttempts).values(values);
}

/**
 * Claims up to `limit` due deliveries for `leaseMs`. Only the oldest undelivered delivery of each
 * task is due, so one task's events reach the receiver in order; rows locked by another worker
 * are skipped, and a row whose lease ran out (its worker died) is due again.
 */
export async function claimDueDeliveries(db: Executor, limit: number, leaseMs: number): Promise<DeliveryRow[]> {
  const rows = await db.execute<Record<string, unknown>>(sql`
    UPDATE webhook_deliveries SET lease_until = date_trunc('milliseconds', now() + make_interval(secs => ${leaseMs / 1000}))
    WHERE id IN (
      SELECT d.id FROM webhook_deliveries d
      WHERE d.status = 'pending' AND d.next_attempt_at <= now()
        AND (d.lease_until IS NULL OR d.lease_until < now())
        AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries e
          WHERE e.task_id = d.task_id AND e.id < d.id AND e.status IN ('pending', 'paused'))
        AND NOT EXISTS (SELECT 1 FROM webhook_disabled_endpoints x WHERE x.url = d.url)
      ORDER BY d.next_attempt_at, d.id
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)
    RETURNING id`);
  const ids = (rows as unknown as { rows: { id: number | string }[] }).rows.map((r) => Number(r.id));
  if (ids.length === 0) return [];
  return db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.id, ids)).orderBy(asc(webhookDeliveries.id));
}

/**
 * Updates a delivery. With `lease`, only while the row still holds that lease: a worker whose
 * lease ran out (and whose row another worker took) must not overwrite the other's outcome.
 */
export async function updateDelivery(db: Executor, id: number, values: Partial<typeof webhookDeliveries.$inferInsert>, lease?: Date | null) {
  const held = lease ? eq(webhookDeliveries.leaseUntil, lease) : undefined;
  await db.update(webhookDeliveries).set(values).where(and(eq(webhookDeliveries.id, id), held));
}

/** Counts an attempt, whoever holds the lease now; returns the new count. */
export async function countAttempt(db: Executor, id: number): Promise<number> {
  const rows = await db
    .update(webhookDeliveries)
    .set({ attempts: sql`${webhookDeliveries.attempts} + 1` })
    .where(eq(webhookDeliveries.id, id))
    .returning({ attempts: webhookDeliveries.attempts });
  return rows[0]?.attempts ?? 0;
}

/** Hands back every lease, when no other worker can be running (the embedded database). */
export async function releaseAllLeases(db: Executor) {
  await db.update(webhookDeliveries).set({ leaseUntil: null }).where(eq(webhookDeliveries.status, 'pending'));
}

export interface DeliveryFilter {
  taskId?: string;
  schemaId?: number;
  status?: DeliveryRow['status'];
  beforeId?: number;
  limit: number;
}

/** Newest first. */
export async function listDeliveries(db: Executor, f: DeliveryFilter) {
  const where: (SQL | undefined)[] = [];
  if (f.taskId) where.push(eq(webhookDeliveries.taskId, f.taskId));
  if (f.schemaId !== undefined) where.push(eq(webhookDeliveries.schemaId, f.schemaId));
  if (f.status) where.push(eq(webhookDeliveries.status, f.status));
  if (f.beforeId !== undefined) where.push(lt(webhookDeliveries.id, f.beforeId));
  return db
    .select({ delivery: webhookDeliveries, schemaName: taskSchemas.name })
    .from(webhookDeliveries)
    .innerJoin(taskSchemas, eq(taskSchemas.id, webhookDeliveries.schemaId))
    .where(and(...where))
    .orderBy(desc(webhookDeliveries.id))
    .limit(f.limit);
}

export async function findDelivery(db: Executor, id: number) {
  const rows = await db
    .select({ delivery: webhookDeliveries, schemaName: taskSchemas.name })
    .from(webhookDeliveries)
    .innerJoin(taskSchemas, eq(taskSchemas.id, webhookDeliveries.schemaId))
    .where(eq(webhookDeliveries.id, id));
  return rows[0];
}

export type AttemptRow = typeof webhookAttempts.$inferSelect;

/** The attempts of several deliveries, oldest first. */
export async function listAttemptsOf(db: Executor, deliveryIds: number[]): Promise<AttemptRow[]> {
  if (deliveryIds.length === 0) return [];
  return db.select().from(webhookAttempts).where(inArray(webhookAttempts.deliveryId, deliveryIds)).orderBy(asc(webhookAttempts.id));
}

export async function listAttempts(db: Executor, deliveryId: number) {
  return db.select().from(webhookAttempts).where(eq(webhookAttempts.deliveryId, deliveryId)).orderBy(asc(webhookAttempts.id));
}

/** Puts a finished async delivery back in the queue, keeping its webhook-id. */
export async function requeueDelivery(db: Executor, id: number) {
  const rows = await db
    .update(webhookDeliveries)
    .set({ status: 'pending', nextAttemptAt: sql`now()`, leaseUntil: null })
    .where(and(eq(webhookDeliveries.id, id), eq(webhookDeliveries.mode, 'async')))
    .returning({ id: webhookDeliveries.id });
  return rows.length === 1;
}

/** Sends again now every async delivery created since `since` that is dead, paused, or failing and waiting to retry; returns how many. */
export async function requeueFailedSince(db: Executor, since: Date, schemaId?: number) {
  const rows = await db
    .update(webhookDeliveries)
    .set({ status: 'pending', nextAttemptAt: sql`now()`, leaseUntil: null })
    .where(
      and(
        eq(webhookDeliveries.mode, 'async'),
        or(inArray(webhookDeliveries.status, ['dead', 'paused']), and(eq(webhookDeliveries.status, 'pending'), gt(webhookDeliveries.attempts, 0))),
        gte(webhookDeliveries.created, since),
        schemaId === undefined ? undefined : eq(webhookDeliveries.schemaId, schemaId),
      ),
    )
    .returning({ id: webhookDeliveries.id });
  return rows.length;
}

export async function disableEndpoint(db: Executor, url: string, reason: string) {
  await db.insert(disabledEndpoints).values({ url, reason }).onConflictDoNothing();
}

export async function listDisabledEndpoints(db: Executor) {
  return db.select().from(disabledEndpoints).orderBy(asc(disabledEndpoints.created));
}

/** Re-enables an endpoint; its paused deliveries go out again. */
export async function enableEndpoint(db: Executor, url: string) {
  const rows = await db.delete(disabledEndpoints).where(eq(disabledEndpoints.url, url)).returning({ url: disabledEndpoints.url });
  await db
    .update(webhookDeliveries)
    .set({ status: 'pending', nextAttemptAt: sql`now()`, leaseUntil: null })
    .where(and(eq(webhookDeliveries.url, url), eq(webhookDeliveries.status, 'paused')));
  return rows.length === 1;
}
