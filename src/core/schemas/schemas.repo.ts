import { and, asc, count, desc, eq, inArray, max, sql } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { schemaVersions, taskHistory, taskSchemas, tasks, taskTypes } from '../../db/tables.js';

export async function findSchemaByName(db: Executor, name: string) {
  const rows = await db.select().from(taskSchemas).where(eq(taskSchemas.name, name));
  return rows[0];
}

/** Creates the schema row if missing and locks it, so two installs of one schema queue. */
export async function lockOrCreateSchema(db: Executor, name: string) {
  await db.insert(taskSchemas).values({ name }).onConflictDoNothing();
  const rows = await db.select().from(taskSchemas).where(eq(taskSchemas.name, name)).for('update');
  return rows[0]!;
}

export async function findVersionBySemver(db: Executor, schemaId: number, semver: string) {
  const rows = await db
    .select()
    .from(schemaVersions)
    .where(and(eq(schemaVersions.schemaId, schemaId), eq(schemaVersions.semver, semver)));
  return rows[0];
}

export async function findLatestVersion(db: Executor, schemaId: number) {
  const rows = await db
    .select()
    .from(schemaVersions)
    .where(eq(schemaVersions.schemaId, schemaId))
    .orderBy(desc(schemaVersions.version))
    .limit(1);
  return rows[0];
}

export async function insertVersion(db: Executor, values: typeof schemaVersions.$inferInsert) {
  const rows = await db.insert(schemaVersions).values(values).returning();
  return rows[0]!;
}

export async function insertTaskTypes(db: Executor, values: (typeof taskTypes.$inferInsert)[]) {
  return db.insert(taskTypes).values(values).returning();
}

export async function listTypesOfVersion(db: Executor, versionId: number) {
  return db.select().from(taskTypes).where(eq(taskTypes.versionId, versionId)).orderBy(asc(taskTypes.id));
}

const typeColumns = {
  id: taskTypes.id,
  name: taskTypes.name,
  pendingStates: taskTypes.pendingStates,
  resolvedStates: taskTypes.resolvedStates,
  schemaId: taskSchemas.id,
  schemaName: taskSchemas.name,
  version: schemaVersions.version,
  semver: schemaVersions.semver,
  versionId: schemaVersions.id,
  hookUrl: taskTypes.hookUrl,
  defaultHookUrl: schemaVersions.defaultHookUrl,
  hookMode: schemaVersions.hookMode,
  hookAuth: schemaVersions.hookAuth,
};

/** A type with its schema, version and webhook settings, as findTypesByIds returns it. */
export type TypeWithHookRow = Awaited<ReturnType<typeof findTypesByIds>>[number];

/** Task types with their schema's name and version, by id. */
export async function findTypesByIds(db: Executor, ids: number[]) {
  if (ids.length === 0) return [];
  return db
    .select(typeColumns)
    .from(taskTypes)
    .innerJoin(schemaVersions, eq(schemaVersions.id, taskTypes.versionId))
    .innerJoin(taskSchemas, eq(taskSchemas.id, schemaVersions.schemaId))
    .where(inArray(taskTypes.id, ids));
}

/** Every type of every version, by schema name, version and type id (optionally of one schema). */
export async function listAllTypes(db: Executor, schemaName?: string) {
  return db
    .select(typeColumns)
    .from(taskTypes)
    .innerJoin(schemaVersions, eq(schemaVersions.id, taskTypes.versionId))
    .innerJoin(taskSchemas, eq(taskSchemas.id, schemaVersions.schemaId))
    .where(schemaName === undefined ? undefined : eq(taskSchemas.name, schemaName))
    .orderBy(asc(taskSchemas.name), asc(schemaVersions.version), asc(taskTypes.id));
}

/** Ids of every version's type called `name` in a schema. */
export async function findTypeIdsByName(db: Executor, schemaId: number | undefined, name: string) {
  const rows = await db
    .select({ id: taskTypes.id })
    .from(taskTypes)
    .innerJoin(schemaVersions, eq(schemaVersions.id, taskTypes.versionId))
    .where(schemaId === undefined ? eq(taskTypes.name, name) : and(eq(taskTypes.name, name), eq(schemaVersions.schemaId, schemaId)));
  return rows.map((r) => r.id);
}

export async function listSchemasWithStats(db: Executor) {
  const versionStats = db
    .select({ schemaId: schemaVersions.schemaId, versions: count().as('versions'), latest: max(schemaVersions.version).as('latest') })
    .from(schemaVersions)
    .groupBy(schemaVersions.schemaId)
    .as('vs');
  const taskStats = db
    .select({
      schemaId: tasks.schemaId,
      total: count().as('total'),
      unresolved: sql<number>`count(*) filter (where not ${tasks.resolved})`.mapWith(Number).as('unresolved'),
    })
    .from(tasks)
    .groupBy(tasks.schemaId)
    .as('ts');
  return db
    .select({
      id: taskSchemas.id,
      name: taskSchemas.name,
      created: taskSchemas.created,
      versions: sql<number>`coalesce(${versionStats.versions}, 0)`.mapWith(Number),
      latestVersion: versionStats.latest,
      semver: schemaVersions.semver,
      tasks: sql<number>`coalesce(${taskStats.total}, 0)`.mapWith(Number),
      unresolved: sql<number>`coalesce(${taskStats.unresolved}, 0)`.mapWith(Number),
    })
    .from(taskSchemas)
    .leftJoin(versionStats, eq(versionStats.schemaId, taskSchemas.id))
    .leftJoin(schemaVersions, and(eq(schemaVersions.schemaId, taskSchemas.id), eq(schemaVersions.version, versionStats.latest)))
    .leftJoin(taskStats, eq(taskStats.schemaId, taskSchemas.id))
    .orderBy(asc(taskSchemas.name));
}

export async function countSchemaContents(db: Executor, schemaId: number) {
  const [versions] = await db.select({ n: count() }).from(schemaVersions).where(eq(schemaVersions.schemaId, schemaId));
  const [taskCount] = await db.select({ n: count() }).from(tasks).where(eq(tasks.schemaId, schemaId));
  const [history] = await db
    .select({ n: count() })
    .from(taskHistory)
    .innerJoin(tasks, eq(tasks.id, taskHistory.taskId))
    .where(eq(tasks.schemaId, schemaId));
  return { versions: versions!.n, tasks: taskCount!.n, history: history!.n };
}

/** Deletes the schema; versions, types and tasks go with it, history rows stay with task_id cleared. */
export async function deleteSchema(db: Executor, schemaId: number) {
  await db.delete(taskSchemas).where(eq(taskSchemas.id, schemaId));
}

export async function findVersionById(db: Executor, id: number) {
  const rows = await db.select().from(schemaVersions).where(eq(schemaVersions.id, id));
  return rows[0];
}
