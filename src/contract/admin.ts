import { z } from 'zod';
import { Timestamp } from './common.js';

/** What admin routes answer; each schema is the allow-list of what leaves the server. */
export const SchemaSummary = z.object({
  name: z.string(),
  latest_version: z.number().int().nullable(),
  semver: z.string().nullable(),
  versions: z.number().int(),
  tasks: z.number().int(),
  unresolved: z.number().int(),
  created: Timestamp,
});

const Issue = z.object({ line: z.number().int(), column: z.number().int(), field: z.string(), message: z.string() });

export const InstallResult = z.object({
  name: z.string(),
  version: z.number().int(),
  semver: z.string(),
  isNewSchema: z.boolean(),
  types: z.array(z.object({ name: z.string(), pending_states: z.array(z.string()), resolved_states: z.array(z.string()) })),
  warnings: z.array(Issue),
  dryRun: z.boolean(),
});

export const RemoveResult = z.object({ name: z.string(), versions: z.number().int(), tasks: z.number().int(), historyKept: z.number().int(), dryRun: z.boolean() });

export const ApiKeyInfo = z.object({
  id: z.string(),
  name: z.string().nullable(),
  prefix: z.string(),
  schema_name: z.string().nullable(),
  created: Timestamp,
  last_used: Timestamp.nullable(),
  revoked: Timestamp.nullable(),
});

export const WebhookKeyInfo = z.object({
  id: z.string(),
  schema_name: z.string(),
  kind: z.enum(['head', 'standard']),
  prefix: z.string(),
  created: Timestamp,
  expires: Timestamp.nullable(),
  revoked: Timestamp.nullable(),
});

export const DisabledEndpoint = z.object({ url: z.string(), disabled: Timestamp, reason: z.string() });
