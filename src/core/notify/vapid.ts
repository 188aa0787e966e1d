import { createPrivateKey } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import webpush from 'web-push';
import type { Config } from '../../config.js';
import type { Executor } from '../../db/index.js';
import type { SecretBox } from '../secrets/secret-box.js';
import * as repo from './notify.repo.js';

/** The web push application server keys (raw, base64url) and the `sub` claim. */
export interface VapidKeys {
  publicKey: string;
  privateKey: string;
  subject: string;
  /** Where they came from, for `doctor` and the log. */
  source: 'VAPID_PATH' | 'database';
}

const KEY_NAME = 'vapid';

/**
 * Reads the earlier version's files: `private_key.pem` (a P-256 key, PKCS#8 or SEC1) and
 * `claims.json` (`{"sub": "mailto:…"}`).
 */
export function readVapidFolder(folder: string): { publicKey: string; privateKey: string; subject: string | undefined } {
  const jwk = createPrivateKey(readFileSync(path.join(folder, 'private_key.pem'), 'utf8')).export({ format: 'jwk' });
  if (jwk.crv !== 'P-256' || !jwk.d || !jwk.x || !jwk.y) throw new Error(`${path.join(folder, 'private_key.pem')} is not a P-256 (prime256v1) private key`);
  const publicKey = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]).toString('base64url');
  const claimsFile = path.join(folder, 'claims.json');
  let subject: string | undefined;
  if (existsSync(claimsFile)) {
    const claims = JSON.parse(readFileSync(claimsFile, 'utf8')) as { sub?: unknown };
    if (typeof claims.sub === 'string') subject = claims.sub;
  }
  return { publicKey, privateKey: jwk.d, subject };
}

export function defaultSubject(config: Config): string {
  return config.vapidSubject ?? config.publicUrl ?? 'mailto:task-inbox@localhost';
}

/**
 * The keys from VAPID_PATH, or the pair kept in the database — generated on first use. Instances
 * starting together each try to insert theirs; the first wins and all read it back.
 */
export async function loadVapidKeys(db: Executor, config: Config, secrets: SecretBox): Promise<VapidKeys> {
  if (config.vapidPath) {
    const files = readVapidFolder(config.vapidPath);
    return { publicKey: files.publicKey, privateKey: files.privateKey, subject: files.subject ?? defaultSubject(config), source: 'VAPID_PATH' };
  }
  let row = await repo.findServerKey(db, KEY_NAME);
  if (!row) {
    const fresh = webpush.generateVAPIDKeys();
    await repo.insertServerKey(db, { name: KEY_NAME, publicValue: fresh.publicKey, secretEnc: secrets.encrypt(fresh.privateKey) });
    row = await repo.findServerKey(db, KEY_NAME);
  }
  return { publicKey: row!.publicValue, privateKey: secrets.decrypt(row!.secretEnc), subject: defaultSubject(config), source: 'database' };
}
