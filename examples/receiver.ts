/**
 * A minimal application-server webhook receiver for task-inbox (see docs/webhooks.md).
 *
 *   TI_HOOK_KIND=standard TI_HOOK_KEY=whsec_… npx tsx examples/receiver.ts
 *   TI_HOOK_KIND=head TI_HOOK_KEY=… TI_HOOK_HEADER=ti-key npx tsx examples/receiver.ts
 *
 * Environment:
 *   TI_HOOK_KIND    `head` or `standard`: the schema's hook_auth.kind (default standard)
 *   TI_HOOK_KEY     the webhook key printed by `task-inbox webhook_key SCHEMA_NAME`; during a key
 *                   rotation, several keys separated by spaces (any of them is accepted)
 *   TI_HOOK_HEADER  `head` only: the header carrying the key, hook_auth.val (default ti-key)
 *   PORT            default 5001; HOST default 127.0.0.1
 *
 * It listens on POST /api/v1/tihook, checks the key or the signature (401 when wrong), drops
 * deliveries whose webhook-id it has already seen, prints the event and answers 204. In sync
 * mode the answer is the vote: anything but 2xx refuses the person's change.
 *
 * Node's standard library, plus the `standardwebhooks` npm package for kind `standard`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const kind = process.env.TI_HOOK_KIND ?? 'standard';
const keys = (process.env.TI_HOOK_KEY ?? '').split(/\s+/).filter(Boolean);
const headerName = (process.env.TI_HOOK_HEADER ?? 'ti-key').toLowerCase();
const port = Number(process.env.PORT ?? 5001);
const host = process.env.HOST ?? '127.0.0.1';
const PATH = '/api/v1/tihook';
const MAX_BODY = 1024 * 1024;

if (kind !== 'head' && kind !== 'standard') {
  console.error(`TI_HOOK_KIND must be 'head' or 'standard', not '${kind}'.`);
  process.exit(2);
}
if (keys.length === 0) {
  console.error('Set TI_HOOK_KEY to the webhook key printed by `task-inbox webhook_key SCHEMA_NAME`.');
  process.exit(2);
}
if (kind === 'standard' && !keys.every((k) => /^whsec_[A-Za-z0-9+/]+={0,2}$/.test(k))) {
  console.error("For kind 'standard', TI_HOOK_KEY must be the whsec_… secret printed by `task-inbox webhook_key`.");
  process.exit(2);
}
const verifiers = kind === 'standard' ? keys.map((k) => new Webhook(k)) : [];

/** The task-inbox payload, as far as this receiver reads it. */
interface StateChanged {
  event: string;
  task: { id: string; state: string | null; resolved: boolean };
  ttype: string;
  type: { schema_name: string; name: string; semver: string; version: number };
  previous: { state: string | null; resolved: boolean };
  history_id: number;
  editor: { id: string; name: string } | null;
  meta: Record<string, unknown> | null;
}

/** webhook-ids already handled (a retry or redelivery reuses the id). Keep these in your database. */
const seen = new Set<string>();
const SEEN_MAX = 10_000;

function remember(id: string) {
  seen.add(id);
  if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value!);
}

/** Compares without leaking where the strings differ (hashing first makes the lengths equal). */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

function single(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

/** Checks the request's authentication; returns the payload, or null when it is not task-inbox's. */
function authenticate(req: http.IncomingMessage, body: string): StateChanged | null {
  if (kind === 'head') {
    const given = single(req.headers[headerName]);
    if (!given || !keys.some((k) => sameSecret(given, k))) return null;
    return JSON.parse(body) as StateChanged;
  }
  const headers = {
    'webhook-id': single(req.headers['webhook-id']),
    'webhook-timestamp': single(req.headers['webhook-timestamp']),
    'webhook-signature': single(req.headers['webhook-signature']),
  };
  for (const wh of verifiers) {
    try {
      // Checks the HMAC over `{id}.{timestamp}.{body}` and that the timestamp is within 5 minutes.
      return wh.verify(body, headers) as StateChanged;
    } catch {
      // not signed with this key: try the next one
    }
  }
  return null;
}

/**
 * Act on the decision here (delete the account, publish the post, …). Throwing refuses it: in
 * sync mode the person's change is then not made; in async mode task-inbox retries.
 */
function handle(event: StateChanged, webhookId: string) {
  const { task, type, previous } = event;
  console.log(
    `${event.event} ${type.schema_name}/${event.ttype} task=${task.id} ` +
      `${previous.state ?? '(none)'} -> ${task.state ?? '(none)'}${task.resolved ? ' (resolved)' : ''} ` +
      `history_id=${event.history_id} webhook-id=${webhookId}`,
  );
}

function answer(res: http.ServerResponse, status: number, text?: string) {
  res.writeHead(status, text ? { 'content-type': 'text/plain; charset=utf-8' } : {});
  res.end(text);
}

const server = http.createServer((req, res) => {
  if (req.url?.split('?')[0] !== PATH) return answer(res, 404, 'not found\n');
  if (req.method !== 'POST') return answer(res, 405, 'POST only\n');
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  });
  req.on('end', () => {
    if (size > MAX_BODY) return answer(res, 413, 'too large\n');
    // Verify the exact bytes received: re-serialised JSON would not match the signature.
    const body = Buffer.concat(chunks).toString('utf8');
    const webhookId = single(req.headers['webhook-id']);
    let event: StateChanged | null;
    try {
      event = authenticate(req, body);
    } catch {
      return answer(res, 400, 'body is not JSON\n');
    }
    if (!event) {
      console.error(`rejected ${webhookId || '(no webhook-id)'}: ${kind === 'head' ? `wrong or missing ${headerName} header` : 'bad signature'}`);
      return answer(res, 401, kind === 'head' ? 'wrong webhook key\n' : 'bad signature\n');
    }
    if (webhookId && seen.has(webhookId)) {
      console.log(`duplicate ${webhookId}: already handled, ignored`);
      return answer(res, 204);
    }
    try {
      handle(event, webhookId);
    } catch (err) {
      // Non-2xx: in sync mode the person's change is not made; in async mode task-inbox retries.
      console.error(`failed ${webhookId}: ${String(err)}`);
      return answer(res, 500, 'could not handle the event\n');
    }
    if (webhookId) remember(webhookId);
    answer(res, 204);
  });
});

server.listen(port, host, () => {
  console.log(`task-inbox receiver (${kind}) listening on http://${host}:${port}${PATH}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
}
