import { createHash } from 'node:crypto';
import type { CreateTaskBody, CreateTaskResponse, GetTaskResponse, HistoryEntry, ListTasksQuery, ListTasksResponse, Task, TaskType } from '../../contract/index.js';
import type { Database, Executor } from '../../db/index.js';
import { AppError, SchemaNotFound, StateNotInType, TaskNotFound, TaskTypeNotFound } from '../../errors.js';
import { checkState, findTypesByIdsCached, schemasRepo, statesOf, typeRowToTaskType, type TypeRow } from '../schemas/index.js';
import { buildPayload, hookTargetOf, type HookTarget, type Webhooks } from '../webhooks/index.js';
import { publishTaskEvent } from '../events/task-events.js';
import * as idempotency from './idempotency.repo.js';
import * as repo from './tasks.repo.js';
import { historyRowToEntry, scopeOf, stableStringify, taskRowToTask, type Principal } from './tasks.js';
import { authenticateApiKey, hashApiKey, recordApiKeyUse, type ApiKeyPrincipal } from '../keys/index.js';

/** How long an `Idempotency-Key` is remembered. */
export const IDEMPOTENCY_TTL_HOURS = 24;
/** An in-flight key older than this belongs to a request that died; a retry may take it over. */
const IDEMPOTENCY_STALE_SECONDS = 120;

function refuseOtherSchema(principal: Principal, schemaName: string) {
  const scope = scopeOf(principal);
  if (scope !== null && scope !== schemaName) {
    throw new AppError('api-key-wrong-schema', `This API key is limited to schema '${scope}'; it cannot post tasks to '${schemaName}'.`);
  }
}

/**
 * Creates a task of the latest version's type, with its first history entry, its live update and
 * its notification event, in one statement (see tasks.repo's createTaskWithHistory).
 */
export async function createTask(database: Database, principal: Principal, body: CreateTaskBody, tx?: Executor): Promise<CreateTaskResponse> {
  refuseOtherSchema(principal, body.schema_name);
  const db = tx ?? database.db;
  const { type, task } = await repo.createTaskWithHistory(db, { ...newTaskOf(body), apiKey: { id: principal.kind === 'api-key' ? principal.id : null } });
  if (!task) return refusedCreate(db, body, type);
  return { task: taskRowToTask(task), ttype: type!.name };
}

/**
 * createTask for a request whose API key has not been checked yet: the key is checked by the same
 * statement that writes the task, so a POST costs one round trip less. Refused exactly as the
 * api-key auth rule and createTask refuse (unknown, revoked or missing key, another schema's key,
 * unknown type, wrong state), with nothing written. Returns the key's principal too.
 */
export async function createTaskCheckingKey(database: Database, key: string, body: CreateTaskBody): Promise<{ created: CreateTaskResponse; principal: ApiKeyPrincipal }> {
  const db = database.db;
  const { key: row, type, task } = await repo.createTaskWithHistory(db, { ...newTaskOf(body), apiKey: { hash: hashApiKey(key) } });
  if (!row) {
    // The same check as the auth rule's, for its answer (401, 403 or 501); a key created meanwhile passes it.
    const principal = await authenticateApiKey(database, key);
    return { created: await createTask(database, principal, body), principal };
  }
  const principal: ApiKeyPrincipal = { kind: 'api-key', id: row.id, name: row.name, schemaName: row.schemaName };
  await recordApiKeyUse(database, principal.id);
  if (!task) {
    refuseOtherSchema(principal, body.schema_name);
    return refusedCreate(db, body, type);
  }
  return { created: { task: taskRowToTask(task), ttype: type!.name }, principal };
}

const newTaskOf = (body: CreateTaskBody) => ({ schemaName: body.schema_name, typeName: body.task, state: body.state ?? null, meta: body.meta ?? null });

/** Why createTaskWithHistory wrote nothing, given a key that may post to the schema: throws. */
async function refusedCreate(db: Executor, body: CreateTaskBody, type: { name: string; pendingStates: string[]; resolvedStates: string[] } | undefined): Promise<never> {
  if (!type) return explainMissingType(db, body.schema_name, body.task);
  throw new StateNotInType(body.state!, type.name, statesOf(type));
}

