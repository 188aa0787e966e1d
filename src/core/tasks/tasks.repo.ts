import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { namedStatement, type NamedStatement } from '../../db/named-statement.js';
import { TASK_EVENTS_CHANNEL } from '../events/task-events.js';
import { taskHistory, tasks, users } from '../../db/tables.js';

/** A task row as the named statements of this file return it (snake_case columns). */
export interface TaskSqlRow {
  id: string;
  created: Date;
  updated: Date;
  ttype_id: number;
  schema_id: number;
  state: string | null;
  resolved: boolean;
  user_id: string | null;
  meta: Record<string, unknown> | null;
  cancelled_at: Date | null;
  cancel_reason: string | null;
}

/** The columns of TaskSqlRow, for a SELECT or RETURNING list. */
export const TASK_COLUMNS = 'id, created, updated, ttype_id, schema_id, state, resolved, user_id, meta, cancelled_at, cancel_reason';

/** A task row without `seq` (only list pages need it, and they select it themselves). */
export function taskFromSqlRow(r: TaskSqlRow): Omit<typeof tasks.$inferSelect, 'seq'> {
  return {
    id: r.id,
    created: r.created,
    updated: r.updated,
    ttypeId: r.ttype_id,
    schemaId: r.schema_id,
    state: r.state,
    resolved: r.resolved,
    userId: r.user_id,
    meta: r.meta,
    cancelledAt: r.cancelled_at,
    cancelReason: r.cancel_reason,
  };
}

/**
 * Creating a task, in one statement (one round trip, atomic on its own): the type called $2 in the
 * latest version of schema $1; if state $3 is one of its states (or null), the task, its `created`
 * history entry, its live-update notification (sent at commit) and, unless $3 resolves it, its
 * notification outbox event. The state rule is checkState's, in SQL.
 *
 * The API key is either given ($5: its id, or null for the command line) or checked here ($5: the
 * SHA-256 of the key a request sent): then nothing is written unless a live key has that hash and
 * its schema limit allows schema $1, so checking the key costs no round trip of its own.
 *
 * Always one row: the key (null when no live key has the hash), the type (null when the schema
 * has no such type) and the task (null when nothing was written).
 */
function createTaskSql(checkKey: boolean): string {
  const key = checkKey
    ? 'SELECT id, name, schema_name FROM api_keys WHERE key_hash = $5::text AND revoked_at IS NULL'
    : 'SELECT $5::uuid AS id, NULL::text AS name, NULL::text AS schema_name';
  return `WITH key AS (${key}),
   latest AS (
     SELECT v.id, v.schema_id FROM schema_versions v JOIN task_schemas s ON s.id = v.schema_id
     WHERE s.name = $1::text ORDER BY v.version DESC LIMIT 1
   ), type AS (
     SELECT t.id, t.name, t.pending_states, t.resolved_states, l.schema_id,
            ($3::text IS NULL OR $3::text = ANY (t.pending_states) OR $3::text = ANY (t.resolved_states)) AS valid,
            coalesce($3::text = ANY (t.resolved_states), false) AS resolved
     FROM latest l JOIN task_types t ON t.version_id = l.id AND t.name = $2::text
   ), task AS (
     INSERT INTO tasks (ttype_id, schema_id, state, resolved, meta)
     SELECT type.id, type.schema_id, $3::text, type.resolved, $4::text::jsonb FROM type, key
     WHERE type.valid AND (key.schema_name IS NULL OR key.schema_name = $1::text)
     RETURNING ${TASK_COLUMNS}
   ), history AS (
     INSERT INTO task_history (task_id, state, resolved, api_key_id, update_meta, event)
     SELECT task.id, task.state, task.resolved, key.id, task.meta, 'created' FROM task, key
   ), outbox AS (
     INSERT INTO notification_events (task_id) SELECT id FROM task WHERE NOT resolved
   )
   SELECT key.id AS key_id, key.name AS key_name, key.schema_name AS key_schema_name,
          type.id AS type_id, type.name AS type_name, type.pending_states, type.resolved_states,
          task.*,
          CASE WHEN task.id IS NOT NULL THEN pg_notify('${TASK_EVENTS_CHANNEL}',
            json_build_object('kind', 'created', 'id', task.id, 'schema', $1::text, 'state', task.state, 'resolved', task.resolved)::text) END AS notified
   FROM (SELECT 1) AS one LEFT JOIN key ON true LEFT JOIN type ON true LEFT JOIN task ON true`;
}

