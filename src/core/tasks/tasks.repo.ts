import { and, asc, desc, eq, gt, inArray, isNull, lt, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { schemaVersions, taskHistory, taskSchemas, tasks, taskTypes, users } from '../../db/tables.js';

/** The type called `typeName` in the latest version of schema `schemaName`, in one query. */
export async function findLatestType(db: Executor, schemaName: string, typeName: string) {
  const latest = db
    .select({ id: schemaVersions.id, version: schemaVersions.version, semver: schemaVersions.semver, schemaId: schemaVersions.schemaId })
    .from(schemaVersions)
    .innerJoin(taskSchemas, eq(taskSchemas.id, schemaVersions.schemaId))
    .where(eq(taskSchemas.name, schemaName))
    .orderBy(desc(schemaVersions.version))
    .limit(1)
    .as('latest');
  const rows = await db
    .select({
      id: taskTypes.id,
      name: taskTypes.name,
      pendingStates: taskTypes.pendingStates,
      resolvedStates: taskTypes.resolvedStates,
      schemaId: latest.schemaId,
      version: latest.version,
      semver: latest.semver,
    })
    .from(latest)
    .innerJoin(taskTypes, and(eq(taskTypes.versionId, latest.id), eq(taskTypes.name, typeName)));
  const row = rows[0];
  return row ? { ...row, schemaName } : undefined;
}

export async function insertTask(db: Executor, values: typeof tasks.$inferInsert) {
  const rows = await db.insert(tasks).values(values).returning();
  return rows[0]!;
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

/**
 * One page of tasks, in `seq` order; the indexes on (seq) make deep pages as fast as the first.
 * Returns the unexecuted query (await it to run it), so its plan can be inspected.
 */
export function listTasks(db: Executor, f: TaskFilter) {
  const where: (SQL | undefined)[] = [];
  if (f.resolved === 'un') where.push(eq(tasks.resolved, false));
  if (f.resolved === 'done') where.push(eq(tasks.resolved, true));
  if (f.schemaId !== undefined) where.push(eq(tasks.schemaId, f.schemaId));
  if (f.ttypeIds !== undefined) where.push(inArray(tasks.ttypeId, f.ttypeIds));
  if (f.state !== undefined) where.push(f.state === null ? isNull(tasks.state) : eq(tasks.state, f.state));
  for (const w of f.words ?? []) where.push(sql`${tasks.meta}::text ILIKE ${'%' + w.replace(/[\\%_]/g, (c) => '\\' + c) + '%'}`);
  if (f.afterSeq !== undefined) where.push(f.order === 'oldest' ? gt(tasks.seq, f.afterSeq) : lt(tasks.seq, f.afterSeq));
  return db
    .select()
    .from(tasks)
    .where(and(...where))
    .orderBy(f.order === 'oldest' ? asc(tasks.seq) : desc(tasks.seq))
    .limit(f.limit);
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
