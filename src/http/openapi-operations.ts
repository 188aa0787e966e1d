/*
 * What each operation of the OpenAPI document is called, and how operations are grouped. A new
 * route gets its row here (or sets `schema.operationId`, `summary` and `description` itself);
 * without one it still appears, with a derived operationId but no summary, and the tests say so.
 */

/** What a route's operation is called. A route may set `schema.operationId`/`summary`/`description` itself instead. */
export interface OperationText {
  operationId: string;
  summary: string;
  description?: string;
}

/** By method and OpenAPI path (no trailing slash). A route missing here still appears, without a summary: the lint test says so. */
export const OPERATIONS: Record<string, OperationText> = {
  'POST /api/v1/tasks': {
    operationId: 'createTask',
    summary: 'Create a task',
    description:
      'For application servers. The task type is looked up in the schema’s latest version. Send an `Idempotency-Key` to make retries safe: ' +
      'a retry with the same key and body gets the first answer again (with `idempotent-replayed: true`).',
  },
  'GET /api/v1/tasks': {
    operationId: 'listTasks',
    summary: 'List tasks',
    description: '`types` holds each task type a listed task refers to. Pass `next_cursor` as `cursor` for the next page.',
  },
  'GET /api/v1/tasks/count': { operationId: 'countTasks', summary: 'Count tasks (unresolved by default)' },
  'GET /api/v1/tasks/{id}': {
    operationId: 'getTask',
    summary: 'Get a task with its type and metadata',
    description:
      'With `wait` (seconds, at most 60) this is a long poll: the answer comes once the task is resolved (`wait_for=resolved`, the default) ' +
      'or its state changes (`wait_for=change`), or when the time is up, with the task as it is then.',
  },
  'PATCH /api/v1/tasks/{id}': {
    operationId: 'updateTask',
    summary: 'Update a task’s metadata',
    description: 'For application servers. `meta` is merged into the task’s metadata; a key set to null is removed.',
  },
  'POST /api/v1/tasks/{id}/cancel': {
    operationId: 'cancelTask',
    summary: 'Cancel a task',
    description: 'For application servers, when the task no longer needs a person. It becomes resolved and keeps its state; `cancelled` says when and why.',
  },
  'GET /api/v1/tasks/{id}/history': { operationId: 'getTaskHistory', summary: 'Get a task’s history, oldest first' },
  'PATCH /api/v1/tasks/{id}/state': {
    operationId: 'setTaskState',
    summary: 'Move a task to a state',
    description:
      'An empty or absent `state` unsets it. Setting the state the task already has changes nothing. When the task’s type has a sync ' +
      'webhook, the change is made only if the application server accepts it; otherwise 502 `webhook-refused` and nothing changes.',
  },
  'GET /api/v1/tasks/{id}/deliveries': { operationId: 'listTaskDeliveries', summary: 'List the webhook deliveries of a task’s changes' },
  'GET /api/v1/types': { operationId: 'listTaskTypes', summary: 'List the task types of every schema version' },
  'GET /api/v1/events': {
    operationId: 'streamTaskEvents',
    summary: 'Stream live task events (server-sent events)',
    description:
      '`event: ready` once connected; then `event: task` with `{"kind": "created"|"changed", "id", "schema", "state", "resolved"}` for each new ' +
      'task and state change; `event: resync` when events may have been missed (reload what you show). A comment line every 25 s keeps proxies from closing the stream.',
  },

  'GET /api/v1/deliveries': { operationId: 'listDeliveries', summary: 'List webhook deliveries, newest first' },
  'GET /api/v1/deliveries/{id}': { operationId: 'getDelivery', summary: 'Get a webhook delivery with its attempts and payload' },
  'POST /api/v1/deliveries/{id}/redeliver': { operationId: 'redeliverDelivery', summary: 'Queue an async delivery again' },
  'POST /api/v1/deliveries/redeliver': { operationId: 'redeliverFailedSince', summary: 'Queue again every failed, dead or paused delivery since a time' },
  'GET /api/v1/webhook-keys': { operationId: 'listWebhookKeys', summary: 'List webhook keys (never the keys themselves)' },
  'POST /api/v1/webhook-keys': { operationId: 'createWebhookKey', summary: 'Create or rotate a schema’s webhook key (shown once)' },
  'DELETE /api/v1/webhook-keys/{id}': { operationId: 'revokeWebhookKey', summary: 'Revoke a webhook key' },
  'GET /api/v1/endpoints': { operationId: 'listDisabledEndpoints', summary: 'List webhook endpoints disabled after answering 410 Gone' },
  'POST /api/v1/endpoints/enable': { operationId: 'enableEndpoint', summary: 'Re-enable a disabled webhook endpoint' },

  'POST /api/v1/auth/login': { operationId: 'signIn', summary: 'Sign in (sets the session cookie)' },
  'POST /api/v1/auth/logout': { operationId: 'signOut', summary: 'Sign out' },
  'GET /api/v1/me': { operationId: 'getCurrentUser', summary: 'The signed-in person' },
  'POST /api/v1/me/password': { operationId: 'changeOwnPassword', summary: 'Change one’s own password (ends one’s other sessions)' },
  'GET /api/v1/me/sessions': { operationId: 'listOwnSessions', summary: 'List one’s own sessions' },
  'DELETE /api/v1/me/sessions/{id}': { operationId: 'endOwnSession', summary: 'End one of one’s own sessions' },
  'GET /api/v1/setup': { operationId: 'getSetupStatus', summary: 'Whether the first-run setup is needed' },
  'POST /api/v1/setup': { operationId: 'completeSetup', summary: 'Create the first admin with the setup link’s token' },
  'GET /api/v1/users': { operationId: 'listUsers', summary: 'List people' },
  'POST /api/v1/users': { operationId: 'createUser', summary: 'Add a person' },
  'PATCH /api/v1/users/{id}': { operationId: 'updateUser', summary: 'Change a person’s name, email, role or active flag' },
  'POST /api/v1/users/{id}/password': { operationId: 'resetUserPassword', summary: 'Set a new password for a person' },
  'GET /api/v1/users/{id}/sessions': { operationId: 'listUserSessions', summary: 'List a person’s sessions' },
  'DELETE /api/v1/sessions/{id}': { operationId: 'endSession', summary: 'End a session' },

  'GET /api/v1/audit': { operationId: 'listAuditEvents', summary: 'The audit trail, newest first' },
  'GET /api/v1/schemas': { operationId: 'listSchemas', summary: 'List task schemas' },
  'POST /api/v1/schemas': { operationId: 'installSchema', summary: 'Install a task schema file, or the next version of one' },
  'DELETE /api/v1/schemas/{name}': { operationId: 'removeSchema', summary: 'Delete a schema, its versions and tasks (history is kept)' },
  'GET /api/v1/api-keys': { operationId: 'listApiKeys', summary: 'List API keys (never the keys themselves)' },
  'POST /api/v1/api-keys': { operationId: 'createApiKey', summary: 'Create an API key (shown once)' },
  'DELETE /api/v1/api-keys/{id}': { operationId: 'revokeApiKey', summary: 'Revoke an API key' },

  'POST /push/register': {
    operationId: 'registerPush',
    summary: 'Register this browser session’s web push subscription',
    description: 'The body is `{"sub": subscription.toJSON()}`. Registering the same endpoint again moves it to the current session; signing out removes it.',
  },
  'POST /push/unregister': { operationId: 'unregisterPush', summary: 'Remove one of one’s web push subscriptions' },
  'POST /api/v1/me/push/test': { operationId: 'testPush', summary: 'Push a test message to each of one’s devices now' },
  'GET /api/v1/me/notifications': { operationId: 'getNotificationSettings', summary: 'One’s notification settings: topics, channels, devices' },
  'PUT /api/v1/me/notifications/topics': {
    operationId: 'setNotificationTopics',
    summary: 'Choose which schemas and types notify one',
    description: '`null` means every schema and type (the default); a list means only those (`type: null` for every type of a schema).',
  },
  'POST /api/v1/me/channels': {
    operationId: 'createNotificationChannel',
    summary: 'Add a notification channel (email, Slack-compatible webhook, ntfy, JSON webhook)',
    description: 'Chat webhook URLs and ntfy tokens are stored encrypted and never returned; `label` says where the channel sends.',
  },
  'PATCH /api/v1/me/channels/{id}': { operationId: 'updateNotificationChannel', summary: 'Change a channel between immediate and digest' },
  'DELETE /api/v1/me/channels/{id}': { operationId: 'deleteNotificationChannel', summary: 'Remove a notification channel' },
  'POST /api/v1/me/channels/{id}/test': { operationId: 'testNotificationChannel', summary: 'Send a test message over a channel now' },
  'GET /api/v1/admin/notifications': { operationId: 'listNotifications', summary: 'The notification log, newest first' },

  'GET /livez': { operationId: 'getLiveness', summary: 'Liveness probe: the process answers (never checks the database)' },
  'GET /readyz': {
    operationId: 'getReadiness',
    summary: 'Readiness probe: the database answers and is migrated',
    description: 'A 503 problem document (`not-ready`, each problem in `errors`) while the database cannot be reached or migrations are pending. Probes have no 4xx answers.',
  },
  'GET /health': { operationId: 'getHealth', summary: 'Health, and how the server sees the request' },
};

