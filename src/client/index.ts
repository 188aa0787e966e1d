/**
 * task-inbox's client for application servers and AI agents: `import { createClient, verifyWebhook } from 'task-inbox/client'`.
 * No dependencies beyond Node's own `fetch` and `node:crypto` (see docs/integration.md).
 */
export { createClient, type TaskInboxClient } from './client.js';
export { verifyWebhook, type IncomingHeaders, type VerifyWebhookOptions } from './webhooks.js';
export { TaskInboxConnectionError, TaskInboxError, TaskWaitTimeoutError, WebhookVerificationError } from './errors.js';
export type * from './types.js';
export type { ErrorCode } from '../errors.js';
