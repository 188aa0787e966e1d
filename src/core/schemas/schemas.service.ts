import { AppError, InvalidSchemaFile, SchemaNotFound, type SchemaFileIssue } from '../../errors.js';
import type { Database, Executor } from '../../db/index.js';
import type { TaskType } from '../../contract/index.js';
import { parseSchemaFile, type SchemaFile } from './schema-file.js';
import { cliActor, recordAudit, type Actor } from '../audit/audit.js';
import * as repo from './schemas.repo.js';
import { typeRowToTaskType } from './schemas.js';

export interface InstallResult {
  name: string;
  /** The version number this file became (0 for a new schema). */
  version: number;
  semver: string;
  isNewSchema: boolean;
  types: { name: string; pending_states: string[]; resolved_states: string[] }[];
  warnings: SchemaFileIssue[];
  dryRun: boolean;
}

/**
 * Installs a schema file as version 0 of a new schema or the next version of an existing one.
 * With `dryRun`, checks everything and writes nothing.
 */
export async function installSchema(database: Database, source: string, opts: { dryRun?: boolean; label?: string } = {}, actor: Actor = cliActor): Promise<InstallResult> {
  const { schema, warnings } = parseSchemaFile(source, opts.label);
  const result = (version: number, isNewSchema: boolean): InstallResult => ({
    name: schema.name,
    version,
    semver: schema.semver,
    isNewSchema,
    types: schema.types.map((t) => ({ name: t.name, pending_states: t.pendingStates, resolved_states: t.resolvedStates })),
    warnings,
    dryRun: Boolean(opts.dryRun),
  });

  if (opts.dryRun) {
    const existing = await repo.findSchemaByName(database.db, schema.name);
    if (!existing) return result(0, true);
    await refuseExistingSemver(database.db, existing.id, schema, opts.label);
    const latest = await repo.findLatestVersion(database.db, existing.id);
    return result(latest ? latest.version + 1 : 0, false);
  }

  return database.db.transaction(async (tx) => {
    const existing = await repo.findSchemaByName(tx, schema.name);
    const row = await repo.lockOrCreateSchema(tx, schema.name);
    await refuseExistingSemver(tx, row.id, schema, opts.label);
    const latest = await repo.findLatestVersion(tx, row.id);
    const versionNumber = latest ? latest.version + 1 : 0;
    const version = await repo.insertVersion(tx, {
      schemaId: row.id,
      version: versionNumber,
      semver: schema.semver,
      defaultHookUrl: schema.defaultHookUrl,
      hookMode: schema.hookMode,
      hookAuth: schema.hookAuth,
      source: schema.source,
    });
    await repo.insertTaskTypes(
      tx,
      schema.types.map((t) => ({ versionId: version.id, name: t.name, pendingStates: t.pendingStates, resolvedStates: t.resolvedStates, hookUrl: t.hookUrl })),
    );
    await recordAudit(tx, actor, 'schema.install', schema.name, { version: versionNumber, semver: schema.semver });
    return result(versionNumber, !existing);
  });
}

async function refuseExistingSemver(db: Executor, schemaId: number, schema: SchemaFile, label?: string) {
  const clash = await repo.findVersionBySemver(db, schemaId, schema.semver);
  if (!clash) return;
  const issue = {
    line: schema.semverLine,
    column: 1,
    field: 'semver',
    message: `schema '${schema.name}' already has semver '${schema.semver}' (version ${clash.version}); give this file a new semver`,
  };
  const err = new InvalidSchemaFile([issue], label);
  throw new AppError('schema-version-exists', err.detail, { errors: [issue] });
}

export interface RemoveResult {
  name: string;
  versions: number;
  tasks: number;
  /** History rows kept, with their task reference cleared. */
  historyKept: number;
  dryRun: boolean;
}

/** Deletes a schema with all its versions and tasks; the task history rows stay. */
export async function removeSchema(database: Database, name: string, opts: { dryRun?: boolean } = {}, actor: Actor = cliActor): Promise<RemoveResult> {
  return database.db.transaction(async (tx) => {
    const row = await repo.findSchemaByName(tx, name);
    if (!row) throw new SchemaNotFound(name);
    const counts = await repo.countSchemaContents(tx, row.id);
    if (!opts.dryRun) {
      await repo.deleteSchema(tx, row.id);
      await recordAudit(tx, actor, 'schema.remove', name, { versions: counts.versions, tasks: counts.tasks });
    }
    return { name, versions: counts.versions, tasks: counts.tasks, historyKept: counts.history, dryRun: Boolean(opts.dryRun) };
  });
}

export interface SchemaSummary {
  name: string;
  latest_version: number | null;
  semver: string | null;
  versions: number;
  tasks: number;
  unresolved: number;
  created: string;
}

export async function listSchemas(database: Database): Promise<SchemaSummary[]> {
  const rows = await repo.listSchemasWithStats(database.db);
  return rows.map((r) => ({
    name: r.name,
    latest_version: r.latestVersion ?? null,
    semver: r.semver ?? null,
    versions: r.versions,
    tasks: r.tasks,
    unresolved: r.unresolved,
    created: r.created.toISOString(),
  }));
}

/** The types of a schema's latest version. */
export async function listLatestTypes(database: Database, schemaName: string): Promise<TaskType[]> {
  const schema = await repo.findSchemaByName(database.db, schemaName);
  if (!schema) throw new SchemaNotFound(schemaName);
  const latest = await repo.findLatestVersion(database.db, schema.id);
  if (!latest) return [];
  const types = await repo.listTypesOfVersion(database.db, latest.id);
  return types.map((t) =>
    typeRowToTaskType({ ...t, schemaId: schema.id, schemaName: schema.name, version: latest.version, semver: latest.semver }),
  );
}

/** Every version's types, oldest version first (the inbox's filters and the admin's schema view). */
export async function listAllTypes(database: Database, schemaName?: string): Promise<TaskType[]> {
  return (await repo.listAllTypes(database.db, schemaName)).map(typeRowToTaskType);
}

/** Type rows never change once installed (a new version makes new rows), so a process keeps them. */
const typeCache = new WeakMap<Database, Map<number, repo.TypeWithHookRow>>();
/** More types than this in one process (thousands of versions): start over rather than grow. */
const TYPE_CACHE_LIMIT = 10_000;

/** findTypesByIds, reading from the database only the types this process has not seen yet. */
export async function findTypesByIdsCached(database: Database, ids: number[]): Promise<repo.TypeWithHookRow[]> {
  let cache = typeCache.get(database);
  if (!cache) typeCache.set(database, (cache = new Map()));
  const missing = ids.filter((id) => !cache.has(id));
  if (missing.length > 0) {
    if (cache.size + missing.length > TYPE_CACHE_LIMIT) cache.clear();
    for (const row of await repo.findTypesByIds(database.db, missing)) cache.set(row.id, row);
  }
  return ids.flatMap((id) => cache.get(id) ?? []);
}
