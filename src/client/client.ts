import type { CreateTaskResponse, HistoryEntry, Meta, Problem, Task } from '../contract/index.js';
import { TaskInboxConnectionError, TaskInboxError, TaskWaitTimeoutError } from './errors.js';
import type { ClientOptions, CreatedTask, CreateTaskInput, CreateTaskOptions, ListTasksFilters, TaskDetails, TaskPage, WaitOptions } from './types.js';

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_POLL_SECONDS = 60;
/** Under the 60 s idle timeout of common proxies (nginx's proxy_read_timeout). */
const DEFAULT_POLL_SECONDS = 55;

type Query = Record<string, string | number | undefined>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Overrides the client's timeoutMs for this request. */
  timeoutMs?: number;
}

interface Answer<T> {
  data: T;
  headers: Headers;
}

/** The task-inbox client: see createClient. */
export interface TaskInboxClient {
  /**
   * `POST /api/v1/tasks/`: creates a task. With `idempotencyKey`, retries are safe and are made
   * for you after no answer, `409 idempotency-in-flight`, 429 and 5xx (see `retries`).
   */
  createTask(input: CreateTaskInput, opts?: CreateTaskOptions): Promise<CreatedTask>;
  /** `GET /api/v1/tasks/{id}`: the task with its type and metadata. 404 `task-not-found`. */
  getTask(id: string, opts?: { signal?: AbortSignal }): Promise<TaskDetails>;
  /** `GET /api/v1/tasks/{id}/history`: the task's history, oldest first. */
  getHistory(id: string, opts?: { signal?: AbortSignal }): Promise<HistoryEntry[]>;
  /** Every task that matches, across pages, in order, each once. Fetches the next page only when asked for it. */
  listTasks(filters?: ListTasksFilters): AsyncIterableIterator<Task>;
  /** The same, page by page (`tasks`, `types`, `next_cursor`). */
  listTaskPages(filters?: ListTasksFilters): AsyncIterableIterator<TaskPage>;
  /** One page: `GET /api/v1/tasks/?…` (pass `cursor: page.next_cursor` for the next). */
  listTasksPage(filters?: ListTasksFilters): Promise<TaskPage>;
  /**
   * Waits until the task is resolved (or, `until: 'change'`, its state changes) and resolves with
   * it, by repeating the server's long poll (55 s each by default, ≤ 60). Rejects with `TaskWaitTimeoutError`
   * (carrying the last task seen) after `timeout` ms, with `TaskInboxError` on an error answer
   * such as 404, and with the signal's reason when aborted. Brief network failures and 5xx
   * answers are retried until the timeout.
   */
  waitForTask(id: string, opts: WaitOptions): Promise<TaskDetails>;
  /** `PATCH /api/v1/tasks/{id}`: merges `meta` into the task's metadata; a key set to null is removed. */
  updateTask(id: string, meta: Meta, opts?: { signal?: AbortSignal }): Promise<Task>;
  /**
   * `POST /api/v1/tasks/{id}/cancel`: the task no longer needs a person. It becomes resolved with
   * `cancelled: {at, reason}`, and a `task.cancelled` webhook is sent. Cancelling again changes
   * nothing; a task a person already resolved gives 409 `task-resolved`.
   */
  cancelTask(id: string, reason: string, opts?: { signal?: AbortSignal }): Promise<Task>;
  /**
   * `PATCH /api/v1/tasks/{id}/state`: moves the task to `state` (`null` unsets it). With a sync
   * webhook the application server may refuse: 502 `webhook-refused` with `receiver`.
   */
  setState(id: string, state: string | null, opts?: { signal?: AbortSignal }): Promise<Task>;
}

/**
 * A typed client for task-inbox's integration API (the `api-key` routes). Needs only `fetch`
 * (Node 20+, browsers, Deno, Bun).
 *
 * ```ts
 * import { createClient } from 'task-inbox/client';
 * const inbox = createClient({ baseUrl: 'http://127.0.0.1:8080', apiKey: process.env.TI_API_KEY! });
 * const { task } = await inbox.createTask({ schema: 'acme:moderation', type: 'flag-content', meta: { post: 42 } }, { idempotencyKey: 'flag-post-42' });
 * const decided = await inbox.waitForTask(task.id, { timeout: 10 * 60_000 });
 * ```
 */
