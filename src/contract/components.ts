import { z } from 'zod';
import { ApiKeyInfo, DisabledEndpoint, InstallResult, RemoveResult, SchemaSummary, WebhookKeyInfo } from './admin.js';
import { Problem } from './common.js';
import { HealthResponse } from './health.js';
import { AuditEvent, Session, User } from './people.js';
import { HistoryEntry, Task, TaskType } from './tasks.js';
import { WebhookAttempt, WebhookDelivery, WebhookPayload } from './webhooks.js';

/**
 * The contract objects that have a name of their own in the OpenAPI document
 * (`#/components/schemas/<name>`); every other schema is written out where it is used. Only
 * answers and webhook bodies are named: a request body given an id would be named `<id>Input`.
 */
export const componentSchemas = {
  ApiKeyInfo,
  AuditEvent,
  DisabledEndpoint,
  Health: HealthResponse,
  HistoryEntry,
  InstallResult,
  Problem,
  RemoveResult,
  SchemaSummary,
  Session,
  Task,
  TaskType,
  User,
  WebhookAttempt,
  WebhookDelivery,
  WebhookKeyInfo,
  WebhookPayload,
} satisfies Record<string, z.ZodType>;

/**
 * Gives each schema of `componentSchemas` its name in zod's global registry, where the OpenAPI
 * generator looks for ids; other metadata (descriptions) is kept. Safe to call more than once.
 */
export function nameComponentSchemas(): void {
  for (const [id, schema] of Object.entries(componentSchemas)) {
    const meta = z.globalRegistry.get(schema);
    if (meta?.id !== id) z.globalRegistry.add(schema, { ...meta, id });
  }
}
