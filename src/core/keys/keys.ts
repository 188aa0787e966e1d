import { createHash, randomBytes } from 'node:crypto';

export const API_KEY_PREFIX = 'ti_';
/** Random bytes in a generated key: 192 bits. */
export const DEFAULT_KEY_BYTES = 24;
/** At least 128 random bits. */
export const MIN_KEY_BYTES = 16;

/** A new inbound API key: `ti_` and URL-safe base64 of `bytes` random bytes. */
export function generateApiKey(bytes = DEFAULT_KEY_BYTES): string {
  return API_KEY_PREFIX + randomBytes(bytes).toString('base64url');
}

/** Keys are stored only as this hash; high-entropy keys need no slow hash. */
export const hashApiKey = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');

/** The part of a key shown in listings, enough to tell keys apart and useless to an attacker. */
export const displayPrefix = (key: string): string => key.slice(0, API_KEY_PREFIX.length + 6);

/** Who an authenticated request comes from, when it carries an API key. */
export interface ApiKeyPrincipal {
  kind: 'api-key';
  id: string;
  name: string | null;
  /** When set, the key reaches only this schema's tasks. */
  schemaName: string | null;
}
