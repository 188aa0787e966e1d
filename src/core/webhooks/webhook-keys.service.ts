import type { Database, Executor } from '../../db/index.js';
import { cliActor, recordAudit, type Actor } from '../audit/audit.js';
import { AppError, SchemaNotFound } from '../../errors.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { HookAuth } from '../schemas/index.js';
import { schemasRepo } from '../schemas/index.js';
import { stableStringify } from '../stable-json.js';
import { generateHeaderKey, generateStandardSecret, isStandardSecret } from './signature.js';
import * as repo from './webhook-keys.repo.js';

/** Keys belong to a (schema, hook_auth) pair: this is the pair's hook_auth part. */
export const authFingerprint = (auth: HookAuth): string => stableStringify(auth.kind === 'standard' ? { kind: auth.kind, args: auth.args } : auth);

export interface WebhookKeyInfo {
  id: string;
  schema_name: string;
  kind: 'head' | 'standard';
  prefix: string;
  created: string;
  /** Set after a rotation: the key signs beside its successor until then. */
  expires: string | null;
  revoked: string | null;
}

const MIN_BYTES = 24;

async function latestHookAuth(db: Executor, schemaName: string) {
  const schema = await schemasRepo.findSchemaByName(db, schemaName);
  if (!schema) throw new SchemaNotFound(schemaName);
  const latest = await schemasRepo.findLatestVersion(db, schema.id);
  if (!latest?.hookAuth) {
    throw new AppError(
      'bad-request',
      `The latest version of schema '${schemaName}' has no hook_auth, so its webhooks need no key. Add hook_auth (kind: head or standard) to the schema file and install it first.`,
    );
  }
  return { schema, auth: latest.hookAuth };
}

/**
 * Creates a webhook key for the latest version's hook_auth, generated or given. Keys the pair
 * already had keep signing for `graceMs` beside the new one (that is what a rotation is).
 */
export async function createWebhookKey(
  database: Database,
  secrets: SecretBox,
  opts: { schemaName: string; key?: string; keyBytes?: number; graceMs: number; requireExisting?: boolean },
  actor: Actor = cliActor,
): Promise<WebhookKeyInfo & { key: string }> {
  const bytes = opts.keyBytes ?? MIN_BYTES;
  if (!Number.isInteger(bytes) || bytes < MIN_BYTES || bytes > 256) {
    throw new AppError('bad-request', `The key length must be a whole number of random bytes from ${MIN_BYTES} to 256.`);
  }
  return database.db.transaction(async (tx) => {
    const { schema, auth } = await latestHookAuth(tx, opts.schemaName);
    const fingerprint = authFingerprint(auth);
    if (opts.requireExisting && (await repo.findLiveKeys(tx, schema.id, fingerprint)).length === 0) {
      throw new AppError('not-found', `Schema '${opts.schemaName}' has no webhook key to rotate. Create one with: task-inbox webhook_key ${opts.schemaName}`);
    }
    let key = opts.key;
    if (key !== undefined) {
      if (auth.kind === 'standard' && !isStandardSecret(key)) {
        throw new AppError('bad-request', "A key for hook_auth kind 'standard' must be a Standard Webhooks secret: 'whsec_' followed by base64 of at least 16 bytes.");
      }
      if (auth.kind === 'head' && key.length < 16) throw new AppError('bad-request', 'A webhook key must be at least 16 characters long.');
    } else {
      key = auth.kind === 'standard' ? generateStandardSecret(bytes) : generateHeaderKey(bytes);
    }
    await repo.expireLiveKeys(tx, schema.id, fingerprint, opts.graceMs);
    const row = await repo.insertWebhookKey(tx, {
      schemaId: schema.id,
      authFingerprint: fingerprint,
      kind: auth.kind,
      secretEnc: secrets.encrypt(key),
      prefix: auth.kind === 'standard' ? key.slice(0, 10) : key.slice(0, 4),
    });
    await repo.wakeDeliveriesWaitingForKey(tx, schema.id);
    await recordAudit(tx, actor, opts.requireExisting ? 'webhook-key.rotate' : 'webhook-key.create', schema.name, { id: row.id, kind: auth.kind, prefix: row.prefix, given: opts.key !== undefined });
    return { ...keyRowToInfo({ ...row, schemaName: schema.name }), key };
  });
}

