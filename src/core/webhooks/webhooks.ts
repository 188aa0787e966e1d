import type { Task, WebhookPayload } from '../../contract/index.js';
import type { HookAuth } from '../schemas/index.js';
import { version } from '../../paths.js';
import { signStandard } from './signature.js';

/** Where and how one task type's state changes are sent. */
export interface HookTarget {
  url: string;
  mode: 'sync' | 'async';
  auth: HookAuth | null;
  schemaId: number;
  schemaName: string;
  versionId: number;
}

/** The type row fields that decide the target (see schemasRepo.findTypesByIds). */
export interface HookedType {
  name: string;
  schemaId: number;
  schemaName: string;
  version: number;
  semver: string;
  versionId: number;
  hookUrl: string | null;
  defaultHookUrl: string | null;
  hookMode: 'sync' | 'async';
  hookAuth: HookAuth | null;
}

/** The type's own hook_url wins over its version's default_hook_url; no URL, no webhook. */
export function hookTargetOf(t: HookedType): HookTarget | null {
  const url = t.hookUrl ?? t.defaultHookUrl;
  if (!url) return null;
  return { url, mode: t.hookMode, auth: t.hookAuth, schemaId: t.schemaId, schemaName: t.schemaName, versionId: t.versionId };
}

export function buildPayload(opts: {
  task: Task;
  type: HookedType;
  previous: { state: string | null; resolved: boolean };
  historyId: number;
  editor: { id: string; name: string } | null;
  event?: WebhookPayload['event'];
}): WebhookPayload {
  return {
    event: opts.event ?? 'task.state_changed',
    task: opts.task,
    ttype: opts.type.name,
    type: { schema_name: opts.type.schemaName, name: opts.type.name, semver: opts.type.semver, version: opts.type.version },
    previous: opts.previous,
    history_id: opts.historyId,
    editor: opts.editor,
    meta: opts.task.meta,
  };
}

/**
 * Headers of one attempt. Every delivery carries `webhook-id` and `webhook-timestamp`; `head`
 * adds the newest key in its header, `standard` a signature by every live key (so receivers
 * keep verifying during a rotation).
 */
export function webhookHeaders(auth: HookAuth | null, secrets: string[], webhookId: string, timestamp: number, body: string): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': `task-inbox/${version}`,
    'webhook-id': webhookId,
    'webhook-timestamp': String(timestamp),
  };
  if (auth?.kind === 'head' && auth.val && secrets[0]) headers[auth.val.toLowerCase()] = secrets[0];
  if (auth?.kind === 'standard') headers['webhook-signature'] = secrets.map((s) => signStandard(s, webhookId, timestamp, body)).join(' ');
  return headers;
}

/** Delay before the retry that follows attempt `attempts` (1-based), or null when it was the last. */
export function retryDelay(schedule: readonly number[], attempts: number, retryAfterMs: number | null, random = Math.random): number | null {
  const base = schedule[attempts - 1];
  if (base === undefined) return null;
  const jittered = Math.round(base * (0.8 + 0.4 * random()));
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, 24 * 3_600_000));
}
