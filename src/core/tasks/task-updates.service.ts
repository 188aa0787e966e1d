import type { Meta, Task } from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { publishTaskEvent } from '../events/task-events.js';
import { buildPayload, hookTargetOf, type Webhooks } from '../webhooks/index.js';
import * as repo from './tasks.repo.js';
import { stableStringify, taskRowToTask, type Principal } from './tasks.js';
import { apiKeyIdOf, editorOf, visibleTask } from './tasks.service.js';

/*
 * Changes an application server makes to its own tasks while they wait for a person: merging
 * metadata, and cancelling a task that no longer needs anyone.
 */

/**
 * Merges `patch` into the task's metadata (a key set to null is removed), recorded in the history
 * as a `meta` entry with the patch. A patch that changes nothing writes nothing.
 */
export async function updateTaskMeta(database: Database, principal: Principal, id: string, patch: Meta): Promise<{ task: Task; changed: boolean }> {
  return database.db.transaction(async (tx) => {
    const { row, type } = await visibleTask(tx, principal, id, true);
    const before = row.meta ?? {};
    const changes = Object.entries(patch).filter(([key, value]) => (value === null ? Object.hasOwn(before, key) : stableStringify(before[key]) !== stableStringify(value)));
    if (changes.length === 0) return { task: taskRowToTask(row), changed: false };
    const merged: Meta = { ...before };
    for (const [key, value] of changes) {
      if (value === null) delete merged[key];
      else merged[key] = value;
    }
    const updated = await repo.updateTask(tx, id, { meta: Object.keys(merged).length > 0 ? merged : null });
    await repo.insertHistory(tx, {
      taskId: id,
      state: row.state,
      resolved: row.resolved,
      editorId: editorOf(principal)?.id ?? null,
      apiKeyId: apiKeyIdOf(principal),
      updateMeta: patch,
      event: 'meta',
    });
    await publishTaskEvent(tx, { kind: 'changed', id, schema: type.schemaName, state: row.state, resolved: row.resolved });
    return { task: taskRowToTask(updated), changed: true };
  });
}

/**
 * Cancels a task: it becomes resolved (leaving the inbox), keeps its state, and carries the
 * reason. Its webhook goes out as a `task.cancelled` event through the outbox — also for sync
 * schemas: the application server asked for it, so there is nothing for it to refuse. Cancelling
 * a cancelled task changes nothing; a task a person already resolved cannot be cancelled.
 */
export async function cancelTask(database: Database, principal: Principal, id: string, reason: string, webhooks?: Webhooks): Promise<{ task: Task; changed: boolean }> {
  const result = await database.db.transaction(async (tx) => {
    const { row, type } = await visibleTask(tx, principal, id, true);
    if (row.cancelledAt) return { task: taskRowToTask(row), changed: false, enqueued: false };
    if (row.resolved) {
      throw new AppError('task-resolved', `The task is already resolved (state '${row.state}'): there is nothing left to cancel.`);
    }
    const updated = await repo.updateTask(tx, id, { resolved: true, cancelledAt: new Date(), cancelReason: reason });
    const history = await repo.insertHistory(tx, {
      taskId: id,
      state: row.state,
      resolved: true,
      editorId: editorOf(principal)?.id ?? null,
      apiKeyId: apiKeyIdOf(principal),
      event: 'cancel',
      reason,
    });
    const task = taskRowToTask(updated);
    await publishTaskEvent(tx, { kind: 'changed', id, schema: type.schemaName, state: row.state, resolved: true });
    const target = webhooks ? hookTargetOf(type) : null;
    if (target) {
      const payload = buildPayload({ task, type, previous: { state: row.state, resolved: row.resolved }, historyId: history.id, editor: editorOf(principal), event: 'task.cancelled' });
      await webhooks!.enqueue(tx, target, payload, id); // the outbox, whatever the schema's hook_mode
    }
    return { task, changed: true, enqueued: target !== null };
  });
  if (result.enqueued) webhooks!.wake();
  return { task: result.task, changed: result.changed };
}
