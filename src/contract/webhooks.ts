import { z } from 'zod';
import { Meta, Timestamp } from './common.js';
import { Task } from './tasks.js';

/** The body POSTed to the application server when a task's state changes. */
export const WebhookPayload = z.object({
  /** `task.state_changed` when a person (or a key, or the CLI) set the state; `task.cancelled` when the application server cancelled the task. */
  event: z.enum(['task.state_changed', 'task.cancelled']),
  task: Task,
  /** The task type's name (the earlier version's field). */
  ttype: z.string(),
  type: z.object({ schema_name: z.string(), name: z.string(), semver: z.string(), version: z.number().int() }),
  previous: z.object({ state: z.string().nullable(), resolved: z.boolean() }),
  history_id: z.number().int(),
  /** The person who made the change; null when an application server or the CLI made it. */
  editor: z.object({ id: z.string(), name: z.string() }).nullable(),
  meta: Meta.nullable(),
});
export type WebhookPayload = z.infer<typeof WebhookPayload>;

export const DeliveryStatus = z.enum(['pending', 'delivered', 'failed', 'dead', 'paused'], { error: 'must be one of pending, delivered, failed, dead, paused' });

export const WebhookAttempt = z.object({
  id: z.number().int(),
  created: Timestamp,
  status_code: z.number().int().nullable(),
  latency_ms: z.number().int(),
  /** The receiver's answer, up to 20 KB. */
  response_body: z.string().nullable(),
  error: z.string().nullable(),
});

export const WebhookDelivery = z.object({
  id: z.number().int(),
  webhook_id: z.string(),
  mode: z.enum(['sync', 'async']),
  task_id: z.string().nullable(),
  history_id: z.number().int().nullable(),
  schema_name: z.string(),
  url: z.string(),
  status: DeliveryStatus,
  attempts: z.number().int(),
  next_attempt_at: Timestamp.nullable(),
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
  created: Timestamp,
  delivered_at: Timestamp.nullable(),
});
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const ListDeliveriesQuery = z.object({
  task: z.uuid().optional(),
  schema: z.string().min(1).optional(),
  status: DeliveryStatus.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().regex(/^\d{1,15}$/, 'cursor must be the next_cursor of a previous page').optional(),
});
export type ListDeliveriesQuery = z.infer<typeof ListDeliveriesQuery>;

export const ListDeliveriesResponse = z.object({ deliveries: z.array(WebhookDelivery), next_cursor: z.string().nullable() });
export const DeliveryResponse = z.object({ delivery: WebhookDelivery, attempts: z.array(WebhookAttempt), payload: z.unknown() });
export const RedeliverSinceBody = z.object({
  since: z.iso.datetime({ offset: true, error: 'since must be an ISO 8601 date-time' }),
  schema: z.string().min(1).optional(),
});
export const RedeliverResponse = z.object({ redelivered: z.number().int() });

/** The deliveries of one task, each with its attempts (the inbox's task view). */
export const TaskDeliveriesResponse = z.object({ deliveries: z.array(WebhookDelivery.extend({ attempts: z.array(WebhookAttempt) })) });
