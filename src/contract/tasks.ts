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
  resolved: z.enum(['un', 'all', 'done']).default('all'),
  schema: z.string().min(1).optional(),
  type: z.string().min(1).optional(),
  state: z.string().optional(),
  /** Words that must all occur in the task's metadata (keys or values, any case). */
  q: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().regex(/^\d{1,15}$/, 'cursor must be the next_cursor of a previous page').optional(),
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

export const CountTasksQuery = z.object({ resolved: z.enum(['un', 'all', 'done']).default('un') });
export const CountTasksResponse = z.object({ count: z.number().int() });
