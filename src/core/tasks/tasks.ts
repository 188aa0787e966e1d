import type { HistoryEntry, Task } from '../../contract/index.js';
import type { ApiKeyPrincipal } from '../keys/index.js';
import type { PersonPrincipal } from '../people/people.js';
import type { taskHistory, tasks } from '../../db/tables.js';

/** Who acts: an application server's API key, a signed-in person, or an operator at the command line. */
export type Principal = ApiKeyPrincipal | PersonPrincipal | { kind: 'cli' };

/** The schema a principal is limited to, if any. */
export const scopeOf = (p: Principal): string | null => (p.kind === 'api-key' ? p.schemaName : null);

export function taskRowToTask(row: Omit<typeof tasks.$inferSelect, 'seq'>): Task {
  return {
    id: row.id,
    created: row.created.toISOString(),
    updated: row.updated.toISOString(),
    ttype_id: row.ttypeId,
    state: row.state,
    user_id: row.userId,
    resolved: row.resolved,
    meta: row.meta ?? null,
    cancelled: row.cancelledAt ? { at: row.cancelledAt.toISOString(), reason: row.cancelReason ?? '' } : null,
  };
}

export function historyRowToEntry(row: typeof taskHistory.$inferSelect & { editorName?: string | null }): HistoryEntry {
  return {
    id: row.id,
    created: row.created.toISOString(),
    task_id: row.taskId,
    state: row.state,
    resolved: row.resolved,
    editor_id: row.editorId,
    editor_name: row.editorName ?? null,
    assigned_id: row.assignedId,
    update_meta: row.updateMeta ?? null,
    event: row.event,
    reason: row.reason,
  };
}

export { stableStringify } from '../stable-json.js';