type CreateTaskRow = TaskSqlRow & {
  key_id: string | null;
  key_name: string | null;
  key_schema_name: string | null;
  type_id: number | null;
  type_name: string;
  pending_states: string[];
  resolved_states: string[];
};
const createTaskStatement = namedStatement<CreateTaskRow>('task_inbox_create_task', createTaskSql(false));
const createTaskCheckingKeyStatement = namedStatement<CreateTaskRow>('task_inbox_create_task_key', createTaskSql(true));

export interface NewTask {
  schemaName: string;
  typeName: string;
  state: string | null;
  meta: Record<string, unknown> | null;
  /** The key that posts it: its id (null: the command line), or the hash of a key still to check. */
  apiKey: { id: string | null } | { hash: string };
}

/**
 * Creates a task as createTaskSql describes. `key` is undefined when a key hash was given and no
 * live key has it; `type` when the schema has no such type in its latest version; `task` when
 * nothing was written (no key, no type, a state not the type's, or a key limited to another schema).
 */
export async function createTaskWithHistory(db: Executor, t: NewTask) {
  const statement = 'hash' in t.apiKey ? createTaskCheckingKeyStatement : createTaskStatement;
  const rows = await statement.run(db, [t.schemaName, t.typeName, t.state, t.meta === null ? null : JSON.stringify(t.meta), 'hash' in t.apiKey ? t.apiKey.hash : t.apiKey.id]);
  const row = rows[0]!;
  const key = row.key_id === null ? undefined : { id: row.key_id, name: row.key_name, schemaName: row.key_schema_name };
  const type = row.type_id === null ? undefined : { id: row.type_id, name: row.type_name, pendingStates: row.pending_states, resolvedStates: row.resolved_states };
  return { key, type, task: row.id === null ? undefined : taskFromSqlRow(row) };
}

/** Inserts a history entry; `id` may be one taken in advance with nextHistoryId. */
export async function insertHistory(db: Executor, values: Omit<typeof taskHistory.$inferInsert, 'id'> & { id?: number }) {
  const rows = values.id === undefined ? await db.insert(taskHistory).values(values).returning() : await db.insert(taskHistory).overridingSystemValue().values(values as typeof taskHistory.$inferInsert & { id: number }).returning();
  return rows[0]!;
}

/** Takes the next history id in advance: a sync webhook names the entry before it is written. */
export async function nextHistoryId(db: Executor): Promise<number> {
  const rows = await db.execute<{ id: string | number }>(sql`SELECT nextval(pg_get_serial_sequence('task_history', 'id')) AS id`);
  return Number((rows as unknown as { rows: { id: string | number }[] }).rows[0]!.id);
}

export async function findTaskById(db: Executor, id: string) {
  const rows = await db.select().from(tasks).where(eq(tasks.id, id));
  return rows[0];
}

/** Reads the task and locks its row until the transaction ends: changes of one task queue here. */
export async function lockTaskById(db: Executor, id: string) {
  const rows = await db.select().from(tasks).where(eq(tasks.id, id)).for('update');
  return rows[0];
}

export async function updateTaskState(db: Executor, id: string, state: string | null, resolved: boolean, at?: Date) {
  const rows = await db.update(tasks).set({ state, resolved, updated: at ?? sql`now()` }).where(eq(tasks.id, id)).returning();
  return rows[0]!;
}

export async function listHistory(db: Executor, taskId: string) {
  const rows = await db
    .select({ entry: taskHistory, editorName: users.displayName })
    .from(taskHistory)
    .leftJoin(users, eq(users.id, taskHistory.editorId))
    .where(eq(taskHistory.taskId, taskId))
    .orderBy(asc(taskHistory.id));
  return rows.map((r) => ({ ...r.entry, editorName: r.editorName }));
}

export interface TaskFilter {
  resolved: 'un' | 'all' | 'done';
  schemaId?: number;
  ttypeIds?: number[];
  /** `null` selects tasks with no state. */
  state?: string | null;
  /** Words that must all occur in the metadata's JSON text, any case. */
  words?: string[];
  /** Keyset: only tasks after (or, newest first, before) this `seq`. */
  afterSeq?: number;
  order: 'oldest' | 'newest';
  limit: number;
}

