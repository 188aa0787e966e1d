/*
 * The client's types. Wire shapes come from src/contract (the zod schemas the server validates
 * and serialises with), imported as types only: they cannot drift from the server, and nothing
 * of zod or the server is loaded at run time.
 */
import type {
  CreateTaskResponse,
  GetTaskResponse,
  HistoryEntry,
  ListTasksResponse,
  Meta,
  Problem,
  Task,
  TaskType,
  WebhookPayload,
} from '../contract/index.js';

export type { HistoryEntry, Meta, Problem, Task, TaskType, WebhookPayload };

/** `GET /api/v1/tasks/{id}`: the task, its type and its metadata. */
export type TaskDetails = GetTaskResponse;

/** One page of `GET /api/v1/tasks/`: `tasks`, the `types` they refer to (by `ttype_id`), `next_cursor`. */
export type TaskPage = ListTasksResponse;

export interface ClientOptions {
  /** Where task-inbox is, e.g. `http://127.0.0.1:8080` (a path prefix behind a proxy is kept). */
  baseUrl: string | URL;
  /** An API key (`task-inbox api_key`), sent in the `api-key` header. */
  apiKey: string;
  /** A `fetch` to use instead of the global one (tests, proxies, instrumentation). */
  fetch?: typeof globalThis.fetch;
  /**
   * How long one request may take before it is given up, in milliseconds (default 30 000).
   * A long poll gets its wait on top of this. Changing the state of a task with a sync webhook
   * takes as long as the application server needs (up to the server's `WEBHOOK_TIMEOUT`).
   */
  timeoutMs?: number;
  /** Extra headers on every request (e.g. `user-agent`). */
  headers?: Record<string, string>;
}

export interface CreateTaskInput {
  /** The schema's name, e.g. `acme:moderation`. The type is looked up in its latest version. */
  schema: string;
  /** The task type's name, e.g. `flag-content`. */
  type: string;
  /** An initial state (one of the type's states), or none. */
  state?: string | null;
  /** Metadata shown to the person, and sent back in every webhook. */
  meta?: Meta | null;
}

export interface CreateTaskOptions {
  /**
   * Makes retries safe: the same key with the same body gets the first answer again (same task),
   * for 24 hours. Derive it from what the task is about (`refund-${orderId}`) or store it before
   * the first try, and reuse it for every retry of that one task. 1–255 visible ASCII characters.
   */
  idempotencyKey?: string;
  /**
   * With an `idempotencyKey` only: how many times to retry after no answer, a `409
   * idempotency-in-flight`, a 429 or a 5xx (default 3; waits 0.5 s, 1 s, 2 s…, or as
   * `Retry-After` says). Without a key nothing is retried: a retry could create a second task.
   */
  retries?: number;
  signal?: AbortSignal;
}

/** What `createTask` answers. */
export interface CreatedTask {
  task: Task;
  /** The task type's name. */
  ttype: CreateTaskResponse['ttype'];
  /** True when the server answered from memory: an earlier request with the same idempotency key created the task. */
  replayed: boolean;
}

export interface ListTasksFilters {
  /** `un`: unresolved only; `done`: resolved only; `all` (default). */
  resolved?: 'un' | 'all' | 'done';
  /** Schema name. */
  schema?: string;
  /** Task type name (any version). */
  type?: string;
  /** Exact state; `null` (or `''`): tasks with no state. */
  state?: string | null;
  /** Words that must all occur in the metadata (keys or values, any case). */
  q?: string;
  /** `oldest` (default) or `newest` first. */
  order?: 'oldest' | 'newest';
  /** Page size, 1–200 (server default 50). */
  limit?: number;
  /** Start after this `next_cursor` (of an earlier page). */
  cursor?: string;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /**
   * How long to wait in all, in **milliseconds** (`Infinity`: until it happens). When it runs out,
   * `waitForTask` rejects with `TaskWaitTimeoutError`, whose `task` is the task as last seen.
   */
  timeout: number;
  /** `resolved` (default): until the task is resolved (a cancelled task is resolved too); `change`: until its state or resolved mark differs from what it was when the wait began. */
  until?: 'resolved' | 'change';
  /** Ends the wait: it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Longest single long poll, in seconds (1–60, default 55: under the 60 s idle timeout of common proxies). Lower it when a proxy cuts quiet requests sooner. */
  pollSeconds?: number;
  /** With `until: 'change'`: the task as you know it, to wait for a change from *that* (default: as read when the wait begins). */
  from?: Pick<Task, 'state' | 'resolved'>;
}
