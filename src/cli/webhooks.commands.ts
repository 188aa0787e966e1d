import type { Command } from 'commander';
import { loadSecretBox } from '../core/secrets/secret-box.js';
import * as webhooks from '../core/webhooks/index.js';
import { ListDeliveriesQuery } from '../contract/index.js';
import { AppError } from '../errors.js';
import { withDatabase, type CliIo } from './context.js';
import { printRows } from './output.js';

const cli = { kind: 'cli' } as const;

function wholeNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text)) throw new AppError('bad-request', `${flag} must be a whole number, not '${text}'.`);
  return Number(text);
}

export function registerWebhookCommands(program: Command, io: CliIo) {
  const key = program
    .command('webhook-key')
    .alias('webhook_key')
    .description('create (default), list, rotate or revoke the keys webhooks authenticate with');

  const printCreated = (created: webhooks.WebhookKeyInfo & { key: string }, json: boolean | undefined, verb: string) => {
    if (json) return io.out(JSON.stringify(created, null, 2) + '\n');
    io.out(created.key + '\n');
    io.err(
      `${verb} ${created.kind} webhook key ${created.id} for schema '${created.schema_name}'. ` +
        'Give it to your application server now: it is stored encrypted and never shown again.\n',
    );
  };

  key
    .command('create', { isDefault: true })
    .description("create a key for the latest version's hook_auth and print it once; older keys keep signing for the rotation grace period")
    .argument('<schema_name>', 'schema name')
    .option('--key <key>', 'use this secret instead of a generated one (kind standard: a whsec_ secret)')
    .option('--keylen <bytes>', 'random bytes in a generated key (at least 24)', '24')
    .option('--json', 'machine-readable output')
    .action(async (schemaName: string, opts: { key?: string; keylen: string; json?: boolean }) => {
      const keyBytes = wholeNumber('--keylen', opts.keylen);
      const created = await withDatabase(io, (db, config) =>
        webhooks.createWebhookKey(db, loadSecretBox(config), { schemaName, key: opts.key, keyBytes, graceMs: config.webhookRotationGraceMs }),
      );
      printCreated(created, opts.json, 'Created');
    });

  key
    .command('rotate')
    .description("replace a schema's webhook key; for kind standard the old one keeps signing for WEBHOOK_ROTATION_GRACE, for head the new key is sent at once")
    .argument('<schema_name>', 'schema name')
    .option('--key <key>', 'use this secret instead of a generated one')
    .option('--keylen <bytes>', 'random bytes in the new key (at least 24)', '24')
    .option('--json', 'machine-readable output')
    .action(async (schemaName: string, opts: { key?: string; keylen: string; json?: boolean }) => {
      const keyBytes = wholeNumber('--keylen', opts.keylen);
      const created = await withDatabase(io, (db, config) =>
        webhooks.createWebhookKey(db, loadSecretBox(config), { schemaName, key: opts.key, keyBytes, graceMs: config.webhookRotationGraceMs, requireExisting: true }),
      );
      printCreated(created, opts.json, 'Rotated to');
    });

  key
    .command('list')
    .description('list webhook keys (never the keys themselves)')
    .argument('[schema_name]', 'only this schema')
    .option('--json', 'machine-readable output')
    .action(async (schemaName: string | undefined, opts: { json?: boolean }) => {
      const keys = await withDatabase(io, (db) => webhooks.listWebhookKeys(db, schemaName));
      printRows(
        io,
        keys as unknown as Record<string, unknown>[],
        { ID: 'id', SCHEMA: 'schema_name', KIND: 'kind', PREFIX: 'prefix', CREATED: 'created', EXPIRES: 'expires', REVOKED: 'revoked' },
        { json: opts.json, empty: 'No webhook keys. Create one with: task-inbox webhook_key SCHEMA_NAME' },
      );
    });

  key
    .command('revoke')
    .description('revoke a webhook key at once')
    .argument('<key>', "the key's id or prefix")
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: { json?: boolean }) => {
      const revoked = await withDatabase(io, (db) => webhooks.revokeWebhookKey(db, ref));
      if (opts.json) return io.out(JSON.stringify(revoked, null, 2) + '\n');
      io.out(`Revoked webhook key ${revoked.id} of schema '${revoked.schema_name}'.\n`);
    });

  const deliveries = program.command('deliveries').description('the webhook delivery log: list (default), show, redeliver');

  deliveries
    .command('list', { isDefault: true })
    .description('list deliveries, newest first')
    .option('--task <id>', 'only this task')
    .option('--schema <name>', 'only this schema')
    .option('--status <status>', 'pending, delivered, failed, dead or paused')
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'machine-readable output')
    .action(async (opts: { task?: string; schema?: string; status?: string; limit: string; json?: boolean }) => {
      // The same checks as the API's query string.
      const parsed = ListDeliveriesQuery.safeParse({ task: opts.task, schema: opts.schema, status: opts.status, limit: opts.limit });
      if (!parsed.success) {
        const flag = (p: PropertyKey | undefined) => `--${String(p)}`;
        throw new AppError('bad-request', parsed.error.issues.map((i) => `${flag(i.path[0])}: ${i.message}`).join('; '));
      }
      const page = await withDatabase(io, (db) => webhooks.listDeliveries(db, cli, parsed.data));
      printRows(
        io,
        page.deliveries as unknown as Record<string, unknown>[],
        { ID: 'id', CREATED: 'created', MODE: 'mode', SCHEMA: 'schema_name', TASK: 'task_id', STATUS: 'status', ATTEMPTS: 'attempts', LAST: 'last_status', ERROR: 'last_error', URL: 'url' },
        { json: opts.json, empty: 'No deliveries.' },
      );
    });

  deliveries
    .command('show')
    .description('one delivery with its attempts and payload')
    .argument('<id>', 'delivery id')
    .option('--json', 'machine-readable output')
    .action(async (idText: string, opts: { json?: boolean }) => {
      const id = wholeNumber('the delivery id', idText)!;
      const d = await withDatabase(io, (db) => webhooks.getDelivery(db, cli, id));
      if (opts.json) return io.out(JSON.stringify(d, null, 2) + '\n');
      const x = d.delivery;
      io.out(`Delivery ${x.id} (${x.webhook_id}), ${x.mode}, ${x.status} after ${x.attempts} attempt(s), to ${x.url}\n`);
      printRows(io, d.attempts as unknown as Record<string, unknown>[], { TIME: 'created', STATUS: 'status_code', MS: 'latency_ms', ERROR: 'error', ANSWER: 'response_body' }, { empty: 'No attempts yet.' });
      io.out(`Payload: ${JSON.stringify(d.payload)}\n`);
    });

  deliveries
    .command('redeliver')
    .description('send a delivery again, or every failed/dead/paused one since a time')
    .argument('[id]', 'delivery id')
    .option('--failed-since <time>', 'ISO 8601 time, e.g. 2026-11-29T00:00:00Z')
    .option('--schema <name>', 'with --failed-since: only this schema')
    .action(async (idText: string | undefined, opts: { failedSince?: string; schema?: string }) => {
      if ((idText === undefined) === (opts.failedSince === undefined)) throw new AppError('bad-request', 'Give either a delivery id or --failed-since TIME.');
      if (idText !== undefined) {
        const id = wholeNumber('the delivery id', idText)!;
        await withDatabase(io, (db) => webhooks.redeliver(db, cli, id));
        return io.out(`Delivery ${id} is queued again; a running server or worker sends it now.\n`);
      }
      const since = new Date(opts.failedSince!);
      if (Number.isNaN(since.getTime())) throw new AppError('bad-request', `--failed-since must be a date-time, not '${opts.failedSince}'.`);
      const n = await withDatabase(io, (db) => webhooks.redeliverFailedSince(db, cli, since, opts.schema));
      io.out(`${n} deliver${n === 1 ? 'y is' : 'ies are'} queued again.\n`);
    });

  const endpoints = program.command('endpoints').description('receivers that answered 410 Gone: list (default) or enable again');
  endpoints
    .command('list', { isDefault: true })
    .description('endpoints nothing is sent to until re-enabled')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const rows = await withDatabase(io, (db) => webhooks.listDisabledEndpoints(db));
      printRows(io, rows, { URL: 'url', DISABLED: 'disabled', REASON: 'reason' }, { json: opts.json, empty: 'No disabled endpoints.' });
    });
  endpoints
    .command('enable')
    .description('send to this endpoint again; its paused deliveries resume')
    .argument('<url>', 'the endpoint URL')
    .action(async (url: string) => {
      await withDatabase(io, (db) => webhooks.enableEndpoint(db, url));
      io.out(`Enabled ${url}; its paused deliveries are queued again.\n`);
    });
}