/** A list page's statement: one per shape of filter, its text built once and reused by name. */
const listStatements = new Map<string, NamedStatement<TaskSqlRow & { seq: number | string }>>();

/**
 * The SQL and parameters of one page of tasks, in `seq` order; the indexes on (seq) make deep pages
 * as fast as the first (test/list-plan.test.ts checks the plans).
 */
export function listTasksQuery(f: TaskFilter) {
  const params: unknown[] = [];
  const where: string[] = [];
  const shape: string[] = [f.resolved, f.order];
  const param = (value: unknown, cast: string) => `$${params.push(value)}::${cast}`;
  if (f.resolved === 'un') where.push('NOT resolved');
  if (f.resolved === 'done') where.push('resolved');
  if (f.schemaId !== undefined) {
    where.push(`schema_id = ${param(f.schemaId, 'int')}`);
    shape.push('schema');
  }
  if (f.ttypeIds !== undefined) {
    where.push(`ttype_id = ANY (${param(f.ttypeIds, 'int[]')})`);
    shape.push('types');
  }
  if (f.state === null) {
    where.push('state IS NULL');
    shape.push('no-state');
  } else if (f.state !== undefined) {
    where.push(`state = ${param(f.state, 'text')}`);
    shape.push('state');
  }
  for (const w of f.words ?? []) where.push(`meta::text ILIKE ${param('%' + w.replace(/[\\%_]/g, (c) => '\\' + c) + '%', 'text')}`);
  shape.push(`words${f.words?.length ?? 0}`);
  if (f.afterSeq !== undefined) {
    where.push(`seq ${f.order === 'oldest' ? '>' : '<'} ${param(f.afterSeq, 'bigint')}`);
    shape.push('after');
  }
  const limit = param(f.limit, 'int');
  const name = `task_inbox_list_${shape.join('_')}`;
  let statement = listStatements.get(name);
  if (!statement) {
    const text = `SELECT seq, ${TASK_COLUMNS} FROM tasks${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${f.order === 'oldest' ? 'ASC' : 'DESC'} LIMIT ${limit}`;
    listStatements.set(name, (statement = namedStatement(name, text)));
  }
  return { statement, params };
}

/** One page of tasks (see listTasksQuery). */
export async function listTasks(db: Executor, f: TaskFilter): Promise<(typeof tasks.$inferSelect)[]> {
  const { statement, params } = listTasksQuery(f);
  const rows = await statement.run(db, params);
  return rows.map((r) => ({ ...taskFromSqlRow(r), seq: Number(r.seq) }));
}

/** How many tasks there are, unresolved, resolved or all, optionally of one schema. */
export async function countTasks(db: Executor, resolved: 'un' | 'all' | 'done', schemaId?: number): Promise<number> {
  const where: (SQL | undefined)[] = [];
  if (resolved === 'un') where.push(eq(tasks.resolved, false));
  if (resolved === 'done') where.push(eq(tasks.resolved, true));
  if (schemaId !== undefined) where.push(eq(tasks.schemaId, schemaId));
  const rows = await db.select({ n: sql<number>`count(*)::int` }).from(tasks).where(and(...where));
  return rows[0]!.n;
}

/** Writes some of a task's columns and stamps `updated`. */
export async function updateTask(db: Executor, id: string, values: Partial<Pick<typeof tasks.$inferInsert, 'meta' | 'resolved' | 'cancelledAt' | 'cancelReason'>>) {
  const rows = await db.update(tasks).set({ ...values, updated: sql`now()` }).where(eq(tasks.id, id)).returning();
  return rows[0]!;
}

/** The id of the task's newest history entry that changed its state (metadata updates do not count). */
export async function lastStateChangeId(db: Executor, taskId: string): Promise<number> {
  const rows = await db
    .select({ id: sql<number>`coalesce(max(${taskHistory.id}), 0)` })
    .from(taskHistory)
    .where(and(eq(taskHistory.taskId, taskId), inArray(taskHistory.event, ['created', 'state', 'cancel'])));
  return Number(rows[0]!.id);
}
