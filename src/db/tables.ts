import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { created } from './columns.js';


/** A named schema; its content lives in versions. */
export const taskSchemas = pgTable('task_schemas', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  name: text('name').notNull().unique(),
  created: created(),
});

/** One installed YAML file: version 0, 1, … of a schema. */
export const schemaVersions = pgTable(
  'schema_versions',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    schemaId: integer('schema_id')
      .notNull()
      .references(() => taskSchemas.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    semver: text('semver').notNull(),
    defaultHookUrl: text('default_hook_url'),
    hookMode: text('hook_mode').notNull().default('sync').$type<'sync' | 'async'>(),
    hookAuth: jsonb('hook_auth').$type<{ kind: 'head' | 'standard'; val?: string; args?: Record<string, unknown> } | null>(),
    /** The YAML text as installed, kept for reference. */
    source: text('source').notNull(),
    created: created(),
  },
  (t) => [unique('schema_versions_version_uq').on(t.schemaId, t.version), unique('schema_versions_semver_uq').on(t.schemaId, t.semver)],
);

export const taskTypes = pgTable(
  'task_types',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    versionId: integer('version_id')
      .notNull()
      .references(() => schemaVersions.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    pendingStates: text('pending_states').array().notNull().default(sql`'{}'::text[]`),
    resolvedStates: text('resolved_states').array().notNull(),
    /** Overrides the version's default_hook_url for this type. */
    hookUrl: text('hook_url'),
  },
  (t) => [unique('task_types_version_name_uq').on(t.versionId, t.name)],
);

export const tasks = pgTable(
  'tasks',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** Insertion order: the keyset for pagination ("oldest first"). */
    seq: bigint('seq', { mode: 'number' }).notNull().generatedAlwaysAsIdentity(),
    created: created(),
    updated: timestamp('updated', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    ttypeId: integer('ttype_id')
      .notNull()
      .references(() => taskTypes.id, { onDelete: 'cascade' }),
    /** Denormalised from the type's version so that schema filters use one index. */
    schemaId: integer('schema_id')
      .notNull()
      .references(() => taskSchemas.id, { onDelete: 'cascade' }),
    state: text('state'),
    resolved: boolean('resolved').notNull().default(false),
    userId: uuid('user_id'),
    meta: jsonb('meta').$type<Record<string, unknown> | null>(),
    /** Set when the application server withdrew the task (it is then resolved, its state kept). */
    cancelledAt: timestamp('cancelled_at', { withTimezone: true, mode: 'date' }),
    cancelReason: text('cancel_reason'),
  },
  (t) => [
    unique('tasks_seq_uq').on(t.seq),
    index('tasks_unresolved_seq_idx').on(t.seq).where(sql`NOT ${t.resolved}`),
    index('tasks_schema_seq_idx').on(t.schemaId, t.seq),
    index('tasks_ttype_seq_idx').on(t.ttypeId, t.seq),
  ],
);

/** The paper trail: kept when a schema and its tasks are deleted (task_id becomes null). */
export const taskHistory = pgTable(
  'task_history',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    created: created(),
    taskId: uuid('task_id').references(() => tasks.id, { onDelete: 'set null' }),
    state: text('state'),
    resolved: boolean('resolved').notNull(),
    editorId: uuid('editor_id'),
    assignedId: uuid('assigned_id'),
    /** The API key that made the change, when an application server made it. */
    apiKeyId: uuid('api_key_id').references(() => apiKeys.id, { onDelete: 'set null' }),
    updateMeta: jsonb('update_meta').$type<Record<string, unknown> | null>(),
    /** What happened: the task was created, its state set, its metadata updated, or it was cancelled. */
    event: text('event').$type<'created' | 'state' | 'meta' | 'cancel'>().notNull().default('state'),
    /** With `cancel`: the reason the application server gave. */
    reason: text('reason'),
  },
  (t) => [index('task_history_task_idx').on(t.taskId, t.id)],
);

/** Inbound API keys. Only the SHA-256 of the key is stored. */
export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name'),
  /** The first characters of the key, to tell keys apart in listings. */
  prefix: text('prefix').notNull(),
  keyHash: text('key_hash').notNull().unique(),
  /** When set, the key reaches only this schema's tasks. */
  schemaName: text('schema_name'),
  created: created(),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
  revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
});

/** Responses remembered for `Idempotency-Key`, per API key. */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    apiKeyId: uuid('api_key_id')
      .notNull()
      .references(() => apiKeys.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    requestHash: text('request_hash').notNull(),
    /** `in_flight` while the first request runs, then `done`. */
    status: text('status').notNull().$type<'in_flight' | 'done'>(),
    responseStatus: integer('response_status'),
    responseBody: jsonb('response_body'),
    created: created(),
  },
  (t) => [primaryKey({ columns: [t.apiKeyId, t.key] }), index('idempotency_keys_created_idx').on(t.created)],
);

/**
 * Outbound webhook keys, per (schema, hook_auth) pair so they survive schema versions that keep
 * the same hook_auth. The secret is stored only encrypted (AES-256-GCM, see core/secrets).
 */