async function explainMissingType(db: Executor, schemaName: string, typeName: string): Promise<never> {
  const schema = await schemasRepo.findSchemaByName(db, schemaName);
  if (!schema) throw new SchemaNotFound(schemaName);
  const latest = await schemasRepo.findLatestVersion(db, schema.id);
  const types = latest ? await schemasRepo.listTypesOfVersion(db, latest.id) : [];
  throw new TaskTypeNotFound(schemaName, typeName, types.map((t) => t.name));
}

export interface HttpOutcome<T> {
  status: number;
  body: T;
  /** True when the body is the remembered answer to an earlier request with the same key. */
  replayed: boolean;
}

/**
 * `createTask` under an `Idempotency-Key`: the first request with a key creates the task; a retry
 * with the same body gets the first answer; the same key with another body is refused (422), and
 * so is a retry while the first is still running (409).
 */
export async function createTaskIdempotent(
  database: Database,
  principal: Principal & { kind: 'api-key' },
  body: CreateTaskBody,
  idempotencyKey: string,
): Promise<HttpOutcome<CreateTaskResponse>> {
  const hash = createHash('sha256').update(stableStringify(body)).digest('hex');
  const db = database.db;
  for (let attempt = 0; ; attempt++) {
    if (await idempotency.insertInFlight(db, principal.id, idempotencyKey, hash)) break;
    const row = await idempotency.findIdempotencyKey(db, principal.id, idempotencyKey);
    if (!row) continue; // deleted meanwhile (failed first request, or expired): try to claim again
    if (row.ageSeconds > IDEMPOTENCY_TTL_HOURS * 3600 && attempt === 0) {
      await idempotency.deleteIdempotencyKey(db, principal.id, idempotencyKey);
      continue;
    }
    if (row.requestHash !== hash) {
      throw new AppError('idempotency-key-reused', 'This Idempotency-Key was already used with a different request body. Use a new key for a new request.');
    }
    if (row.status === 'done') return { status: row.responseStatus!, body: withLaterFields(row.responseBody as CreateTaskResponse), replayed: true };
    if (row.ageSeconds > IDEMPOTENCY_STALE_SECONDS && (await idempotency.restartStaleInFlight(db, principal.id, idempotencyKey, IDEMPOTENCY_STALE_SECONDS))) break;
    throw new AppError('idempotency-in-flight', 'A request with this Idempotency-Key is still being processed. Retry in a moment to get its answer.');
  }
  try {
    return await database.db.transaction(async (tx) => {
      const result = await createTask(database, principal, body, tx);
      await idempotency.completeIdempotencyKey(tx, principal.id, idempotencyKey, 200, result);
      return { status: 200, body: result, replayed: false };
    });
  } catch (err) {
    // A refused request leaves no trace, so a corrected retry with the same key can succeed.
    await idempotency.deleteIdempotencyKey(db, principal.id, idempotencyKey).catch(() => {});
    throw err;
  }
}

/**
 * A remembered answer, stored by an earlier release, with the task fields added since then (at
 * their values for a task that has not changed), so that it still matches the answer schema.
 */
function withLaterFields(body: CreateTaskResponse): CreateTaskResponse {
  const stored = body.task as Partial<Task> & Omit<Task, 'cancelled'>;
  return { ...body, task: { ...stored, cancelled: stored.cancelled ?? null } };
}

/** Reads a task the principal may see, or throws TaskNotFound. */
export async function visibleTask(db: Executor, principal: Principal, id: string, lock = false) {
  const row = lock ? await repo.lockTaskById(db, id) : await repo.findTaskById(db, id);
  if (!row) throw new TaskNotFound(id);
  const [type] = await schemasRepo.findTypesByIds(db, [row.ttypeId]);
  const scope = scopeOf(principal);
  // A task outside the key's schema is reported as missing: its existence is not the key's business.
  if (scope !== null && type!.schemaName !== scope) throw new TaskNotFound(id);
  return { row, type: type! };
}

export async function getTask(database: Database, principal: Principal, id: string): Promise<GetTaskResponse> {
  const { row, type } = await visibleTask(database.db, principal, id);
  return { task: taskRowToTask(row), type: typeRowToTaskType(type), meta: row.meta ?? null };
}

export async function getTaskHistory(database: Database, principal: Principal, id: string): Promise<HistoryEntry[]> {
  await visibleTask(database.db, principal, id);
  return (await repo.listHistory(database.db, id)).map(historyRowToEntry);
}