export async function listWebhookKeys(database: Database, schemaName?: string): Promise<WebhookKeyInfo[]> {
  let schemaId: number | undefined;
  if (schemaName !== undefined) {
    const schema = await schemasRepo.findSchemaByName(database.db, schemaName);
    if (!schema) throw new SchemaNotFound(schemaName);
    schemaId = schema.id;
  }
  return (await repo.listWebhookKeys(database.db, schemaId)).map(keyRowToInfo);
}

/** Revokes a webhook key (by id or prefix): it stops signing at once. */
export async function revokeWebhookKey(database: Database, ref: string, actor: Actor = cliActor): Promise<WebhookKeyInfo> {
  const matches = (await repo.listWebhookKeys(database.db)).filter((k) => k.id === ref || k.prefix === ref);
  if (matches.length === 0) throw new AppError('not-found', `No webhook key with id or prefix '${ref}'. List them with: task-inbox webhook-key list`);
  if (matches.length > 1) throw new AppError('bad-request', `'${ref}' matches ${matches.length} webhook keys; give the key's id instead.`);
  await repo.revokeWebhookKeyById(database.db, matches[0]!.id);
  await recordAudit(database.db, actor, 'webhook-key.revoke', matches[0]!.schemaName, { id: matches[0]!.id, prefix: matches[0]!.prefix });
  return (await listWebhookKeys(database)).find((k) => k.id === matches[0]!.id)!;
}

/** The secrets that sign for this pair now, newest first (empty: no usable key). */
export async function liveSecrets(db: Executor, secrets: SecretBox, schemaId: number, auth: HookAuth): Promise<string[]> {
  const rows = await repo.findLiveKeys(db, schemaId, authFingerprint(auth));
  return rows.map((r) => secrets.decrypt(r.secretEnc));
}

/**
 * The secrets that sign now for several (schema, hook_auth) pairs, read in one query: a function
 * from a pair to its secrets, newest first (empty: no usable key).
 */
export async function liveSecretsOfPairs(db: Executor, secrets: SecretBox, pairs: { schemaId: number; auth: HookAuth }[]): Promise<(schemaId: number, auth: HookAuth) => string[]> {
  const rows = await repo.findLiveKeysOfSchemas(db, [...new Set(pairs.map((p) => p.schemaId))]);
  const bySchema = new Map<number, typeof rows>();
  for (const r of rows) {
    const list = bySchema.get(r.schemaId);
    if (list) list.push(r);
    else bySchema.set(r.schemaId, [r]);
  }
  const decrypted = new Map<string, string>();
  const decrypt = (r: (typeof rows)[number]) => {
    let key = decrypted.get(r.id);
    if (key === undefined) decrypted.set(r.id, (key = secrets.decrypt(r.secretEnc)));
    return key;
  };
  return (schemaId, auth) => {
    const fingerprint = authFingerprint(auth);
    return (bySchema.get(schemaId) ?? []).filter((r) => r.authFingerprint === fingerprint).map(decrypt);
  };
}

function keyRowToInfo(row: {
  id: string;
  schemaName: string;
  kind: 'head' | 'standard';
  prefix: string;
  created: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
}): WebhookKeyInfo {
  return {
    id: row.id,
    schema_name: row.schemaName,
    kind: row.kind,
    prefix: row.prefix,
    created: row.created.toISOString(),
    expires: row.expiresAt?.toISOString() ?? null,
    revoked: row.revokedAt?.toISOString() ?? null,
  };
}