export function createClient(options: ClientOptions): TaskInboxClient {
  const base = String(options.baseUrl).replace(/\/+$/, '');
  if (!/^https?:\/\//i.test(base)) throw new TypeError(`baseUrl must be an http(s) URL, not '${base}'`);
  if (!options.apiKey) throw new TypeError('apiKey is required (create one with: task-inbox api_key)');
  const doFetch = options.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw new TypeError('no fetch: use Node.js 20 or newer, or pass options.fetch');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<Answer<T>> {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) search.set(k, String(v));
    const qs = search.toString();
    const url = `${base}${path}${qs ? `?${qs}` : ''}`;
    const what = `${method} ${path}`;
    const limit = opts.timeoutMs ?? timeoutMs;
    const timer = AbortSignal.timeout(limit);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timer]) : timer;
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json', ...options.headers, ...opts.headers, 'api-key': options.apiKey };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';

    let res: Response;
    let text: string;
    try {
      res = await doFetch(url, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal, redirect: 'manual' });
      text = await res.text();
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (timer.aborted) throw new TaskInboxConnectionError(`${what}: no answer from ${base} within ${limit} ms`, true, what, { cause: err });
      const cause = (err as { cause?: { message?: string; code?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new TaskInboxConnectionError(`${what}: could not reach ${base} (${why})`, false, what, { cause: err });
    }
    if (!res.ok) {
      let problem: Problem | null = null;
      if (/json/i.test(res.headers.get('content-type') ?? '')) {
        try {
          const parsed = JSON.parse(text) as Partial<Problem> | null;
          if (parsed && typeof parsed === 'object' && typeof parsed.type === 'string') problem = parsed as Problem;
        } catch {
          // not JSON after all: keep the text
        }
      }
      throw new TaskInboxError({ status: res.status, problem, text, retryAfterSeconds: parseRetryAfter(res.headers.get('retry-after')), request: what });
    }
    try {
      return { data: JSON.parse(text) as T, headers: res.headers };
    } catch {
      throw new TaskInboxError({ status: res.status, problem: null, text: `the answer is not JSON: ${text.slice(0, 200)}`, retryAfterSeconds: null, request: what });
    }
  }

  const taskPath = (id: string) => `/api/v1/tasks/${encodeURIComponent(id)}`;

  function listQuery(f: ListTasksFilters): Query {
    return {
      resolved: f.resolved,
      schema: f.schema,
      type: f.type,
      state: f.state === null ? '' : f.state,
      q: f.q,
      order: f.order,
      limit: f.limit,
      cursor: f.cursor,
    };
  }

  const client: TaskInboxClient = {
    async createTask(input, opts = {}) {
      const body = { schema_name: input.schema, task: input.type, state: input.state, meta: input.meta };
      const key = opts.idempotencyKey;
      const retries = key === undefined ? 0 : Math.max(0, opts.retries ?? 3);
      for (let attempt = 0; ; attempt++) {
        try {
          const { data, headers } = await request<CreateTaskResponse>('POST', '/api/v1/tasks/', {
            body,
            headers: key === undefined ? undefined : { 'idempotency-key': key },
            signal: opts.signal,
          });
          return { task: data.task, ttype: data.ttype, replayed: headers.get('idempotent-replayed') === 'true' };
        } catch (err) {
          if (attempt >= retries || !isTransient(err)) throw err;
          await sleep(backoffMs(attempt, err), opts.signal);
        }
      }
    },

    async getTask(id, opts = {}) {
      return (await request<TaskDetails>('GET', taskPath(id), { signal: opts.signal })).data;
    },

    async getHistory(id, opts = {}) {
      return (await request<{ history: HistoryEntry[] }>('GET', `${taskPath(id)}/history`, { signal: opts.signal })).data.history;
    },

    async listTasksPage(filters = {}) {
      return (await request<TaskPage>('GET', '/api/v1/tasks/', { query: listQuery(filters), signal: filters.signal })).data;
    },

    async *listTaskPages(filters = {}) {
      let cursor = filters.cursor;
      for (;;) {
        const page = await client.listTasksPage({ ...filters, cursor });
        yield page;
        if (page.next_cursor === null || page.tasks.length === 0) return;
        cursor = page.next_cursor;
      }
    },

    async *listTasks(filters = {}) {
      for await (const page of client.listTaskPages(filters)) yield* page.tasks;
    },

    async waitForTask(id, opts) {
      const until = opts.until ?? 'resolved';
      const pollSeconds = Math.min(MAX_POLL_SECONDS, Math.max(1, opts.pollSeconds ?? DEFAULT_POLL_SECONDS));
      if (!(opts.timeout >= 0)) throw new TypeError('waitForTask: timeout must be a number of milliseconds (or Infinity)');
      const deadline = Date.now() + opts.timeout;
      const signal = opts.signal;
      // With `change`, what the task is compared with: given, or as first read. That first read is
      // a plain GET: the server's `wait_for=change` compares with the task as *it* first reads it,
      // so a poll alone would miss a change made before it began.
      let from = opts.from ? { state: opts.from.state, resolved: opts.from.resolved } : undefined;
      let looked = until === 'resolved';
      const done = (t: TaskDetails) => (until === 'resolved' ? t.task.resolved : t.task.state !== from!.state || t.task.resolved !== from!.resolved);
      let last: TaskDetails | undefined;
      let failures = 0;
      for (;;) {
        signal?.throwIfAborted();
        // `wait` in tenths of a second; 0 (under 100 ms left) answers at once.
        const wait = looked ? Math.min(pollSeconds, Math.floor(Math.max(0, deadline - Date.now()) / 100) / 10) : 0;
        try {
          const { data } = await request<TaskDetails>('GET', taskPath(id), {
            query: wait > 0 ? { wait, wait_for: until } : undefined,
            signal,
            timeoutMs: timeoutMs + wait * 1000,
          });
          failures = 0;
          last = data;
          looked = true;
          from ??= { state: data.task.state, resolved: data.task.resolved };
          if (done(data)) return data;
        } catch (err) {
          // Errors the server means (404, 403, …) end the wait; lost connections and 5xx are retried.
          if (signal?.aborted || !isTransient(err) || Date.now() >= deadline) throw err;
          await sleep(Math.min(backoffMs(failures++, err), Math.max(0, deadline - Date.now())), signal);
          continue;
        }
        if (Date.now() >= deadline) throw new TaskWaitTimeoutError(id, opts.timeout, last, until);
      }
    },

    async updateTask(id, meta, opts = {}) {
      return (await request<{ task: Task }>('PATCH', taskPath(id), { body: { meta }, signal: opts.signal })).data.task;
    },

    async cancelTask(id, reason, opts = {}) {
      return (await request<{ task: Task }>('POST', `${taskPath(id)}/cancel`, { body: { reason }, signal: opts.signal })).data.task;
    },

    async setState(id, state, opts = {}) {
      return (await request<{ task: Task }>('PATCH', `${taskPath(id)}/state`, { query: { state: state ?? '' }, signal: opts.signal })).data.task;
    },
  };
  return client;
}

/** Worth trying again (with the same idempotency key, for a create): no answer, in flight, throttled, or a server error. */
function isTransient(err: unknown): boolean {
  if (err instanceof TaskInboxConnectionError) return true;
  if (!(err instanceof TaskInboxError)) return false;
  if (err.code === 'idempotency-in-flight' || err.status === 429) return true;
  // 502 webhook-refused is the application server's answer, not a glitch: it is not retried.
  return err.status >= 500 && err.code !== 'webhook-refused' && err.code !== 'webhook-key-missing' && err.code !== 'no-api-keys';
}

/** 0.5 s, 1 s, 2 s, 4 s… (at most 10 s, ±20 %), or what `Retry-After` asks for (at most 60 s). */
function backoffMs(attempt: number, err: unknown): number {
  const asked = err instanceof TaskInboxError ? err.retryAfterSeconds : null;
  if (asked !== null) return Math.min(asked, 60) * 1000;
  return Math.round(Math.min(10_000, 500 * 2 ** attempt) * (0.8 + 0.4 * Math.random()));
}

function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