/**
 * Moves a task to `state` (null unsets it), checked against the task's own type (its version may
 * be older than the schema's latest). Setting the current state changes nothing and sends nothing.
 *
 * Without a webhook, or with an async one, the task row is locked for the transaction, so
 * concurrent changes queue and each sees the previous; an async delivery is written in the same
 * transaction. A sync webhook is sent before anything is written and outside any transaction (a
 * slow receiver must not hold a database connection): changes of one task queue in this process,
 * and if another instance changed the task meanwhile the change is refused as a conflict.
 */
export async function setTaskState(
  database: Database,
  principal: Principal,
  id: string,
  state: string | null,
  webhooks?: Webhooks,
): Promise<{ task: Task; changed: boolean }> {
  const run = async () => {
    const result = await database.db.transaction(async (tx) => {
      const seen = await visibleTask(tx, principal, id, true);
      const { row, type } = seen;
      refuseCancelled(row);
      const target = webhooks ? hookTargetOf(type) : null;
      // A sync webhook goes out after this transaction has let go of the row (see below).
      if (target?.mode === 'sync') return { sync: { seen, target, lastChange: await repo.lastStateChangeId(tx, id) } };
      const check = checkState(type, state);
      if (!check.ok) throw new StateNotInType(state!, type.name, statesOf(type));
      if (row.state === state) return { task: taskRowToTask(row), changed: false };
      const updated = await repo.updateTaskState(tx, id, state, check.resolved);
      const history = await repo.insertHistory(tx, { taskId: id, state, resolved: check.resolved, editorId: editorOf(principal)?.id ?? null, apiKeyId: apiKeyIdOf(principal) });
      const task = taskRowToTask(updated);
      await publishTaskEvent(tx, { kind: 'changed', id, schema: type.schemaName, state, resolved: check.resolved });
      if (target) {
        const payload = buildPayload({ task, type, previous: { state: row.state, resolved: row.resolved }, historyId: history.id, editor: editorOf(principal) });
        await webhooks!.enqueue(tx, target, payload, id);
      }
      return { task, changed: true, enqueued: target !== null };
    });
    if ('sync' in result && result.sync) return setStateWithSyncHook(database, principal, result.sync, state, webhooks!);
    if ('enqueued' in result && result.enqueued) webhooks!.wake();
    return { task: result.task, changed: result.changed };
  };
  return webhooks ? webhooks.taskLock.run(id, run) : run();
}

async function setStateWithSyncHook(
  database: Database,
  principal: Principal,
  { seen, target, lastChange }: { seen: Awaited<ReturnType<typeof visibleTask>>; target: HookTarget; lastChange: number },
  state: string | null,
  webhooks: Webhooks,
): Promise<{ task: Task; changed: boolean }> {
  const { row, type } = seen;
  const check = checkState(type, state);
  if (!check.ok) throw new StateNotInType(state!, type.name, statesOf(type));
  if (row.state === state) return { task: taskRowToTask(row), changed: false };

  const historyId = await repo.nextHistoryId(database.db);
  const now = new Date();
  const next = taskRowToTask({ ...row, state, resolved: check.resolved, updated: now });
  const payload = buildPayload({ task: next, type, previous: { state: row.state, resolved: row.resolved }, historyId, editor: editorOf(principal) });
  const delivery = await webhooks.deliverSync(target, payload, row.id);

  try {
    return await database.db.transaction(async (tx) => {
      const locked = await repo.lockTaskById(tx, row.id);
      // Changed meanwhile (by another instance, or cancelled)? A metadata update is no conflict.
      if (!locked || locked.state !== row.state || locked.cancelledAt || (await repo.lastStateChangeId(tx, row.id)) !== lastChange) {
        throw new AppError('task-changed', 'The task was changed by someone else while its webhook was being sent. Reload it and try again.');
      }
      const updated = await repo.updateTaskState(tx, row.id, state, check.resolved, now);
      await repo.insertHistory(tx, { id: historyId, taskId: row.id, state, resolved: check.resolved, editorId: editorOf(principal)?.id ?? null, apiKeyId: apiKeyIdOf(principal) });
      await publishTaskEvent(tx, { kind: 'changed', id: row.id, schema: type.schemaName, state, resolved: check.resolved });
      return { task: taskRowToTask(updated), changed: true };
    });
  } catch (err) {
    await delivery.changeFailed(err instanceof AppError ? err.detail : (err as Error).message).catch(() => {});
    throw err;
  }
}

