import type { Config } from '../../config.js';
import type { WebhookPayload } from '../../contract/index.js';
import type { Database, Executor } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { KeyedLock } from '../keyed-lock.js';
import { WakeSignal } from '../wake-signal.js';
import { metrics } from '../metrics.js';
import { schemasRepo } from '../schemas/index.js';
import type { SecretBox } from '../secrets/secret-box.js';
import * as deliveries from './deliveries.repo.js';
import { postWebhook, type SendResult } from './sender.js';
import { newWebhookId } from './signature.js';
import { liveSecrets } from './webhook-keys.service.js';
import { WAITING_FOR_KEY } from './webhook-keys.repo.js';
import { retryDelay, webhookHeaders, type HookTarget } from './webhooks.js';

/** Response bodies kept in the delivery log. */
const LOG_BODY_BYTES = 20 * 1024;
/** Of which a refused sync change quotes this much to the person. */
const QUOTE_BYTES = 500;
/** Async deliveries wait this long for an answer. */
const ASYNC_TIMEOUT_MS = 15_000;
/** How often a delivery waiting for a webhook key looks again (a new key also wakes it). */
const KEY_WAIT_MS = 60_000;

export interface WebhookDeps {
  database: Database;
  secrets: SecretBox;
  config: Config;
}

/** Sends webhooks: sync ones while the person waits, async ones through the outbox. */
export class Webhooks extends WakeSignal {
  /** Serialises changes of one task within this process (a sync webhook is sent outside any transaction). */
  readonly taskLock = new KeyedLock();
  private readonly stopping = new AbortController();

  constructor(private readonly deps: WebhookDeps) {
    super();
  }

  private async secretsFor(db: Executor, target: Pick<HookTarget, 'auth' | 'schemaId'>): Promise<string[] | null> {
    if (!target.auth) return [];
    const secrets = await liveSecrets(db, this.deps.secrets, target.schemaId, target.auth);
    return secrets.length > 0 ? secrets : null;
  }

  /**
   * Sends a sync webhook for a change about to be written, and logs the attempt. Throws when the
   * receiver did not accept, so the change is never written. On success, returns a function to
   * call if the change then could not be written after all, which marks the logged delivery so.
   */
  async deliverSync(target: HookTarget, payload: WebhookPayload, taskId: string): Promise<{ changeFailed(reason: string): Promise<void> }> {
    const db = this.deps.database.db;
    const secrets = await this.secretsFor(db, target);
    if (secrets === null) {
      throw new AppError(
        'webhook-key-missing',
        `Schema '${target.schemaName}' sends webhooks (hook_auth kind '${target.auth!.kind}') but has no webhook key, so the change was not made. An administrator creates one with: task-inbox webhook_key ${target.schemaName}`,
      );
    }
    const webhookId = newWebhookId();
    const body = JSON.stringify(payload);
    const headers = webhookHeaders(target.auth, secrets, webhookId, Math.floor(Date.now() / 1000), body);
    const result = await postWebhook({ url: target.url, body, headers, timeoutMs: this.deps.config.webhookTimeoutMs, maxBody: LOG_BODY_BYTES, signal: this.stopping.signal });
    countDelivery('sync', result);
    // Logged before the change is written, so an accepted attempt is on record whatever follows.
    const row = await db.transaction(async (tx) => {
      const inserted = await deliveries.insertDelivery(tx, {
        webhookId,
        mode: 'sync',
        taskId,
        historyId: result.ok ? payload.history_id : null,
        schemaId: target.schemaId,
        versionId: target.versionId,
        url: target.url,
        payload: body,
        status: result.ok ? 'delivered' : 'failed',
        attempts: 1,
        lastStatus: result.status,
        lastError: result.error,
        deliveredAt: result.ok ? new Date() : null,
      });
      await deliveries.insertAttempt(tx, attemptOf(inserted.id, result));
      return inserted;
    });
    if (!result.ok) {
      const answer = result.status !== null ? `answered ${result.status}` : `could not be reached (${result.error})`;
      const quote = result.body ? firstBytes(result.body, QUOTE_BYTES) : null;
      const quoted = quote?.trim() ? `: ${quote.trimEnd()}` : '';
      throw new AppError('webhook-refused', `The application server at ${target.url} ${answer}${quoted}. The change was not made.`, {
        receiver: { status: result.status, body: quote, error: result.error },
      });
    }
    return {
      changeFailed: (reason) =>
        deliveries.updateDelivery(db, row.id, { status: 'failed', historyId: null, lastError: `accepted, but the change was not written: ${reason}` }),
    };
  }

