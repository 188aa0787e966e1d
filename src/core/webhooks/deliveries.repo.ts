import { and, asc, desc, eq, getTableColumns, gt, gte, inArray, lt, or, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { disabledEndpoints, schemaVersions, taskSchemas, webhookAttempts, webhookDeliveries } from '../../db/tables.js';

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;

export async function insertDelivery(db: Executor, values: typeof webhookDeliveries.$inferInsert) {
  const rows = await db.insert(webhookDeliveries).values(values).returning();
  return rows[0]!;
}

export async function insertAttempt(db: Executor, values: typeof webhookAttempts.$inferInsert) {
  await db.insert(webhookAttempts).values(values);
}

/** A claimed delivery, with the `hook_auth` of its schema version (versions never change). */
export type ClaimedRow = DeliveryRow & { hookAuth: (typeof schemaVersions.$inferSelect)['hookAuth'] };

/**
 * Claims up to `limit` due deliveries for `leaseMs`, longest due first. Only the oldest
 * undelivered delivery of each task is due, so one task's events reach the receiver in order;
 * rows locked by another worker are skipped, and a row whose lease ran out (its worker died) is
 * due again. The order is the due index's alone (no `id` to break ties), so the planner can
 * walk that index and stop at `limit` rather than sort every pending delivery (it does so when
 * its statistics know how many are pending). `= ANY(ARRAY(…))` makes the update find the
 * claimed rows by primary key, where `IN (…)` let the planner scan the whole table.
 */
export async function claimDueDeliveries(db: Executor, limit: number, leaseMs: number): Promise<ClaimedRow[]> {
  const rows = await db
    .update(webhookDeliveries)
    .set({ leaseUntil: sql`date_trunc('milliseconds', now() + make_interval(secs => ${leaseMs / 1000}))` })
    .where(
      sql`${webhookDeliveries.id} = ANY(ARRAY(
        SELECT d.id FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.lease_until IS NULL OR d.lease_until < now())
          AND NOT EXISTS (
            SELECT 1 FROM webhook_deliveries e
            WHERE e.task_id = d.task_id AND e.id < d.id AND e.status IN ('pending', 'paused'))
          AND NOT EXISTS (SELECT 1 FROM webhook_disabled_endpoints x WHERE x.url = d.url)
        ORDER BY d.next_attempt_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED))`,
    )
    .returning({
      ...getTableColumns(webhookDeliveries),
      hookAuth: sql`(SELECT v.hook_auth FROM schema_versions v WHERE v.id = ${webhookDeliveries.versionId})`.mapWith(schemaVersions.hookAuth),
    });
  return rows.sort((a, b) => a.id - b.id);
}

/** What one attempt of a claimed async delivery came to, to be written by recordOutcomes. */
export interface Outcome {
  id: number;
  /** The lease the attempt ran under: the delivery's state changes only while the row still holds it. */
  lease: Date | null;
  /** `gone`: the receiver answered 410, so its endpoint is disabled and the delivery paused. */
  outcome: 'delivered' | 'gone' | 'failed';
  url: string;
  /** Why the endpoint is disabled (for `gone`). */
  reason: string | null;
  statusCode: number | null;
  latencyMs: number;
  responseBody: string | null;
  error: string | null;
  /** For `failed`: element n (1-based) is the delay before the retry that follows attempt n; past the end, the delivery is dead. */
  retryDelaysMs: number[];
}

/** PostgreSQL text cannot hold U+0000 (and jsonb refuses it). */
const storable = (text: string | null) => (text === null ? null : text.replaceAll('\u0000', ''));

/**
 * Writes the outcomes of several attempts in one statement: each adds an attempt log row and
 * counts the attempt (whoever holds the lease now); only a delivery still holding the attempt's
 * lease takes its new state — delivered, paused, due again, or dead, decided here from the counted
 * attempts — so a worker whose lease ran out does not overwrite the outcome of the worker that
 * took the row over. At most one outcome per delivery in one call.
 */
export async function recordOutcomes(db: Executor, outcomes: Outcome[]): Promise<void> {
  if (outcomes.length === 0) return;
  const json = JSON.stringify(
    outcomes.map((o, ord) => ({
      ord,
      id: o.id,
      lease: o.lease?.toISOString() ?? null,
      outcome: o.outcome,
      url: o.url,
      reason: storable(o.reason),
      status_code: o.statusCode,
      latency_ms: o.latencyMs,
      response_body: storable(o.responseBody),
      error: storable(o.error),
      delays_ms: o.retryDelaysMs,
    })),
  );
  await db.execute(sql`
    WITH o AS (
      SELECT o.*, (o.lease IS NULL OR o.lease IS NOT DISTINCT FROM d.lease_until) AS held, o.delays_ms[d.attempts + 1] AS delay_ms
      FROM jsonb_to_recordset(${json}::jsonb) AS o(ord int, id bigint, lease timestamptz, outcome text, url text, reason text,
        status_code int, latency_ms int, response_body text, error text, delays_ms int[])
      JOIN webhook_deliveries d ON d.id = o.id
    ),
    logged AS (
      INSERT INTO webhook_attempts (delivery_id, status_code, latency_ms, response_body, error)
      SELECT id, status_code, latency_ms, response_body, error FROM o ORDER BY ord
    ),
    disabled AS (
      INSERT INTO webhook_disabled_endpoints (url, reason)
      SELECT DISTINCT ON (url) url, reason FROM o WHERE outcome = 'gone' ORDER BY url, ord
      ON CONFLICT DO NOTHING
    )
    UPDATE webhook_deliveries d SET
      attempts = d.attempts + 1,
      lease_until = CASE WHEN o.held THEN NULL ELSE d.lease_until END,
      last_status = CASE WHEN o.held THEN o.status_code ELSE d.last_status END,
      last_error = CASE WHEN o.held THEN o.error ELSE d.last_error END,
      status = CASE
        WHEN NOT o.held THEN d.status
        WHEN o.outcome = 'delivered' THEN 'delivered'
        WHEN o.outcome = 'gone' THEN 'paused'
        WHEN o.delay_ms IS NULL THEN 'dead'
        ELSE d.status END,
      delivered_at = CASE WHEN o.held AND o.outcome = 'delivered' THEN now() ELSE d.delivered_at END,
      next_attempt_at = CASE
        WHEN o.held AND o.outcome = 'failed' AND o.delay_ms IS NOT NULL THEN now() + make_interval(secs => o.delay_ms / 1000.0)
        ELSE d.next_attempt_at END
    FROM o WHERE d.id = o.id`);
}

/**
 * Updates a delivery. With `lease`, only while the row still holds that lease: a worker whose
 * lease ran out (and whose row another worker took) must not overwrite the other's outcome.
 */
export async function updateDelivery(db: Executor, id: number, values: Partial<typeof webhookDeliveries.$inferInsert>, lease?: Date | null) {
  const held = lease ? eq(webhookDeliveries.leaseUntil, lease) : undefined;
  await db.update(webhookDeliveries).set(values).where(and(eq(webhookDeliveries.id, id), held));
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
