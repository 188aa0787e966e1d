import type { Problem } from '../contract/index.js';
import type { ErrorCode } from '../errors.js';
import type { TaskDetails } from './types.js';

const PROBLEM_PREFIX = 'urn:task-inbox:problem:';

/**
 * The server answered with an error. `code` is the problem type after `urn:task-inbox:problem:`
 * (see docs/api.md and docs/integration.md for what to do about each), or `http-<status>` when
 * the answer was not a task-inbox problem document (e.g. a proxy's 502 page).
 */
export class TaskInboxError extends Error {
  override readonly name = 'TaskInboxError';
  /** The HTTP status. */
  readonly status: number;
  /** `task-not-found`, `webhook-refused`, …; `http-<status>` for answers that are not problem documents. */
  readonly code: ErrorCode | `http-${number}`;
  /** The server's explanation (the problem's `detail`), or the start of a non-problem answer. */
  readonly detail: string;
  /** The whole problem document, when the answer was one. */
  readonly problem: Problem | null;
  /** With `webhook-refused` (502): what the application server answered (`status`, `body`, `error`). */
  readonly receiver: NonNullable<Problem['receiver']> | null;
  /** The answer's `Retry-After`, in seconds, when it had one. */
  readonly retryAfterSeconds: number | null;
  /** The request: `PATCH /api/v1/tasks/…/state`. */
  readonly request: string;

  constructor(opts: { status: number; problem: Problem | null; text: string; retryAfterSeconds: number | null; request: string }) {
    const problem = opts.problem;
    const code = (problem?.type.startsWith(PROBLEM_PREFIX) ? problem.type.slice(PROBLEM_PREFIX.length) : `http-${opts.status}`) as TaskInboxError['code'];
    const detail = problem?.detail ?? (opts.text.trim().slice(0, 500) || `HTTP ${opts.status}`);
    super(`${opts.request} → ${opts.status} ${code}: ${detail}`);
    this.status = opts.status;
    this.code = code;
    this.detail = detail;
    this.problem = problem;
    this.receiver = problem?.receiver ?? null;
    this.retryAfterSeconds = opts.retryAfterSeconds;
    this.request = opts.request;
  }
}

/**
 * No answer: the server could not be reached, the connection broke, or it did not answer within
 * the client's `timeoutMs` (`timedOut: true`). Whether the request had an effect is unknown. Safe
 * to repeat: reads; `createTask` with the same idempotency key; `setState` (setting the state a task
 * already has changes nothing and sends no webhook), `updateTask` (the same merge again changes
 * nothing) and `cancelTask` (cancelling again changes nothing). `createTask` without a key may
 * have created the task: look for it (e.g. `listTasks({ q })`) before posting again.
 */
export class TaskInboxConnectionError extends Error {
  override readonly name = 'TaskInboxConnectionError';
  constructor(
    message: string,
    /** True when the request was given up after `timeoutMs`. */
    readonly timedOut: boolean,
    /** The request: `GET /api/v1/tasks/…`. */
    readonly request: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `waitForTask` ran out of time before the task was resolved (or changed). `task` is the last one seen. */
export class TaskWaitTimeoutError extends Error {
  override readonly name = 'TaskWaitTimeoutError';
  constructor(
    readonly taskId: string,
    /** The `timeout` given, in milliseconds. */
    readonly timeoutMs: number,
    /** The task as last seen (undefined when not even one answer arrived). */
    readonly task: TaskDetails | undefined,
    until: 'resolved' | 'change',
  ) {
    super(`Task ${taskId} was not ${until === 'resolved' ? 'resolved' : 'changed'} within ${timeoutMs} ms.`);
  }
}

/** `verifyWebhook` refused a request: it did not come from task-inbox, was altered, or is too old. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
  constructor(
    /** Why, as a stable word: answer 401 for all of them except `bad-body` (400). */
    readonly reason: 'missing-header' | 'bad-timestamp' | 'timestamp-too-old' | 'timestamp-in-future' | 'bad-signature' | 'wrong-key' | 'bad-body',
    message: string,
  ) {
    super(message);
  }
}
