import { and, asc, desc, eq, inArray, isNull, lt, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import {
  actionLinks,
  notificationChannels,
  notifications,
  pushSubscriptions,
  serverKeys,
  taskSchemas,
  tasks,
  taskTypes,
  users,
} from '../../db/tables.js';

export type ChannelRow = typeof notificationChannels.$inferSelect;
export type NotificationRow = typeof notifications.$inferSelect;
export type PushSubscriptionRow = typeof pushSubscriptions.$inferSelect;
export type ActionLinkRow = typeof actionLinks.$inferSelect;

const rowsOf = <T>(result: unknown) => (result as { rows: T[] }).rows;

export async function findServerKey(db: Executor, name: string) {
  const rows = await db.select().from(serverKeys).where(eq(serverKeys.name, name));
  return rows[0];
}

export async function insertServerKey(db: Executor, values: typeof serverKeys.$inferInsert) {
  await db.insert(serverKeys).values(values).onConflictDoNothing();
}

/** Stores a subscription; the same endpoint registered again moves to the new session. */
export async function upsertPushSubscription(db: Executor, values: typeof pushSubscriptions.$inferInsert) {
  await db
    .insert(pushSubscriptions)
    .values(values)
    .onConflictDoUpdate({
      target: pushSubscriptions.endpointHash,
      set: { userId: values.userId, sessionId: values.sessionId, subscriptionEnc: values.subscriptionEnc, host: values.host },
    });
}

export async function deletePushSubscriptionOfUser(db: Executor, userId: string, endpointHash: string) {
  await db.delete(pushSubscriptions).where(and(eq(pushSubscriptions.userId, userId), eq(pushSubscriptions.endpointHash, endpointHash)));
}

export async function deletePushSubscription(db: Executor, id: string) {
  await db.delete(pushSubscriptions).where(eq(pushSubscriptions.id, id));
}

export async function deleteAllPushSubscriptions(db: Executor): Promise<number> {
  const rows = await db.delete(pushSubscriptions).returning({ id: pushSubscriptions.id });
  return rows.length;
}

export async function listPushSubscriptionsOfUser(db: Executor, userId: string) {
  return db.select().from(pushSubscriptions).where(eq(pushSubscriptions.userId, userId)).orderBy(asc(pushSubscriptions.created));
}

export async function findPushSubscriptions(db: Executor, ids: string[]) {
  if (ids.length === 0) return [];
  return db.select().from(pushSubscriptions).where(inArray(pushSubscriptions.id, ids));
}

export async function insertChannel(db: Executor, values: typeof notificationChannels.$inferInsert) {
  const rows = await db.insert(notificationChannels).values(values).returning();
  return rows[0]!;
}

export async function listChannelsOfUser(db: Executor, userId: string) {
  return db.select().from(notificationChannels).where(eq(notificationChannels.userId, userId)).orderBy(asc(notificationChannels.created));
}

export async function findChannel(db: Executor, id: string) {
  const rows = await db.select().from(notificationChannels).where(eq(notificationChannels.id, id));
  return rows[0];
}

export async function findChannels(db: Executor, ids: string[]) {
  if (ids.length === 0) return [];
  return db.select().from(notificationChannels).where(inArray(notificationChannels.id, ids));
}

export async function updateChannel(db: Executor, id: string, values: Partial<typeof notificationChannels.$inferInsert>) {
  const rows = await db.update(notificationChannels).set(values).where(eq(notificationChannels.id, id)).returning();
  return rows[0];
}

export async function deleteChannel(db: Executor, id: string) {
  await db.delete(notificationChannels).where(eq(notificationChannels.id, id));
}

export async function setTopics(db: Executor, userId: string, topics: { schema: string; type: string | null }[] | null) {
  await db.update(users).set({ notifyTopics: topics }).where(eq(users.id, userId));
}

/**
 * Turns up to `limit` new-task events into messages, in one statement: for each unresolved task,
 * each active person whose topics (null: all) include its schema and type gets one message per
 * push subscription and per channel (email only when the server can send it). A digest message is
 * due when the digest already gathering for its channel goes out, else in `digest_minutes`. The
 * events are taken with SKIP LOCKED, so workers in several processes share them. Returns how many
 * events were taken and how many messages they made.
 */
export async function fanOutEvents(db: Executor, limit: number, emailEnabled: boolean): Promise<{ events: number; messages: number }> {
  const result = rowsOf<{ events: string | number; push: string | number; chan: string | number }>(
    await db.execute(sql`
      WITH ev AS (
        DELETE FROM notification_events
        WHERE id IN (SELECT id FROM notification_events ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING task_id
      ), t AS (
        SELECT k.id, s.name AS schema, y.name AS type
        FROM ev JOIN tasks k ON k.id = ev.task_id JOIN task_types y ON y.id = k.ttype_id JOIN task_schemas s ON s.id = k.schema_id
        WHERE NOT k.resolved
      ), r AS (
        SELECT t.id AS task_id, u.id AS user_id
        FROM t JOIN users u ON u.active AND (
          u.notify_topics IS NULL
          OR u.notify_topics @> jsonb_build_array(jsonb_build_object('schema', t.schema, 'type', t.type))
          OR u.notify_topics @> jsonb_build_array(jsonb_build_object('schema', t.schema, 'type', NULL)))
      ), push AS (
        INSERT INTO notifications (user_id, kind, subscription_id, task_id, target, status)
        SELECT r.user_id, 'push', p.id, r.task_id, p.host, 'pending' FROM r JOIN push_subscriptions p ON p.user_id = r.user_id
        RETURNING 1
      ), chan AS (
        INSERT INTO notifications (user_id, kind, channel_id, task_id, target, status, next_attempt_at, digest)
        SELECT r.user_id, c.kind, c.id, r.task_id, c.label, 'pending',
          CASE WHEN c.digest_minutes IS NULL THEN now() ELSE coalesce(
            (SELECT min(n.next_attempt_at) FROM notifications n
             WHERE n.channel_id = c.id AND n.status = 'pending' AND n.digest AND n.attempts = 0 AND n.next_attempt_at > now()),
            now() + make_interval(mins => c.digest_minutes)) END,
          c.digest_minutes IS NOT NULL
        FROM r JOIN notification_channels c ON c.user_id = r.user_id
        WHERE c.kind <> 'email' OR ${emailEnabled}
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM ev) AS events, (SELECT count(*) FROM push) AS push, (SELECT count(*) FROM chan) AS chan`),
  );
  const row = result[0];
  return { events: Number(row?.events ?? 0), messages: Number(row?.push ?? 0) + Number(row?.chan ?? 0) };
}

export type TaskWithTypeRow = Awaited<ReturnType<typeof findTasksWithTypes>>[number];

/** Tasks with their type's name and states and their schema's name. */
export async function findTasksWithTypes(db: Executor, ids: string[]) {
  if (ids.length === 0) return [];
  return db
    .select({
      id: tasks.id,
      state: tasks.state,
      resolved: tasks.resolved,
      meta: tasks.meta,
      type: taskTypes.name,
      pendingStates: taskTypes.pendingStates,
      resolvedStates: taskTypes.resolvedStates,
      schema: taskSchemas.name,
    })
    .from(tasks)
    .innerJoin(taskTypes, eq(taskTypes.id, tasks.ttypeId))
    .innerJoin(taskSchemas, eq(taskSchemas.id, tasks.schemaId))
    .where(inArray(tasks.id, ids));
}

/** Rows per INSERT: a statement has at most 65,535 parameters, and a message row takes about ten. */
const INSERT_CHUNK = 1000;

export async function insertNotifications(db: Executor, values: (typeof notifications.$inferInsert)[]) {
  const rows: NotificationRow[] = [];
  for (let i = 0; i < values.length; i += INSERT_CHUNK) rows.push(...(await db.insert(notifications).values(values.slice(i, i + INSERT_CHUNK)).returning()));
  return rows;
}

const claimable = sql`status = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())`;

/**
 * Claims up to `limit` due messages for `leaseMs`, and with them every other due message of the
 * same digest channels, so a digest goes out as one message. Rows locked by another worker are
 * skipped; a row whose lease ran out (its worker died) is due again.
 */
export async function claimDueNotifications(db: Executor, limit: number, leaseMs: number): Promise<NotificationRow[]> {
  const lease = sql`date_trunc('milliseconds', now() + make_interval(secs => ${leaseMs / 1000}))`;
  const first = rowsOf<{ id: string | number; channel_id: string | null; digest: boolean }>(
    await db.execute(sql`
      UPDATE notifications SET lease_until = ${lease}
      WHERE id IN (SELECT id FROM notifications WHERE ${claimable} ORDER BY next_attempt_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED)
      RETURNING id, channel_id, digest`),
  );
  if (first.length === 0) return [];
  const ids = first.map((r) => Number(r.id));
  const channelIds = [...new Set(first.filter((r) => r.digest && r.channel_id !== null).map((r) => r.channel_id!))];
  if (channelIds.length > 0) {
    const siblings = rowsOf<{ id: string | number }>(
      await db.execute(sql`
        UPDATE notifications SET lease_until = ${lease}
        WHERE id IN (
          SELECT id FROM notifications
          WHERE digest AND channel_id IN (${sql.join(channelIds.map((c) => sql`${c}::uuid`), sql`, `)}) AND ${claimable}
          FOR UPDATE SKIP LOCKED)
        RETURNING id`),
    );
    ids.push(...siblings.map((r) => Number(r.id)));
  }
  return db.select().from(notifications).where(inArray(notifications.id, ids)).orderBy(asc(notifications.id));
}

export async function findNotificationsById(db: Executor, ids: number[]) {
  if (ids.length === 0) return [];
  return db.select().from(notifications).where(inArray(notifications.id, ids));
}

/** Claims given messages now, whatever their due time (a test message, `webpush`). */
export async function claimNotificationsById(db: Executor, ids: number[], leaseMs: number): Promise<NotificationRow[]> {
  if (ids.length === 0) return [];
  return db
    .update(notifications)
    .set({ leaseUntil: sql`date_trunc('milliseconds', now() + make_interval(secs => ${leaseMs / 1000}))` })
    .where(and(inArray(notifications.id, ids), eq(notifications.status, 'pending')))
    .returning();
}

/** Records an outcome, only while the rows still hold `lease` (see deliveries.repo updateDelivery). */
export async function updateNotifications(db: Executor, ids: number[], values: Partial<typeof notifications.$inferInsert>, lease: Date | null) {
  if (ids.length === 0) return;
  await db
    .update(notifications)
    .set(values)
    .where(and(inArray(notifications.id, ids), lease ? eq(notifications.leaseUntil, lease) : undefined));
}

/** Hands back every lease, when no other worker can be running (the embedded database). */
export async function releaseAllNotificationLeases(db: Executor) {
  await db.update(notifications).set({ leaseUntil: null }).where(eq(notifications.status, 'pending'));
}

export interface NotificationFilter {
  status?: NotificationRow['status'];
  beforeId?: number;
  limit: number;
}

/** Newest first, with the recipient's username. */
export async function listNotifications(db: Executor, f: NotificationFilter) {
  const where: (SQL | undefined)[] = [];
  if (f.status) where.push(eq(notifications.status, f.status));
  if (f.beforeId !== undefined) where.push(lt(notifications.id, f.beforeId));
  return db
    .select({ n: notifications, username: users.username })
    .from(notifications)
    .innerJoin(users, eq(users.id, notifications.userId))
    .where(and(...where))
    .orderBy(desc(notifications.id))
    .limit(f.limit);
}

export async function insertActionLinks(db: Executor, values: (typeof actionLinks.$inferInsert)[]) {
  if (values.length > 0) await db.insert(actionLinks).values(values);
}

export async function findActionLink(db: Executor, tokenHash: string) {
  const rows = await db.select().from(actionLinks).where(eq(actionLinks.tokenHash, tokenHash));
  return rows[0];
}

/** Marks one unused, unexpired link used; undefined when it was not (anymore). */
export async function takeActionLink(db: Executor, tokenHash: string) {
  const rows = await db
    .update(actionLinks)
    .set({ usedAt: sql`now()` })
    .where(and(eq(actionLinks.tokenHash, tokenHash), isNull(actionLinks.usedAt), sql`${actionLinks.expiresAt} > now()`))
    .returning();
  return rows[0];
}

export async function releaseActionLink(db: Executor, id: string) {
  await db.update(actionLinks).set({ usedAt: null }).where(eq(actionLinks.id, id));
}

/** Spends every other link the person has for the task: one decision per message. */
export async function spendActionLinks(db: Executor, taskId: string, userId: string) {
  await db
    .update(actionLinks)
    .set({ usedAt: sql`now()` })
    .where(and(eq(actionLinks.taskId, taskId), eq(actionLinks.userId, userId), isNull(actionLinks.usedAt)));
}

export async function deleteExpiredActionLinks(db: Executor, olderThan: Date) {
  await db.delete(actionLinks).where(lt(actionLinks.expiresAt, olderThan));
}

export async function isTaskCancelled(db: Executor, taskId: string): Promise<boolean> {
  const rows = await db.select({ at: tasks.cancelledAt }).from(tasks).where(eq(tasks.id, taskId));
  return rows[0]?.at != null;
}