/** A cancelled task is closed: its state stays as it was. */
export function refuseCancelled(row: { cancelledAt: Date | null; cancelReason: string | null }) {
  if (row.cancelledAt) {
    throw new AppError('task-cancelled', `The application server cancelled this task (${row.cancelReason ?? 'no reason given'}); its state can no longer change.`);
  }
}

export const apiKeyIdOf = (p: Principal) => (p.kind === 'api-key' ? p.id : null);
export const editorOf = (p: Principal) => (p.kind === 'person' ? { id: p.id, name: p.name } : null);

/** A page of tasks with the types they refer to. */
export async function listTasks(database: Database, principal: Principal, q: ListTasksQuery & { order?: 'oldest' | 'newest' }): Promise<ListTasksResponse> {
  const db = database.db;
  const empty: ListTasksResponse = { tasks: [], types: {}, next_cursor: null };
  const scope = scopeOf(principal);
  if (scope !== null && q.schema !== undefined && q.schema !== scope) return empty;
  const schemaName = q.schema ?? scope ?? undefined;
  let schemaId: number | undefined;
  if (schemaName !== undefined) {
    const schema = await schemasRepo.findSchemaByName(db, schemaName);
    if (!schema) return empty;
    schemaId = schema.id;
  }
  const ttypeIds = q.type !== undefined ? await schemasRepo.findTypeIdsByName(db, schemaId, q.type) : undefined;
  if (ttypeIds?.length === 0) return empty;

  const rows = await repo.listTasks(db, {
    resolved: q.resolved,
    schemaId,
    ttypeIds,
    state: q.state === undefined ? undefined : q.state === '' ? null : q.state,
    words: searchWords(q.q),
    afterSeq: q.cursor !== undefined ? Number(q.cursor) : undefined,
    order: q.order ?? 'oldest',
    limit: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  const typeRows = await findTypesByIdsCached(database, [...new Set(page.map((r) => r.ttypeId))]);
  const types: Record<string, TaskType> = {};
  for (const t of typeRows) types[String(t.id)] = typeRowToTaskType(t);
  return {
    tasks: page.map(taskRowToTask),
    types,
    next_cursor: rows.length > q.limit ? String(page[page.length - 1]!.seq) : null,
  };
}

const MAX_SEARCH_WORDS = 8;

/** The words of a search: split on spaces; JSON text escapes quotes and backslashes, so the words do too. */
function searchWords(q: string | undefined): string[] | undefined {
  const words = (q ?? '').split(/\s+/).filter((w) => w.length > 0);
  if (words.length > MAX_SEARCH_WORDS) throw new AppError('bad-request', `A search may have at most ${MAX_SEARCH_WORDS} words.`);
  return words.length > 0 ? words.map((w) => JSON.stringify(w).slice(1, -1)) : undefined;
}

/** The number of tasks the principal can see, unresolved by default (the inbox's badge). */
export async function countTasks(database: Database, principal: Principal, resolved: 'un' | 'all' | 'done'): Promise<number> {
  const scope = scopeOf(principal);
  if (scope === null) return repo.countTasks(database.db, resolved);
  const schema = await schemasRepo.findSchemaByName(database.db, scope);
  return schema ? repo.countTasks(database.db, resolved, schema.id) : 0;
}

/** Every task of a type, across all versions of its schema (for the CLI). */
export async function listTasksOfType(database: Database, schemaName: string, typeName: string): Promise<{ tasks: Task[]; types: TypeRow[] }> {
  const schema = await schemasRepo.findSchemaByName(database.db, schemaName);
  if (!schema) throw new SchemaNotFound(schemaName);
  const ttypeIds = await schemasRepo.findTypeIdsByName(database.db, schema.id, typeName);
  if (ttypeIds.length === 0) throw new AppError('task-type-not-found', `No version of schema '${schemaName}' has a task type '${typeName}'.`);
  const rows = await repo.listTasks(database.db, { resolved: 'all', schemaId: schema.id, ttypeIds, order: 'oldest', limit: 1_000_000 });
  return { tasks: rows.map(taskRowToTask), types: await schemasRepo.findTypesByIds(database.db, ttypeIds) };
}