export const webhookKeys = pgTable(
  'webhook_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    schemaId: integer('schema_id')
      .notNull()
      .references(() => taskSchemas.id, { onDelete: 'cascade' }),
    /** Canonical JSON of the hook_auth the key serves. */
    authFingerprint: text('auth_fingerprint').notNull(),
    kind: text('kind').notNull().$type<'head' | 'standard'>(),
    secretEnc: text('secret_enc').notNull(),
    /** The first characters, to tell keys apart in listings. */
    prefix: text('prefix').notNull(),
    created: created(),
    /** Set when a newer key replaced this one: it keeps signing until then. */
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('webhook_keys_schema_idx').on(t.schemaId, t.authFingerprint)],
);

/**
 * The delivery log and the outbox: one row per state change to deliver (async) or delivered
 * while the person waited (sync). Async rows are written in the state change's transaction.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /** The `webhook-id` header: the same on every retry, so receivers can drop duplicates. */
    webhookId: text('webhook_id').notNull().unique(),
    mode: text('mode').notNull().$type<'sync' | 'async'>(),
    taskId: uuid('task_id').references(() => tasks.id, { onDelete: 'set null' }),
    historyId: bigint('history_id', { mode: 'number' }),
    schemaId: integer('schema_id')
      .notNull()
      .references(() => taskSchemas.id, { onDelete: 'cascade' }),
    versionId: integer('version_id')
      .notNull()
      .references(() => schemaVersions.id, { onDelete: 'cascade' }),
    url: text('url').notNull(),
    /** The exact body sent, identical on every attempt. */
    payload: text('payload').notNull(),
    /** pending → delivered, or dead after the last retry; paused while its endpoint answered 410; failed: a refused sync change. */
    status: text('status').notNull().$type<'pending' | 'delivered' | 'failed' | 'dead' | 'paused'>(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    leaseUntil: timestamp('lease_until', { withTimezone: true, mode: 'date' }),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    created: created(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    index('webhook_deliveries_task_idx').on(t.taskId, t.id),
    index('webhook_deliveries_schema_idx').on(t.schemaId, t.id),
  ],
);

/** Every attempt of every delivery. */
export const webhookAttempts = pgTable(
  'webhook_attempts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    deliveryId: bigint('delivery_id', { mode: 'number' })
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: 'cascade' }),
    created: created(),
    statusCode: integer('status_code'),
    latencyMs: integer('latency_ms').notNull(),
    /** The receiver's answer, up to 20 KB. */
    responseBody: text('response_body'),
    error: text('error'),
  },
  (t) => [index('webhook_attempts_delivery_idx').on(t.deliveryId, t.id)],
);

/** Endpoints that answered 410 Gone: nothing more is sent to them until an admin re-enables them. */
export const disabledEndpoints = pgTable('webhook_disabled_endpoints', {
  url: text('url').primaryKey(),
  created: created(),
  reason: text('reason').notNull(),
});

/** People who work the inbox. Usernames are unique whatever their case. */
export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    username: text('username').notNull(),
    displayName: text('display_name').notNull(),
    email: text('email'),
    role: text('role').notNull().$type<'admin' | 'member'>(),
    active: boolean('active').notNull().default(true),
    /** argon2id. */
    passwordHash: text('password_hash').notNull(),
    /** Which schemas and types notify this person: null for all of them. */
    notifyTopics: jsonb('notify_topics').$type<{ schema: string; type: string | null }[] | null>(),
    created: created(),
    updated: timestamp('updated', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('users_username_lower_uq').on(sql`lower(${t.username})`)],
);

/** Sign-in sessions. Only the SHA-256 of the cookie's token is stored. */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull().unique(),
    created: created(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** The absolute end, whatever the activity. */
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    ip: text('ip'),
    userAgent: text('user_agent'),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
);

/** Failed sign-ins, counted per account and per address for throttling (shared by all instances). */
export const signInFailures = pgTable(
  'sign_in_failures',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /** `user:<lower username>` or `ip:<address>`. */
    subject: text('subject').notNull(),
    created: created(),
  },
  (t) => [index('sign_in_failures_subject_idx').on(t.subject, t.created)],
);

/** The first-run setup link: valid once, for an hour, while no account exists. */
export const setupTokens = pgTable('setup_tokens', {
  tokenHash: text('token_hash').primaryKey(),
  created: created(),
  expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true, mode: 'date' }),
});

/** Who did what, when, from where. Never holds a secret. */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    created: created(),
    /** `person`, `api-key`, `cli` or `anonymous`. */
    actorKind: text('actor_kind').notNull(),
    actorId: text('actor_id'),
    actorName: text('actor_name'),
    ip: text('ip'),
    /** e.g. `auth.sign-in`, `user.create`, `api-key.revoke`. */
    action: text('action').notNull(),
    target: text('target'),
    details: jsonb('details').$type<Record<string, unknown> | null>(),
  },
  (t) => [index('audit_events_created_idx').on(t.created), index('audit_events_action_idx').on(t.action, t.id)],
);

export * from './notification-tables.js';
