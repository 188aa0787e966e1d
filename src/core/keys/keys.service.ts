import type { Database } from '../../db/index.js';
import { cliActor, recordAudit, type Actor } from '../audit/audit.js';
import { AppError, SchemaNotFound } from '../../errors.js';
import { schemasRepo } from '../schemas/index.js';
import { displayPrefix, generateApiKey, hashApiKey, MIN_KEY_BYTES, DEFAULT_KEY_BYTES, type ApiKeyPrincipal } from './keys.js';
import * as repo from './keys.repo.js';

export interface ApiKeyInfo {
  id: string;
  name: string | null;
  prefix: string;
  schema_name: string | null;
  created: string;
  last_used: string | null;
  revoked: string | null;
}

/** Creates an inbound API key. The returned `key` is the only time it is ever visible. */
export async function createApiKey(
  database: Database,
  opts: { name?: string | null; schemaName?: string | null; keyBytes?: number } = {},
  actor: Actor = cliActor,
): Promise<ApiKeyInfo & { key: string }> {
  const bytes = opts.keyBytes ?? DEFAULT_KEY_BYTES;
  if (!Number.isInteger(bytes) || bytes < MIN_KEY_BYTES || bytes > 256) {
    throw new AppError('bad-request', `The key length must be a whole number of random bytes from ${MIN_KEY_BYTES} (128 bits) to 256.`);
  }
  if (opts.schemaName && !(await schemasRepo.findSchemaByName(database.db, opts.schemaName))) {
    throw new SchemaNotFound(opts.schemaName);
  }
  const key = generateApiKey(bytes);
  const row = await repo.insertApiKey(database.db, {
    name: opts.name || null,
    prefix: displayPrefix(key),
    keyHash: hashApiKey(key),
    schemaName: opts.schemaName || null,
  });
  await recordAudit(database.db, actor, 'api-key.create', row.name ?? row.prefix, { id: row.id, prefix: row.prefix, schema: row.schemaName });
  return { ...apiKeyRowToInfo(row), key };
}

export async function listApiKeys(database: Database): Promise<ApiKeyInfo[]> {
  return (await repo.listApiKeys(database.db)).map(apiKeyRowToInfo);
}

/** Revokes a key given its id, its name or its displayed prefix. */
export async function revokeApiKey(database: Database, ref: string, actor: Actor = cliActor): Promise<ApiKeyInfo> {
  const matches = (await repo.listApiKeys(database.db)).filter((k) => k.id === ref || k.name === ref || k.prefix === ref);
  if (matches.length === 0) throw new AppError('not-found', `No API key with id, name or prefix '${ref}'. List them with: task-inbox api-key list`);
  if (matches.length > 1) throw new AppError('bad-request', `'${ref}' matches ${matches.length} keys; give the key's id instead.`);
  await repo.revokeApiKeyById(database.db, matches[0]!.id);
  await recordAudit(database.db, actor, 'api-key.revoke', matches[0]!.name ?? matches[0]!.prefix, { id: matches[0]!.id, prefix: matches[0]!.prefix });
  const after = (await repo.listApiKeys(database.db)).find((k) => k.id === matches[0]!.id)!;
  return apiKeyRowToInfo(after);
}

/**
 * Checks an `api-key` header. Missing → 401; unknown or revoked → 403; no key on the server at
 * all → 501, because that is a setup step nobody has done yet.
 */
export async function authenticateApiKey(database: Database, header: string | undefined): Promise<ApiKeyPrincipal> {
  if (header === undefined || header === '') {
    if (!(await repo.anyApiKeyExists(database.db))) throw noKeysYet();
    throw new AppError('api-key-missing', "Send your API key in the 'api-key' header. Create one with: task-inbox api_key");
  }
  const row = await repo.findApiKeyByHash(database.db, hashApiKey(header));
  if (!row || row.revoked) {
    if (!row && !(await repo.anyApiKeyExists(database.db))) throw noKeysYet();
    throw new AppError('api-key-invalid', row ? 'This API key was revoked. Create a new one with: task-inbox api_key' : 'This API key is not known to the server. Check for a typo, or create one with: task-inbox api_key');
  }
  await recordApiKeyUse(database, row.id);
  return { kind: 'api-key', id: row.id, name: row.name, schemaName: row.schemaName };
}

/** Stamps the key's last use, at most once a minute per process (see touchDue). */
export async function recordApiKeyUse(database: Database, id: string): Promise<void> {
  if (touchDue(database, id)) await repo.touchApiKey(database.db, id);
}

/** How often this process stamps a key's use; the stamp's own condition also keeps to once a minute. */
const TOUCH_INTERVAL_MS = 60_000;
const touchedAt = new WeakMap<Database, Map<string, number>>();

/**
 * Whether this process should stamp the key's last use now. Within a minute of its previous stamp
 * the UPDATE would change no row, so a busy key skips the statement (and its round trip).
 */
function touchDue(database: Database, id: string): boolean {
  let seen = touchedAt.get(database);
  if (!seen) touchedAt.set(database, (seen = new Map()));
  const now = Date.now();
  const last = seen.get(id);
  if (last !== undefined && now - last < TOUCH_INTERVAL_MS) return false;
  seen.set(id, now);
  return true;
}

const noKeysYet = () =>
  new AppError('no-api-keys', 'This server has no API key yet, so it cannot accept API calls. An administrator creates one with: task-inbox api_key');

type KeyRow = Awaited<ReturnType<typeof repo.listApiKeys>>[number];

function apiKeyRowToInfo(row: KeyRow): ApiKeyInfo {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    schema_name: row.schemaName,
    created: row.created.toISOString(),
    last_used: row.lastUsedAt?.toISOString() ?? null,
    revoked: row.revokedAt?.toISOString() ?? null,
  };
}
