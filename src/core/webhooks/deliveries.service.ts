import type { ListDeliveriesQuery, WebhookDelivery } from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import { AppError, SchemaNotFound } from '../../errors.js';
import { schemasRepo } from '../schemas/index.js';
import type { Principal } from '../tasks/tasks.js';
import { scopeOf } from '../tasks/tasks.js';
import * as repo from './deliveries.repo.js';
import { cliActor, recordAudit, type Actor } from '../audit/audit.js';

function deliveryRowToApi(row: repo.DeliveryRow, schemaName: string): WebhookDelivery {
  return {
    id: row.id,
    webhook_id: row.webhookId,
    mode: row.mode,
    task_id: row.taskId,
    history_id: row.historyId,
    schema_name: schemaName,
    url: row.url,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? row.nextAttemptAt.toISOString() : null,
    last_status: row.lastStatus,
    last_error: row.lastError,
    created: row.created.toISOString(),
    delivered_at: row.deliveredAt?.toISOString() ?? null,
  };
}

function attemptRowToApi(a: repo.AttemptRow) {
  return { id: a.id, created: a.created.toISOString(), status_code: a.statusCode, latency_ms: a.latencyMs, response_body: a.responseBody, error: a.error };
}

/** The schema id a listing is limited to: the key's schema and the filter must agree. */
async function schemaFilter(database: Database, principal: Principal, schema?: string): Promise<number | undefined | null> {
  const scope = scopeOf(principal);
  if (scope !== null && schema !== undefined && schema !== scope) return null;
  const name = schema ?? scope ?? undefined;
  if (name === undefined) return undefined;
  const row = await schemasRepo.findSchemaByName(database.db, name);
  return row ? row.id : null;
}

/** The delivery log, newest first. */
export async function listDeliveries(database: Database, principal: Principal, q: ListDeliveriesQuery) {
  const schemaId = await schemaFilter(database, principal, q.schema);
  if (schemaId === null) return { deliveries: [], next_cursor: null };
  const rows = await repo.listDeliveries(database.db, {
    taskId: q.task,
    schemaId,
    status: q.status,
    beforeId: q.cursor !== undefined ? Number(q.cursor) : undefined,
    limit: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  return {
    deliveries: page.map((r) => deliveryRowToApi(r.delivery, r.schemaName)),
    next_cursor: rows.length > q.limit ? String(page[page.length - 1]!.delivery.id) : null,
  };
}

async function visibleDelivery(database: Database, principal: Principal, id: number) {
  const found = await repo.findDelivery(database.db, id);
  const scope = scopeOf(principal);
  if (!found || (scope !== null && found.schemaName !== scope)) throw new AppError('not-found', `No webhook delivery with id ${id}.`);
  return found;
}

/** One delivery with every attempt and the exact payload sent. */
export async function getDelivery(database: Database, principal: Principal, id: number) {
  const found = await visibleDelivery(database, principal, id);
  const attempts = await repo.listAttempts(database.db, id);
  return {
    delivery: deliveryRowToApi(found.delivery, found.schemaName),
    attempts: attempts.map(attemptRowToApi),
    payload: JSON.parse(found.delivery.payload) as unknown,
  };
}

/** Every webhook delivery of one task (oldest first), each with its attempts: the task view's status. */
export async function listTaskDeliveries(database: Database, principal: Principal, taskId: string) {
  const { deliveries } = await listDeliveries(database, principal, { task: taskId, limit: 200 });
  const attempts = await repo.listAttemptsOf(database.db, deliveries.map((d) => d.id));
  return deliveries.reverse().map((d) => ({
    ...d,
    attempts: attempts.filter((a) => a.deliveryId === d.id).map(attemptRowToApi),
  }));
}

/** Sends an async delivery again (same webhook-id, so receivers can tell it is the same event). */
export async function redeliver(database: Database, principal: Principal, id: number, actor: Actor = cliActor) {
  const found = await visibleDelivery(database, principal, id);
  if (found.delivery.mode !== 'async') {
    throw new AppError('bad-request', 'A sync delivery cannot be sent again: its change was made (or refused) while the person waited. Make the change again instead.');
  }
  await repo.requeueDelivery(database.db, id);
  await recordAudit(database.db, actor, 'delivery.redeliver', String(id), { webhook_id: found.delivery.webhookId });
  return getDelivery(database, principal, id);
}

/** Sends again every failed, dead or paused async delivery created since `since`. */
export async function redeliverFailedSince(database: Database, principal: Principal, since: Date, schema?: string, actor: Actor = cliActor): Promise<number> {
  if (schema !== undefined && !(await schemasRepo.findSchemaByName(database.db, schema))) throw new SchemaNotFound(schema);
  const schemaId = await schemaFilter(database, principal, schema);
  if (schemaId === null) return 0;
  const n = await repo.requeueFailedSince(database.db, since, schemaId);
  await recordAudit(database.db, actor, 'delivery.redeliver-since', schema ?? null, { since: since.toISOString(), count: n });
  return n;
}

export async function listDisabledEndpoints(database: Database) {
  return (await repo.listDisabledEndpoints(database.db)).map((e) => ({ url: e.url, disabled: e.created.toISOString(), reason: e.reason }));
}

/** Lets deliveries go to an endpoint that answered 410 again; its paused deliveries resume. */
export async function enableEndpoint(database: Database, url: string, actor: Actor = cliActor) {
  if (!(await repo.enableEndpoint(database.db, url))) throw new AppError('not-found', `The endpoint ${url} is not disabled.`);
  await recordAudit(database.db, actor, 'endpoint.enable', url);
}
