import type { Config } from '../../config.js';
import type { Database } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { recordAudit, type Actor } from '../audit/audit.js';
import * as repo from './people.repo.js';
import {
  checkPassword,
  checkUsername,
  hashPassword,
  hashToken,
  newToken,
  SETUP_LINK_TTL_MS,
  SIGN_IN_LIMIT,
  SIGN_IN_WINDOW_MS,
  timingDummyHash,
  userRowToPublic,
  verifyPassword,
  type PersonPrincipal,
  type PublicUser,
} from './people.js';

export interface NewUser {
  username: string;
  name: string;
  email?: string | null;
  role: 'admin' | 'member';
  password: string;
}

export async function createUser(database: Database, actor: Actor, u: NewUser): Promise<PublicUser> {
  checkUsername(u.username);
  checkPassword(u.password);
  if (!u.name.trim()) throw new AppError('bad-request', 'A display name is required.');
  const passwordHash = await hashPassword(u.password);
  return database.db.transaction(async (tx) => {
    if (await repo.findUserByUsername(tx, u.username)) throw new AppError('user-exists', `The username '${u.username}' is taken (usernames ignore case).`);
    const row = await repo.insertUser(tx, { username: u.username, displayName: u.name.trim(), email: u.email || null, role: u.role, passwordHash });
    await recordAudit(tx, actor, 'user.create', row.username, { role: u.role });
    return userRowToPublic(row);
  });
}

export async function listUsers(database: Database): Promise<PublicUser[]> {
  return (await repo.listUsers(database.db)).map(userRowToPublic);
}

export async function findUser(database: Database, ref: string) {
  const row = /^[0-9a-f-]{36}$/.test(ref) ? await repo.findUserById(database.db, ref) : await repo.findUserByUsername(database.db, ref);
  if (!row) throw new AppError('not-found', `No person with id or username '${ref}'.`);
  return row;
}

/** Changes name, email, role or active flag. Deactivation ends the person's sessions at once. */
export async function updateUser(
  database: Database,
  actor: Actor,
  ref: string,
  changes: { name?: string; email?: string | null; role?: 'admin' | 'member'; active?: boolean },
): Promise<PublicUser> {
  const user = await findUser(database, ref);
  return database.db.transaction(async (tx) => {
    const row = await repo.updateUser(tx, user.id, {
      ...(changes.name !== undefined ? { displayName: changes.name } : {}),
      ...(changes.email !== undefined ? { email: changes.email } : {}),
      ...(changes.role !== undefined ? { role: changes.role } : {}),
      ...(changes.active !== undefined ? { active: changes.active } : {}),
    });
    if (changes.active === false) await repo.deleteSessionsOfUser(tx, user.id);
    const action = changes.active === false ? 'user.deactivate' : changes.active === true ? 'user.activate' : 'user.update';
    await recordAudit(tx, actor, action, user.username, { fields: Object.keys(changes) });
    return userRowToPublic(row!);
  });
}

/** Sets a new password and ends the person's sessions. */
export async function resetPassword(database: Database, actor: Actor, ref: string, password: string): Promise<PublicUser> {
  checkPassword(password);
  const user = await findUser(database, ref);
  const passwordHash = await hashPassword(password);
  return database.db.transaction(async (tx) => {
    const row = await repo.updateUser(tx, user.id, { passwordHash });
    await repo.deleteSessionsOfUser(tx, user.id);
    await recordAudit(tx, actor, 'user.reset-password', user.username);
    return userRowToPublic(row!);
  });
}

export interface SignedIn {
  token: string;
  user: PublicUser;
  sessionId: string;
}

/**
 * Checks a username and password. Unknown usernames and wrong passwords get the same answer in
 * the same time; after SIGN_IN_LIMIT failures within the window, per account or per address,
 * further tries are refused with 429 and the seconds to wait.
 */
export async function signIn(
  database: Database,
  config: Config,
  input: { username: string; password: string; ip: string; userAgent?: string },
): Promise<SignedIn> {
  const subjects = [`user:${input.username.toLowerCase()}`, `ip:${input.ip}`];
  // The attempt is counted before the (slow) password check, so a burst of parallel guesses
  // cannot all slip past the limit; a correct password takes its mark back.
  const marks = await repo.recordSignInFailure(database.db, subjects);
  for (const subject of subjects) {
    const { count, oldest } = await repo.signInFailuresSince(database.db, subject, SIGN_IN_WINDOW_MS);
    if (count > SIGN_IN_LIMIT) {
      await repo.deleteSignInFailures(database.db, marks);
      const retryAfter = Math.max(1, Math.ceil(((oldest?.getTime() ?? Date.now()) + SIGN_IN_WINDOW_MS - Date.now()) / 1000));
      throw new AppError('too-many-requests', `Too many failed sign-ins. Try again in ${Math.ceil(retryAfter / 60)} minute(s).`, { retryAfter });
    }
  }
  const user = await repo.findUserByUsername(database.db, input.username);
  const ok = await verifyPassword(user?.passwordHash ?? (await timingDummyHash()), input.password);
  const anonymous: Actor = { kind: 'anonymous', name: input.username, ip: input.ip };
  if (!user || !ok || !user.active) {
    await recordAudit(database.db, anonymous, 'auth.sign-in-failed', input.username);
    throw new AppError('sign-in-failed', 'Wrong username or password.');
  }
  await repo.deleteSignInFailures(database.db, marks);
  return startSession(database, config, user, { kind: 'person', id: user.id, name: user.username, ip: input.ip }, input.ip, input.userAgent);
}

