import { desc, and, eq, lt, type SQL, gte } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { auditEvents } from '../../db/tables.js';

/** Who did something: a signed-in person, an application server's key, the command line, or nobody known. */
export interface Actor {
  kind: 'person' | 'api-key' | 'cli' | 'anonymous';
  id?: string | null;
  name?: string | null;
  ip?: string | null;
}

export const cliActor: Actor = { kind: 'cli', name: 'command line' };

/** Writes one audit event. `details` must never hold a secret. */
export async function recordAudit(db: Executor, actor: Actor, action: string, target: string | null, details: Record<string, unknown> | null = null) {
  await db.insert(auditEvents).values({
    actorKind: actor.kind,
    actorId: actor.id ?? null,
    actorName: actor.name ?? null,
    ip: actor.ip ?? null,
    action,
    target,
    details,
  });
}

export interface AuditFilter {
  action?: string;
  actorName?: string;
  since?: Date;
  beforeId?: number;
  limit: number;
}

/** Newest first. */
export async function listAudit(db: Executor, f: AuditFilter) {
  const where: (SQL | undefined)[] = [];
  if (f.action) where.push(eq(auditEvents.action, f.action));
  if (f.actorName) where.push(eq(auditEvents.actorName, f.actorName));
  if (f.since) where.push(gte(auditEvents.created, f.since));
  if (f.beforeId !== undefined) where.push(lt(auditEvents.id, f.beforeId));
  const rows = await db.select().from(auditEvents).where(and(...where)).orderBy(desc(auditEvents.id)).limit(f.limit);
  return rows.map((r) => ({
    id: r.id,
    created: r.created.toISOString(),
    actor: { kind: r.actorKind, id: r.actorId, name: r.actorName },
    ip: r.ip,
    action: r.action,
    target: r.target,
    details: r.details ?? null,
  }));
}
