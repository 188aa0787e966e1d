import type { TaskType } from '../../contract/index.js';

/** A task type row joined with its schema and version, as repos return it. */
export interface TypeRow {
  id: number;
  name: string;
  pendingStates: string[];
  resolvedStates: string[];
  schemaId: number;
  schemaName: string;
  version: number;
  semver: string;
}

export function typeRowToTaskType(row: TypeRow): TaskType {
  return {
    id: row.id,
    name: row.name,
    schema_name: row.schemaName,
    version: row.version,
    semver: row.semver,
    pending_states: row.pendingStates,
    resolved_states: row.resolvedStates,
  };
}

/** Every state of a type, pending first. */
export const statesOf = (t: Pick<TypeRow, 'pendingStates' | 'resolvedStates'>) => [...t.pendingStates, ...t.resolvedStates];

/** Whether `state` (null = unset) is allowed for the type, and whether it resolves the task. */
export function checkState(t: Pick<TypeRow, 'pendingStates' | 'resolvedStates'>, state: string | null): { ok: boolean; resolved: boolean } {
  if (state === null) return { ok: true, resolved: false };
  if (t.resolvedStates.includes(state)) return { ok: true, resolved: true };
  return { ok: t.pendingStates.includes(state), resolved: false };
}
