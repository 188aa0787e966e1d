import { createHash, randomBytes } from 'node:crypto';
import argon2 from 'argon2';
import { AppError } from '../../errors.js';

export const MIN_PASSWORD_LENGTH = 10;
/** Failed sign-ins allowed per account and per address within the window. */
export const SIGN_IN_LIMIT = 10;
export const SIGN_IN_WINDOW_MS = 15 * 60_000;
export const SETUP_LINK_TTL_MS = 60 * 60_000;

/** A signed-in person. */
export interface PersonPrincipal {
  kind: 'person';
  id: string;
  username: string;
  name: string;
  role: 'admin' | 'member';
  sessionId: string;
}

export interface PublicUser {
  id: string;
  username: string;
  name: string;
  email: string | null;
  role: 'admin' | 'member';
  active: boolean;
  created: string;
}

export function userRowToPublic(row: { id: string; username: string; displayName: string; email: string | null; role: 'admin' | 'member'; active: boolean; created: Date }): PublicUser {
  return { id: row.id, username: row.username, name: row.displayName, email: row.email, role: row.role, active: row.active, created: row.created.toISOString() };
}

/** ≥ 128 random bits, URL-safe; the cookie or link carries it, the database only its hash. */
export const newToken = (): string => randomBytes(32).toString('base64url');
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export function checkPassword(password: string) {
  if (password.length < MIN_PASSWORD_LENGTH) throw new AppError('bad-request', `A password must be at least ${MIN_PASSWORD_LENGTH} characters long.`);
}

export function checkUsername(username: string) {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/.test(username)) {
    throw new AppError('bad-request', 'A username is 1–64 letters, digits, and . _ @ - (starting with a letter or digit).');
  }
}

export const hashPassword = (password: string): Promise<string> => argon2.hash(password, { type: argon2.argon2id });
export const verifyPassword = (hash: string, password: string): Promise<boolean> => argon2.verify(hash, password).catch(() => false);

/** Verified against when the username is unknown, so both cases take the same time. */
let dummyHash: Promise<string> | undefined;
export const timingDummyHash = (): Promise<string> => (dummyHash ??= hashPassword(randomBytes(16).toString('hex')));