async function startSession(database: Database, config: Config, user: repo.UserRow, actor: Actor, ip: string, userAgent?: string): Promise<SignedIn> {
  const token = newToken();
  const session = await repo.insertSession(database.db, {
    userId: user.id,
    tokenHash: hashToken(token),
    expiresAt: new Date(Date.now() + config.sessionLifetimeMs),
    ip,
    userAgent: userAgent?.slice(0, 300) ?? null,
  });
  await recordAudit(database.db, actor, 'auth.sign-in', user.username);
  return { token, user: userRowToPublic(user), sessionId: session.id };
}

export async function signOut(database: Database, actor: Actor, sessionId: string) {
  await repo.deleteSession(database.db, sessionId);
  await recordAudit(database.db, actor, 'auth.sign-out', actor.name ?? null);
}

/** The person a session cookie belongs to, or null when it is unknown, expired or idle too long. */
export async function authenticateSession(database: Database, config: Config, token: string): Promise<PersonPrincipal | null> {
  const found = await repo.findLiveSession(database.db, hashToken(token), config.sessionIdleMs);
  if (!found) return null;
  // Often enough that the idle timeout never ends a session in use, at most once a minute.
  await repo.touchSession(database.db, found.session.id, Math.min(60_000, config.sessionIdleMs / 4));
  return { kind: 'person', id: found.user.id, username: found.user.username, name: found.user.displayName, role: found.user.role, sessionId: found.session.id };
}

export async function listSessions(database: Database, ref: string) {
  const user = await findUser(database, ref);
  return (await repo.listSessionsOfUser(database.db, user.id)).map((s) => ({
    id: s.id,
    created: s.created.toISOString(),
    last_seen: s.lastSeenAt.toISOString(),
    expires: s.expiresAt.toISOString(),
    ip: s.ip,
    user_agent: s.userAgent,
  }));
}

export async function revokeSession(database: Database, actor: Actor, sessionId: string) {
  const gone = await repo.deleteSession(database.db, sessionId);
  if (!gone) throw new AppError('not-found', `No session with id '${sessionId}'.`);
  await recordAudit(database.db, actor, 'session.revoke', sessionId);
}

/** While no account exists: a one-time setup token (valid for an hour). Null once someone exists. */
export async function createSetupToken(database: Database): Promise<string | null> {
  if ((await repo.countUsers(database.db)) > 0) return null;
  const token = newToken();
  await repo.insertSetupToken(database.db, hashToken(token), SETUP_LINK_TTL_MS);
  return token;
}

/** Creates the first admin with a setup token, and signs them in. The token works once. */
export async function completeSetup(database: Database, config: Config, input: NewUser & { token: string; ip: string; userAgent?: string }): Promise<SignedIn> {
  checkUsername(input.username);
  checkPassword(input.password);
  if (!input.name.trim()) throw new AppError('bad-request', 'A display name is required.');
  const refused = () => new AppError('setup-link-invalid', 'This setup link was already used, has expired, or is unknown. Restart the server for a new one, or run: task-inbox create-admin');
  const passwordHash = await hashPassword(input.password);
  const actor: Actor = { kind: 'anonymous', name: input.username, ip: input.ip };
  // The token is spent only together with the account it creates.
  const user = await database.db.transaction(async (tx) => {
    if ((await repo.countUsers(tx)) > 0) throw refused();
    if (!(await repo.consumeSetupToken(tx, hashToken(input.token)))) throw refused();
    const row = await repo.insertUser(tx, { username: input.username, displayName: input.name.trim(), email: input.email || null, role: 'admin', passwordHash });
    await recordAudit(tx, actor, 'user.create', row.username, { role: 'admin', via: 'setup link' });
    return row;
  });
  return startSession(database, config, user, { kind: 'person', id: user.id, name: user.username, ip: input.ip }, input.ip, input.userAgent);
}

/**
 * A person changing their own password: the current one must be right. Every other session of
 * theirs ends; the one they are using stays.
 */
export async function changeOwnPassword(database: Database, actor: Actor, me: { id: string; sessionId: string }, current: string, password: string): Promise<void> {
  checkPassword(password);
  const user = await repo.findUserById(database.db, me.id);
  if (!user || !(await verifyPassword(user.passwordHash, current))) {
    throw new AppError('bad-request', 'The current password is not right.');
  }
  const passwordHash = await hashPassword(password);
  await database.db.transaction(async (tx) => {
    await repo.updateUser(tx, user.id, { passwordHash });
    for (const s of await repo.listSessionsOfUser(tx, user.id)) if (s.id !== me.sessionId) await repo.deleteSession(tx, s.id);
    await recordAudit(tx, actor, 'user.change-password', user.username);
  });
}

/** Ends one of the person's own sessions (another browser, a lost phone). */
export async function revokeOwnSession(database: Database, actor: Actor, userId: string, sessionId: string): Promise<void> {
  const mine = (await repo.listSessionsOfUser(database.db, userId)).some((s) => s.id === sessionId);
  if (!mine) throw new AppError('not-found', `You have no session with id '${sessionId}'.`);
  await revokeSession(database, actor, sessionId);
}
