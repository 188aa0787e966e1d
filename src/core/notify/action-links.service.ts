import type { Database } from '../../db/index.js';
import { AppError } from '../../errors.js';
import type { PersonPrincipal } from '../people/people.js';
import { findUserById } from '../people/people.repo.js';
import { setTaskState } from '../tasks/tasks.service.js';
import type { Webhooks } from '../webhooks/index.js';
import { metrics } from '../metrics.js';
import type { Notifications } from './notifications.service.js';
import { notifyFields, type NotifyField } from './notify.js';
import * as repo from './notify.repo.js';

/** Why a link does not work (anymore). */
export type LinkRefusal = 'invalid' | 'used' | 'expired' | 'inactive' | 'gone';

/** What the confirm page shows about the task a link changes. */
export interface LinkTarget {
  taskId: string;
  schema: string;
  type: string;
  fields: NotifyField[];
  currentState: string | null;
  resolved: boolean;
  cancelled: boolean;
  /** The state the link sets. */
  state: string | null;
  person: string;
}

export type LinkLookup = { ok: true; target: LinkTarget } | { ok: false; refusal: LinkRefusal };

async function lookup(database: Database, link: repo.ActionLinkRow | undefined): Promise<LinkLookup> {
  if (!link) return { ok: false, refusal: 'invalid' };
  if (link.usedAt) return { ok: false, refusal: 'used' };
  if (link.expiresAt.getTime() <= Date.now()) return { ok: false, refusal: 'expired' };
  const user = await findUserById(database.db, link.userId);
  if (!user?.active) return { ok: false, refusal: 'inactive' };
  const [task] = await repo.findTasksWithTypes(database.db, [link.taskId]);
  if (!task) return { ok: false, refusal: 'gone' };
  const cancelled = await repo.isTaskCancelled(database.db, link.taskId);
  return {
    ok: true,
    target: {
      taskId: task.id,
      schema: task.schema,
      type: task.type,
      fields: notifyFields(task.meta),
      currentState: task.state,
      resolved: task.resolved,
      cancelled,
      state: link.state,
      person: user.displayName,
    },
  };
}

/** Reads a link without using it (the confirm page: opening a link changes nothing). */
export async function inspectActionLink(database: Database, notifications: Notifications, token: string): Promise<LinkLookup> {
  const hash = notifications.verifyLink(token);
  if (!hash) return { ok: false, refusal: 'invalid' };
  return lookup(database, await repo.findActionLink(database.db, hash));
}

export type LinkUse = { ok: true; target: LinkTarget; changed: boolean } | { ok: false; refusal: LinkRefusal } | { ok: false; error: AppError; target: LinkTarget };

/**
 * Uses a link: sets the task's state as the person the link was sent to, with the same rules as
 * the inbox (a sync webhook must accept first). The link is taken before the change, so two
 * submits cannot both use it; if the change fails it is handed back, and once it succeeds the
 * person's other links for that task are spent too.
 */
export async function useActionLink(database: Database, notifications: Notifications, webhooks: Webhooks, token: string): Promise<LinkUse> {
  const hash = notifications.verifyLink(token);
  if (!hash) return { ok: false, refusal: 'invalid' };
  const taken = await repo.takeActionLink(database.db, hash);
  if (!taken) return lookup(database, await repo.findActionLink(database.db, hash)) as Promise<LinkUse>;
  const seen = await lookup(database, { ...taken, usedAt: null });
  if (!seen.ok) return seen;
  const user = (await findUserById(database.db, taken.userId))!;
  const person: PersonPrincipal = { kind: 'person', id: user.id, username: user.username, name: user.displayName, role: user.role, sessionId: 'action-link' };
  try {
    const { changed } = await setTaskState(database, person, taken.taskId, taken.state, webhooks);
    if (changed) metrics.stateChanges.inc({ by: 'link' });
    await repo.spendActionLinks(database.db, taken.taskId, taken.userId);
    return { ok: true, target: seen.target, changed };
  } catch (err) {
    await repo.releaseActionLink(database.db, taken.id);
    if (err instanceof AppError) return { ok: false, error: err, target: seen.target };
    throw err;
  }
}
