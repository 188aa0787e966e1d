import { z } from 'zod';
import { Meta, Timestamp } from './common.js';

/** The task object (SPEC §2.4). Fields are only ever added. */
export const Task = z.object({
  id: z.uuid(),
  created: Timestamp,
  updated: Timestamp,
  ttype_id: z.number().int(),
  state: z.string().nullable(),
  user_id: z.string().nullable(),
  resolved: z.boolean(),
  meta: Meta.nullable(),
  /**
   * Set when the application server cancelled the task (it no longer needs a person). A
   * cancelled task is resolved and keeps the state it had: cancellation is not a state, so it
   * can never collide with a schema's own state names.
   */
  cancelled: z.object({ at: Timestamp, reason: z.string() }).nullable(),
});
export type Task = z.infer<typeof Task>;

/** A task type as the inbox sees it (SPEC §2.3 `types`). */
export const TaskType = z.object({
  id: z.number().int(),
  name: z.string(),
  schema_name: z.string(),
  /** Version number of the schema the type belongs to (0, 1, …). */
  version: z.number().int(),
  semver: z.string(),
  pending_states: z.array(z.string()),
  resolved_states: z.array(z.string()),
});
export type TaskType = z.infer<typeof TaskType>;

export const HistoryEntry = z.object({
  id: z.number().int(),
  created: Timestamp,
  task_id: z.uuid().nullable(),
  state: z.string().nullable(),
  resolved: z.boolean(),
  editor_id: z.string().nullable(),
  /** The editor's display name, for the inbox. */
  editor_name: z.string().nullable(),
  assigned_id: z.string().nullable(),
  update_meta: Meta.nullable(),
  /** `created`, `state` (set or unset), `meta` (metadata merged: `update_meta`), `cancel` (with `reason`). */
  event: z.enum(['created', 'state', 'meta', 'cancel']),
  reason: z.string().nullable(),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

export const CreateTaskBody = z.object({
  schema_name: z.string().min(1),
  task: z.string().min(1),
  state: z.string().nullable().optional(),
  meta: Meta.nullable().optional(),
});
export type CreateTaskBody = z.infer<typeof CreateTaskBody>;

export const CreateTaskResponse = z.object({ task: Task, ttype: z.string() });
export type CreateTaskResponse = z.infer<typeof CreateTaskResponse>;

export const ListTasksQuery = z.object({
  /** `un`: unresolved only; `done`: resolved only; `all` (default). */
  resolved: z.enum(['un', 'all', 'done']).default('all').describe('`un`: unresolved only; `done`: resolved only; `all` (default)'),
  schema: z.string().min(1).optional().describe('Only tasks of this schema'),
  type: z.string().min(1).optional().describe('Only tasks of this task type (any version)'),
  state: z.string().optional().describe('Only tasks in this state; empty: tasks with no state'),
  /** Words that must all occur in the task's metadata (keys or values, any case). */
  q: z.string().max(200).optional().describe("Words (at most 8) that must all occur in the task's metadata, any case"),
  limit: z.coerce.number().int().min(1).max(200).default(50).describe('Page size'),
  cursor: z.string().regex(/^\d{1,15}$/, 'cursor must be the next_cursor of a previous page').optional().describe('The `next_cursor` of the previous page'),
});
export type ListTasksQuery = z.infer<typeof ListTasksQuery>;

export const ListTasksResponse = z.object({
  tasks: z.array(Task),
  types: z.record(z.string(), TaskType),
  /** Pass as `cursor` to get the next page; null on the last page. */
  next_cursor: z.string().nullable(),
});
export type ListTasksResponse = z.infer<typeof ListTasksResponse>;

export const TaskIdParams = z.object({ id: z.uuid({ message: 'the task id must be a UUID' }) });

export const GetTaskResponse = z.object({ task: Task, type: TaskType, meta: Meta.nullable() });
export type GetTaskResponse = z.infer<typeof GetTaskResponse>;

export const HistoryResponse = z.object({ history: z.array(HistoryEntry) });

export const SetStateQuery = z.object({
  /** Empty or absent unsets the state. */
  state: z.string().optional(),
});
export const TaskResponse = z.object({ task: Task });

export const CountTasksQuery = z.object({ resolved: z.enum(['un', 'all', 'done']).default('un').describe('`un` (default), `all` or `done`') });
export const CountTasksResponse = z.object({ count: z.number().int() });

/** `?wait=` long poll on GET /api/v1/tasks/{id}. */
export const WaitQuery = z.object({
  /** Seconds to wait, at most 60; without it the task is answered at once. */
  wait: z.coerce.number().min(0).max(60, 'wait is at most 60 seconds').optional().describe('Seconds to wait (at most 60) for the task to be resolved (or, with `wait_for=change`, for its state to change); the answer is the task as it is then'),
  /** `resolved` (default): until the task is resolved; `change`: until its state changes. */
  wait_for: z.enum(['resolved', 'change']).default('resolved').describe('`resolved` (default) or `change`'),
});

/** PATCH /api/v1/tasks/{id}: metadata merged into the task's; a key set to null is removed. */
export const UpdateTaskBody = z.object({ meta: Meta });
export type UpdateTaskBody = z.infer<typeof UpdateTaskBody>;

export const CancelTaskBody = z.object({ reason: z.string().trim().min(1, 'give a reason').max(1000) });
