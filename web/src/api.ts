import type { z } from 'zod';
import type * as C from '../../src/contract/index.js';

/*
 * Typed calls to the task-inbox API. Every type comes from the server's own contract
 * (src/contract), so the inbox and the server cannot disagree on a shape unnoticed.
 * The browser session cookie does the authentication; no token is handled here.
 */

export type Task = z.infer<typeof C.Task>;
export type TaskType = z.infer<typeof C.TaskType>;
export type HistoryEntry = z.infer<typeof C.HistoryEntry>;
export type Problem = z.infer<typeof C.Problem>;
export type User = z.infer<typeof C.User>;
export type Session = z.infer<typeof C.Session>;
export type ListTasksResponse = z.infer<typeof C.ListTasksResponse>;
export type GetTaskResponse = z.infer<typeof C.GetTaskResponse>;
export type TaskDelivery = z.infer<typeof C.TaskDeliveriesResponse>['deliveries'][number];
export type WebhookDelivery = z.infer<typeof C.WebhookDelivery>;
export type DeliveryDetail = z.infer<typeof C.DeliveryResponse>;
export type SchemaSummary = z.infer<typeof C.SchemaSummary>;
export type InstallResult = z.infer<typeof C.InstallResult>;
export type RemoveResult = z.infer<typeof C.RemoveResult>;
export type ApiKeyInfo = z.infer<typeof C.ApiKeyInfo>;
export type WebhookKeyInfo = z.infer<typeof C.WebhookKeyInfo>;
export type AuditEvent = z.infer<typeof C.AuditEvent>;
export type DeliveryStatus = z.infer<typeof C.DeliveryStatus>;
export type NotificationSettings = z.infer<typeof C.NotificationSettings>;
export type NotificationChannel = z.infer<typeof C.NotificationChannel>;
export type ChannelKind = z.infer<typeof C.ChannelKind>;
export type CreateChannelBody = z.input<typeof C.CreateChannelBody>;
export type ChannelTestResult = z.infer<typeof C.ChannelTestResult>;
export type NotifyTopic = z.input<typeof C.NotifyTopic>;
export type PushSubscriptionJson = z.input<typeof C.PushSubscriptionJson>;
export type NotificationLogEntry = z.infer<typeof C.NotificationLogEntry>;
export type NotificationStatus = z.infer<typeof C.NotificationStatus>;

/** An error answer of the API: its problem document (RFC 9457), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail || problem.title);
    this.name = 'ApiError';
  }
  /** The problem's short code (`urn:task-inbox:problem:<code>`). */
  get code(): string {
    return this.problem.type.split(':').pop() ?? '';
  }
}

type Query = Record<string, string | number | boolean | undefined | null>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, String(v));
  const s = params.toString();
  return s ? `${path}?${s}` : path;
}

