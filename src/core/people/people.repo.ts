import { and, asc, count, eq, gt, inArray, isNull, lt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/index.js';
import { sessions, setupTokens, signInFailures, users } from '../../db/tables.js';

export type UserRow = typeof users.$inferSelect;

export async function insertUser(db: Executor, values: typeof users.$inferInsert) {
  const rows = await db.insert(users).values(values).returning();
  return rows[0]!;
}

export async function findUserByUsername(db: Executor, username: string) {
  const rows = await db.select().from(users).where(eq(sql`lower(${users.username})`, username.toLowerCase()));
  return rows[0];
}

export async function findUserById(db: Executor, id: string) {
  const rows = await db.select().from(users).where(eq(users.id, id));
  return rows[0];
}

export async function countUsers(db: Executor): Promise<number> {
  const [row] = await db.select({ n: count() }).from(users);
  return row!.n;
}

export async function listUsers(db: Executor) {
  return db.select().from(users).orderBy(asc(sql`lower(${users.username})`));
}

export async function updateUser(db: Executor, id: string, values: Partial<typeof users.$inferInsert>) {
  const rows = await db.update(users).set({ ...values, updated: sql`now()` }).where(eq(users.id, id)).returning();
  return rows[0];
}

export async function insertSession(db: Executor, values: typeof sessions.$inferInsert) {
  const rows = await db.insert(sessions).values(values).returning();
  return rows[0]!;
}

/** A live session with its active person: within its absolute lifetime and its idle timeout. */
export async function findLiveSession(db: Executor, tokenHash: string, idleMs: number) {
  const rows = await db
    .select({ session: sessions, user: users })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(
      and(
        eq(sessions.tokenHash, tokenHash),
        gt(sessions.expiresAt, sql`now()`),
        gt(sessions.lastSeenAt, sql`now() - make_interval(secs => ${idleMs / 1000})`),
        eq(users.active, true),
      ),
    );
  return rows[0];
}

/** Records activity, at most once per `everyMs` per session (busy sessions don't write on every request). */
export async function touchSession(db: Executor, id: string, everyMs: number) {
  await db
    .update(sessions)
    .set({ lastSeenAt: sql`now()` })
    .where(and(eq(sessions.id, id), lt(sessions.lastSeenAt, sql`now() - make_interval(secs => ${everyMs / 1000})`)));
}

export async function deleteSession(db: Executor, id: string) {
  const rows = await db.delete(sessions).where(eq(sessions.id, id)).returning({ id: sessions.id, userId: sessions.userId });
  return rows[0];
}

export async function deleteSessionsOfUser(db: Executor, userId: string) {
  await db.delete(sessions).where(eq(sessions.userId, userId));
}

export async function listSessionsOfUser(db: Executor, userId: string) {
  return db.select().from(sessions).where(eq(sessions.userId, userId)).orderBy(asc(sessions.created));
}

/** Marks a sign-in attempt as failed for each subject; returns the marks' ids. */
export async function recordSignInFailure(db: Executor, subjects: string[]): Promise<number[]> {
  const rows = await db.insert(signInFailures).values(subjects.map((subject) => ({ subject }))).returning({ id: signInFailures.id });
  return rows.map((r) => r.id);
}

export async function deleteSignInFailures(db: Executor, ids: number[]) {
  if (ids.length > 0) await db.delete(signInFailures).where(inArray(signInFailures.id, ids));
}

/** Failures of a subject within the window, and when the oldest of them leaves it. */
export async function signInFailuresSince(db: Executor, subject: string, windowMs: number) {
  const rows = await db.execute<{ n: string | number; oldest: Date | string | null }>(sql`
    SELECT count(*) AS n, min(created) AS oldest FROM sign_in_failures
    WHERE subject = ${subject} AND created > now() - make_interval(secs => ${windowMs / 1000})`);
  const row = (rows as unknown as { rows: { n: string | number; oldest: Date | string | null }[] }).rows[0]!;
  return { count: Number(row.n), oldest: row.oldest ? new Date(row.oldest) : null };
}

export async function insertSetupToken(db: Executor, tokenHash: string, ttlMs: number) {
  await db.insert(setupTokens).values({ tokenHash, expiresAt: new Date(Date.now() + ttlMs) });
}

/** Marks a setup token used; false when unknown, used or expired. */
export async function consumeSetupToken(db: Executor, tokenHash: string): Promise<boolean> {
  const rows = await db
    .update(setupTokens)
    .set({ usedAt: sql`now()` })
    .where(and(eq(setupTokens.tokenHash, tokenHash), isNull(setupTokens.usedAt), gt(setupTokens.expiresAt, sql`now()`)))
    .returning({ tokenHash: setupTokens.tokenHash });
  return rows.length === 1;
}
