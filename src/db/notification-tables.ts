import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
// A cycle with tables.ts (which re-exports this file); the references are functions, so it resolves.
import { created } from './columns.js';
import { sessions, tasks, users } from './tables.js';

const stamp = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** Keys the server made for itself, e.g. the VAPID key pair: the private part only sealed (core/secrets). */
export const serverKeys = pgTable('server_keys', {
  name: text('name').primaryKey(),
  publicValue: text('public_value').notNull(),
  secretEnc: text('secret_enc').notNull(),
  created: created(),
});

/** A browser session's web push subscription. Signing out (the session's end) removes it. */
export const pushSubscriptions = pgTable(
  'push_subscriptions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    sessionId: uuid('session_id').references(() => sessions.id, { onDelete: 'cascade' }),
    /** The push service's URL for this subscription: itself a capability, so kept sealed; its SHA-256 finds it. */
    endpointHash: text('endpoint_hash').notNull().unique(),
    /** Sealed JSON: endpoint, p256dh, auth. */
    subscriptionEnc: text('subscription_enc').notNull(),
    /** The push service's host, for the log. */
    host: text('host').notNull(),
    created: created(),
  },
  (t) => [index('push_subscriptions_user_idx').on(t.userId)],
);

/** A person's other channels: email, a Slack-compatible webhook, ntfy, a generic JSON webhook. */
export const notificationChannels = pgTable(
  'notification_channels',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    kind: text('kind').notNull().$type<'email' | 'slack' | 'ntfy' | 'webhook'>(),
    /** What it sends to, without secrets. */
    label: text('label').notNull(),
    /** Sealed JSON of the channel's settings (webhook URLs and tokens are secrets). */
    configEnc: text('config_enc').notNull(),
    /** Null: at once; otherwise new tasks are gathered and sent every so many minutes. */
    digestMinutes: integer('digest_minutes'),
    created: created(),
    lastSentAt: stamp('last_sent_at'),
    lastError: text('last_error'),
  },
  (t) => [index('notification_channels_user_idx').on(t.userId)],
);

/**
 * New tasks waiting to be turned into notifications: one row written in the task's own
 * transaction, fanned out to each person's devices and channels by a worker, off the request path.
 */
export const notificationEvents = pgTable('notification_events', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  taskId: uuid('task_id')
    .notNull()
    .references(() => tasks.id, { onDelete: 'cascade' }),
  created: created(),
});

/** The notification outbox and log: one row per message to one device or channel. */
export const notifications = pgTable(
  'notifications',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    kind: text('kind').notNull().$type<'push' | 'email' | 'slack' | 'ntfy' | 'webhook'>(),
    channelId: uuid('channel_id').references(() => notificationChannels.id, { onDelete: 'cascade' }),
    subscriptionId: uuid('subscription_id').references(() => pushSubscriptions.id, { onDelete: 'set null' }),
    taskId: uuid('task_id').references(() => tasks.id, { onDelete: 'set null' }),
    /** The channel's label or the push service's host, kept for the log. */
    target: text('target').notNull(),
    /** Part of a digest: sent together with the channel's other due digest messages. */
    digest: boolean('digest').notNull().default(false),
    /** A message not about one task (`webpush USER_ID MESSAGE`). */
    message: text('message'),
    status: text('status').notNull().$type<'pending' | 'sent' | 'skipped' | 'gone' | 'dead'>(),
    attempts: integer('attempts').notNull().default(0),
    /** When it is due: now, at the end of a digest period, or the next retry. */
    nextAttemptAt: stamp('next_attempt_at').notNull().defaultNow(),
    leaseUntil: stamp('lease_until'),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    created: created(),
    sentAt: stamp('sent_at'),
  },
  (t) => [
    index('notifications_due_idx').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    index('notifications_channel_idx').on(t.channelId).where(sql`${t.status} = 'pending'`),
  ],
);

/**
 * One-tap links: one per recipient and state of a task. Only the SHA-256 of the link's random
 * part is stored; using one link spends every link that person has for that task.
 */
export const actionLinks = pgTable(
  'action_links',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tokenHash: text('token_hash').notNull().unique(),
    taskId: uuid('task_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    state: text('state'),
    expiresAt: stamp('expires_at').notNull(),
    usedAt: stamp('used_at'),
    created: created(),
  },
  (t) => [index('action_links_task_user_idx').on(t.taskId, t.userId), index('action_links_expires_idx').on(t.expiresAt)],
);
