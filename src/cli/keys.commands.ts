import { Command } from 'commander';
import { createApiKey, listApiKeys, revokeApiKey } from '../core/keys/index.js';
import { AppError } from '../errors.js';
import { withDatabase, type CliIo } from './context.js';
import { printRows } from './output.js';

export function registerKeyCommands(program: Command, io: CliIo) {
  const apiKey = program
    .command('api-key')
    .alias('api_key')
    .description('create (default), list or revoke inbound API keys');

  apiKey
    .command('create', { isDefault: true })
    .description('create an API key and print it once; only its hash is stored')
    .option('--schema-name <name>', 'limit the key to this schema')
    .option('--name <name>', 'a name to recognise the key by')
    .option('--keylen <bytes>', 'random bytes in the key (at least 16)', '24')
    .option('--json', 'machine-readable output')
    .action(async (opts: { schemaName?: string; name?: string; keylen: string; json?: boolean }) => {
      const keyBytes = Number(opts.keylen);
      if (!/^\d+$/.test(opts.keylen)) throw new AppError('bad-request', `--keylen must be a whole number, not '${opts.keylen}'.`);
      const created = await withDatabase(io, (db) => createApiKey(db, { name: opts.name, schemaName: opts.schemaName, keyBytes }));
      if (opts.json) return io.out(JSON.stringify(created, null, 2) + '\n');
      io.out(created.key + '\n');
      io.err(
        `Created API key ${created.id}${created.name ? ` '${created.name}'` : ''}${created.schema_name ? ` for schema '${created.schema_name}'` : ''}.\n` +
          'Copy it now: it is stored only as a hash and cannot be shown again. Send it in the api-key header.\n',
      );
    });

  apiKey
    .command('list')
    .description('list API keys (never the keys themselves)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const keys = await withDatabase(io, (db) => listApiKeys(db));
      printRows(
        io,
        keys as unknown as Record<string, unknown>[],
        { ID: 'id', NAME: 'name', PREFIX: 'prefix', SCHEMA: 'schema_name', CREATED: 'created', 'LAST USED': 'last_used', REVOKED: 'revoked' },
        { json: opts.json, empty: 'No API keys. Create one with: task-inbox api_key' },
      );
    });

  apiKey
    .command('revoke')
    .description('revoke an API key: requests with it are refused from now on')
    .argument('<key>', "the key's id, name or prefix")
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: { json?: boolean }) => {
      const key = await withDatabase(io, (db) => revokeApiKey(db, ref));
      if (opts.json) return io.out(JSON.stringify(key, null, 2) + '\n');
      io.out(`Revoked API key ${key.id}${key.name ? ` '${key.name}'` : ''} (${key.prefix}…).\n`);
    });
}