/** Tags, in the order the reference shows them, and the path prefixes that belong to each. */
export const TAGS: { name: string; description: string; prefixes: string[] }[] = [
  {
    name: 'tasks',
    description: 'Tasks and task types: what application servers post and people work on; live events for the inbox.',
    prefixes: ['/api/v1/tasks', '/api/v1/types', '/api/v1/events'],
  },
  {
    name: 'webhooks',
    description: 'The webhook delivery log and redelivery, webhook keys, and endpoints disabled by 410 Gone.',
    prefixes: ['/api/v1/deliveries', '/api/v1/webhook-keys', '/api/v1/endpoints'],
  },
  {
    name: 'notifications',
    description: 'Web push registration, each person’s notification topics and channels, and the notification log.',
    prefixes: ['/push', '/api/v1/me/push', '/api/v1/me/notifications', '/api/v1/me/channels', '/api/v1/admin/notifications'],
  },
  {
    name: 'people',
    description: 'Sign-in, one’s own account and sessions, the first-run setup, and (admins) people and their sessions.',
    prefixes: ['/api/v1/auth', '/api/v1/me', '/api/v1/setup', '/api/v1/users', '/api/v1/sessions'],
  },
  { name: 'admin', description: 'Task schemas, API keys and the audit trail.', prefixes: ['/api/v1/schemas', '/api/v1/api-keys', '/api/v1/audit'] },
  { name: 'health', description: 'Probes for load balancers and proxies.', prefixes: ['/health', '/livez', '/readyz'] },
];
