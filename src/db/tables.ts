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
  uuid,
} from 'drizzle-orm/pg-core';

const created = () => timestamp('created', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

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
    hookAuth: jsonb('hook_auth').$type<{ kind: string; val: string; args?: Record<string, unknown> } | null>(),
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
