import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config.js';

/** Encrypts small secrets for storage: AES-256-GCM under a key derived from SECRET_KEY. */
export interface SecretBox {
  encrypt(plain: string): string;
  decrypt(sealed: string): string;
  /** An HMAC-SHA256 of `data` under a key of its own for `purpose` (base64url, 22 characters: 128 bits). */
  sign(purpose: string, data: string): string;
}

const VERSION = 'v1';

export function createSecretBox(secretKey: string): SecretBox {
  const key = Buffer.from(hkdfSync('sha256', secretKey, 'task-inbox', 'secrets-at-rest v1', 32));
  const macKeys = new Map<string, Buffer>();
  const macKey = (purpose: string) => {
    let k = macKeys.get(purpose);
    if (!k) macKeys.set(purpose, (k = Buffer.from(hkdfSync('sha256', secretKey, 'task-inbox', `mac ${purpose} v1`, 32))));
    return k;
  };
  return {
    sign(purpose, data) {
      return createHmac('sha256', macKey(purpose)).update(data).digest().subarray(0, 16).toString('base64url');
    },
    encrypt(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
    },
    decrypt(sealed) {
      const [version, data] = sealed.split(':');
      if (version !== VERSION || !data) throw new Error('Unknown secret format');
      const raw = Buffer.from(data, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    },
  };
}

/** Where the embedded data folder keeps the key generated when SECRET_KEY is unset. */
export const secretKeyFile = (dataDir: string): string => path.join(dataDir, 'secret.key');

/**
 * The configured SECRET_KEY, or in embedded mode the one generated at first use and kept in the
 * data folder (mode 0600), beside the database it protects.
 */
export function loadSecretBox(config: Config): SecretBox {
  if (config.secretKey) return createSecretBox(config.secretKey);
  if (config.databaseUrl) throw new Error('SECRET_KEY is required with DATABASE_URL');
  const file = secretKeyFile(config.dataDir);
  if (!existsSync(file)) {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  return createSecretBox(readFileSync(file, 'utf8').trim());
}