async function request<T>(method: string, path: string, opts: { query?: Query; body?: unknown; signal?: AbortSignal; text?: boolean } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(withQuery(path, opts.query), {
      method,
      credentials: 'same-origin',
      headers: opts.body === undefined ? { accept: opts.text ? 'text/plain' : 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, { type: 'urn:task-inbox:problem:offline', title: 'No connection', status: 0, detail: 'The server cannot be reached. Check your connection and try again.' });
  }
  const text = await res.text();
  if (opts.text && res.ok) return text as T;
  // A text route's error answer may be a problem document or plain words.
  const data: unknown = text && (!opts.text || text.startsWith('{')) ? JSON.parse(text) : undefined;
  if (!res.ok) {
    const problem = (data ?? {}) as Partial<Problem>;
    throw new ApiError(res.status, {
      type: problem.type ?? 'about:blank',
      title: problem.title ?? res.statusText,
      status: res.status,
      detail: problem.detail ?? `The server answered ${res.status}.`,
      errors: problem.errors,
      receiver: problem.receiver,
    });
  }
  return data as T;
}

export interface TaskFilters {
  resolved: 'un' | 'all' | 'done';
  schema?: string;
  type?: string;
  state?: string;
  q?: string;
  order: 'oldest' | 'newest';
}

export const api = {
  me: () => request<{ user: User }>('GET', '/api/v1/me'),
  setupStatus: () => request<{ needed: boolean }>('GET', '/api/v1/setup'),
  setup: (body: z.input<typeof C.SetupBody>) => request<{ user: User }>('POST', '/api/v1/setup', { body }),
  signIn: (body: z.input<typeof C.LoginBody>) => request<{ user: User }>('POST', '/api/v1/auth/login', { body }),
  signOut: () => request<{ ok: true }>('POST', '/api/v1/auth/logout'),
  changePassword: (body: z.input<typeof C.ChangePasswordBody>) => request<{ ok: true }>('POST', '/api/v1/me/password', { body }),
  mySessions: () => request<{ sessions: Session[] }>('GET', '/api/v1/me/sessions'),
  endMySession: (id: string) => request<{ ok: true }>('DELETE', `/api/v1/me/sessions/${encodeURIComponent(id)}`),

  listTasks: (f: TaskFilters, cursor?: string, signal?: AbortSignal) =>
    request<ListTasksResponse>('GET', '/api/v1/tasks/', { query: { ...f, q: f.q || undefined, cursor, limit: 50 }, signal }),
  countTasks: (resolved: 'un' | 'all' | 'done' = 'un') => request<{ count: number }>('GET', '/api/v1/tasks/count', { query: { resolved } }),
  types: () => request<{ types: TaskType[] }>('GET', '/api/v1/types'),
  getTask: (id: string) => request<GetTaskResponse>('GET', `/api/v1/tasks/${encodeURIComponent(id)}`),
  history: (id: string) => request<{ history: HistoryEntry[] }>('GET', `/api/v1/tasks/${encodeURIComponent(id)}/history`),
  taskDeliveries: (id: string) => request<{ deliveries: TaskDelivery[] }>('GET', `/api/v1/tasks/${encodeURIComponent(id)}/deliveries`),
  setState: (id: string, state: string | null) =>
    request<{ task: Task }>('PATCH', `/api/v1/tasks/${encodeURIComponent(id)}/state`, { query: { state: state ?? '' } }),

  // Notifications: web push on this device, other channels, and which tasks notify
  /** The VAPID application server key (base64url), for `pushManager.subscribe`. */
  vapidKey: () => request<string>('GET', '/.vapid-pk', { text: true }),
  pushRegister: (sub: PushSubscriptionJson) => request<{ ok: true }>('POST', '/push/register', { body: { sub } }),
  pushUnregister: (endpoint: string) => request<{ ok: true }>('POST', '/push/unregister', { body: { endpoint } }),
  pushTest: () => request<{ sent: number; removed: number; failed?: number }>('POST', '/api/v1/me/push/test'),
  notificationSettings: () => request<NotificationSettings>('GET', '/api/v1/me/notifications'),
  /** null: every schema and type. */
  setTopics: (topics: NotifyTopic[] | null) => request<NotificationSettings>('PUT', '/api/v1/me/notifications/topics', { body: { topics } }),
  createChannel: (body: CreateChannelBody) => request<{ channel: NotificationChannel }>('POST', '/api/v1/me/channels', { body }),
  updateChannel: (id: string, digest_minutes: number | null) =>
    request<{ channel: NotificationChannel }>('PATCH', `/api/v1/me/channels/${encodeURIComponent(id)}`, { body: { digest_minutes } }),
  removeChannel: (id: string) => request<{ ok: true }>('DELETE', `/api/v1/me/channels/${encodeURIComponent(id)}`),
  testChannel: (id: string) => request<ChannelTestResult>('POST', `/api/v1/me/channels/${encodeURIComponent(id)}/test`),

  // Admin
  users: () => request<{ users: User[] }>('GET', '/api/v1/users'),
  createUser: (body: z.input<typeof C.CreateUserBody>) => request<{ user: User }>('POST', '/api/v1/users', { body }),
  updateUser: (id: string, body: z.input<typeof C.UpdateUserBody>) => request<{ user: User }>('PATCH', `/api/v1/users/${encodeURIComponent(id)}`, { body }),
  resetPassword: (id: string, password: string) => request<{ user: User }>('POST', `/api/v1/users/${encodeURIComponent(id)}/password`, { body: { password } }),
  userSessions: (id: string) => request<{ sessions: Session[] }>('GET', `/api/v1/users/${encodeURIComponent(id)}/sessions`),
  revokeSession: (id: string) => request<{ ok: true }>('DELETE', `/api/v1/sessions/${encodeURIComponent(id)}`),
  schemas: () => request<{ schemas: SchemaSummary[] }>('GET', '/api/v1/schemas'),
  installSchema: (yaml: string, dryrun = false) => request<InstallResult>('POST', '/api/v1/schemas', { body: { yaml, dryrun } }),
  removeSchema: (name: string) => request<RemoveResult>('DELETE', `/api/v1/schemas/${encodeURIComponent(name)}`),
  apiKeys: () => request<{ api_keys: ApiKeyInfo[] }>('GET', '/api/v1/api-keys'),
  createApiKey: (body: { name?: string | null; schema_name?: string | null }) => request<{ api_key: ApiKeyInfo & { key: string } }>('POST', '/api/v1/api-keys', { body }),
  revokeApiKey: (id: string) => request<{ api_key: ApiKeyInfo }>('DELETE', `/api/v1/api-keys/${encodeURIComponent(id)}`),
  webhookKeys: () => request<{ webhook_keys: WebhookKeyInfo[] }>('GET', '/api/v1/webhook-keys'),
  createWebhookKey: (body: { schema_name: string; rotate?: boolean }) =>
    request<{ webhook_key: WebhookKeyInfo & { key: string } }>('POST', '/api/v1/webhook-keys', { body }),
  revokeWebhookKey: (id: string) => request<{ webhook_key: WebhookKeyInfo }>('DELETE', `/api/v1/webhook-keys/${encodeURIComponent(id)}`),
  deliveries: (q: { task?: string; schema?: string; status?: DeliveryStatus; cursor?: string }) =>
    request<{ deliveries: WebhookDelivery[]; next_cursor: string | null }>('GET', '/api/v1/deliveries/', { query: { ...q, limit: 50 } }),
  delivery: (id: number) => request<DeliveryDetail>('GET', `/api/v1/deliveries/${id}`),
  redeliver: (id: number) => request<DeliveryDetail>('POST', `/api/v1/deliveries/${id}/redeliver`),
  notificationLog: (q: { status?: NotificationStatus; cursor?: string }) =>
    request<{ notifications: NotificationLogEntry[]; next_cursor: string | null }>('GET', '/api/v1/admin/notifications', { query: { ...q, limit: 50 } }),
  audit: (q: { action?: string; actor?: string; cursor?: string }) =>
    request<{ events: AuditEvent[]; next_cursor: string | null }>('GET', '/api/v1/audit', { query: { ...q, limit: 50 } }),
};