  /** Writes an async delivery in the state change's transaction (the outbox). */
  async enqueue(tx: Executor, target: HookTarget, payload: WebhookPayload, taskId: string): Promise<void> {
    await deliveries.insertDelivery(tx, {
      webhookId: newWebhookId(),
      mode: 'async',
      taskId,
      historyId: payload.history_id,
      schemaId: target.schemaId,
      versionId: target.versionId,
      url: target.url,
      payload: JSON.stringify(payload),
      status: 'pending',
    });
  }

  /** Claims up to `limit` due deliveries (see deliveries.repo claimDueDeliveries). */
  claimDue(limit: number): Promise<deliveries.DeliveryRow[]> {
    return deliveries.claimDueDeliveries(this.deps.database.background, limit, this.deps.config.webhookLeaseMs);
  }

  /** Ends every webhook request still in flight, as failed (the server stops and cannot wait longer). */
  abortInFlight() {
    this.stopping.abort(new Error('the server is stopping'));
  }

  /** Hands claimed deliveries back: their leases end now, if this worker still holds them. */
  async release(rows: deliveries.DeliveryRow[]): Promise<void> {
    await Promise.all(rows.map((row) => deliveries.updateDelivery(this.deps.database.background, row.id, { leaseUntil: null }, row.leaseUntil)));
  }

  /** Claims a batch of due deliveries and sends them all; returns how many were claimed. */
  async runDue(limit = 32): Promise<number> {
    const rows = await this.claimDue(limit);
    await Promise.all(rows.map((row) => this.deliver(row)));
    return rows.length;
  }

  /** Sends one claimed delivery and records the outcome. Never throws for a receiver's failure. */
  async deliver(row: deliveries.DeliveryRow): Promise<void> {
    const db = this.deps.database.background;
    const version = await schemasRepo.findVersionById(db, row.versionId);
    const auth = version?.hookAuth ?? null;
    const secrets = await this.secretsFor(db, { auth, schemaId: row.schemaId });
    if (secrets === null) {
      // No attempt is counted: the delivery waits until a key exists (creating one wakes it).
      await deliveries.updateDelivery(db, row.id, { leaseUntil: null, lastError: WAITING_FOR_KEY, nextAttemptAt: new Date(Date.now() + KEY_WAIT_MS) }, row.leaseUntil);
      return;
    }
    const headers = webhookHeaders(auth, secrets, row.webhookId, Math.floor(Date.now() / 1000), row.payload);
    const result = await postWebhook({ url: row.url, body: row.payload, headers, timeoutMs: ASYNC_TIMEOUT_MS, maxBody: LOG_BODY_BYTES, signal: this.stopping.signal });
    countDelivery('async', result);
    await db.transaction(async (tx) => {
      await deliveries.insertAttempt(tx, attemptOf(row.id, result));
      const attempts = await deliveries.countAttempt(tx, row.id);
      const common = { leaseUntil: null, lastStatus: result.status, lastError: result.error };
      const lease = row.leaseUntil;
      if (result.ok) return deliveries.updateDelivery(tx, row.id, { ...common, status: 'delivered', deliveredAt: new Date() }, lease);
      if (result.status === 410) {
        await deliveries.disableEndpoint(tx, row.url, `answered 410 Gone to delivery ${row.webhookId}`);
        return deliveries.updateDelivery(tx, row.id, { ...common, status: 'paused' }, lease);
      }
      const delay = retryDelay(this.deps.config.webhookRetrySchedule, attempts, result.retryAfterMs);
      if (delay === null) return deliveries.updateDelivery(tx, row.id, { ...common, status: 'dead' }, lease);
      return deliveries.updateDelivery(tx, row.id, { ...common, nextAttemptAt: new Date(Date.now() + delay) }, lease);
    });
  }
}

/** The first `n` bytes of a text, without a broken character at the end. */
function firstBytes(text: string, n: number): string {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= n ? text : bytes.subarray(0, n).toString('utf8').replace(/\uFFFD$/, '');
}

function countDelivery(mode: 'sync' | 'async', r: SendResult) {
  const labels = { mode, outcome: r.ok ? 'delivered' : 'failed' };
  metrics.webhookDeliveries.inc(labels);
  metrics.webhookDuration.observe(labels, r.latencyMs / 1000);
}

function attemptOf(deliveryId: number, r: SendResult) {
  return { deliveryId, statusCode: r.status, latencyMs: r.latencyMs, responseBody: r.body, error: r.error };
}
