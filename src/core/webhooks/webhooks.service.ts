import type { Config } from '../../config.js';
import type { WebhookPayload } from '../../contract/index.js';
import type { Database, Executor } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { KeyedLock } from '../keyed-lock.js';
import { WakeSignal } from '../wake-signal.js';
import { metrics } from '../metrics.js';
import type { HookAuth } from '../schemas/index.js';
import type { SecretBox } from '../secrets/secret-box.js';
import * as deliveries from './deliveries.repo.js';
import { postWebhook, type SendResult } from './sender.js';
import { newWebhookId } from './signature.js';
import { liveSecrets, liveSecretsOfPairs } from './webhook-keys.service.js';
import { BatchWriter } from './batch-writer.js';
import { WAITING_FOR_KEY } from './webhook-keys.repo.js';
import { retryDelay, webhookHeaders, type HookTarget } from './webhooks.js';

/** Response bodies kept in the delivery log. */
const LOG_BODY_BYTES = 20 * 1024;
/** Of which a refused sync change quotes this much to the person. */
const QUOTE_BYTES = 500;
/** Async deliveries wait this long for an answer. */
const ASYNC_TIMEOUT_MS = 15_000;
/** Outcomes written by one statement at most (a response body logged can be 20 KiB). */
const OUTCOMES_PER_STATEMENT = 64;
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
  /** Outcomes of async attempts, written together (see BatchWriter). */
  private readonly outcomes = new BatchWriter<deliveries.Outcome>((batch) => deliveries.recordOutcomes(this.deps.database.background, batch), {
    maxBatch: OUTCOMES_PER_STATEMENT,
    keyOf: (o) => o.id,
  });

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

  /**
   * Claims up to `limit` due deliveries (see deliveries.repo claimDueDeliveries), with the keys
   * that sign them: read once for the batch, just before it is sent, so a rotation or a
   * revocation applies from the next claim on.
   */
  async claimDue(limit: number): Promise<ClaimedDelivery[]> {
    const db = this.deps.database.background;
    const rows = await deliveries.claimDueDeliveries(db, limit, this.deps.config.webhookLeaseMs);
    const signed = rows.filter((r) => r.hookAuth !== null).map((r) => ({ schemaId: r.schemaId, auth: r.hookAuth! }));
    const secretsOf = signed.length > 0 ? await liveSecretsOfPairs(db, this.deps.secrets, signed) : () => [];
    return rows.map(({ hookAuth, ...row }) => {
      const secrets = hookAuth ? secretsOf(row.schemaId, hookAuth) : [];
      return { row, auth: hookAuth, secrets: hookAuth && secrets.length === 0 ? null : secrets };
    });
  }

  /** Ends every webhook request still in flight, as failed (the server stops and cannot wait longer). */
  abortInFlight() {
    this.stopping.abort(new Error('the server is stopping'));
  }

  /** Hands claimed deliveries back: their leases end now, if this worker still holds them. */
  async release(items: ClaimedDelivery[]): Promise<void> {
    await Promise.all(items.map(({ row }) => deliveries.updateDelivery(this.deps.database.background, row.id, { leaseUntil: null }, row.leaseUntil)));
  }

  /** Claims a batch of due deliveries and sends them all; returns how many were claimed. */
  async runDue(limit = 32): Promise<number> {
    const items = await this.claimDue(limit);
    await Promise.all(items.map((item) => this.deliver(item)));
    return items.length;
  }

  /**
   * Sends one claimed delivery and records the outcome (with those of other deliveries that
   * finish meanwhile, in one statement). Never throws for a receiver's failure.
   */
  async deliver({ row, auth, secrets }: ClaimedDelivery): Promise<void> {
    if (secrets === null) {
      // No attempt is counted: the delivery waits until a key exists (creating one wakes it).
      const db = this.deps.database.background;
      await deliveries.updateDelivery(db, row.id, { leaseUntil: null, lastError: WAITING_FOR_KEY, nextAttemptAt: new Date(Date.now() + KEY_WAIT_MS) }, row.leaseUntil);
      return;
    }
    const headers = webhookHeaders(auth, secrets, row.webhookId, Math.floor(Date.now() / 1000), row.payload);
    const result = await postWebhook({ url: row.url, body: row.payload, headers, timeoutMs: ASYNC_TIMEOUT_MS, maxBody: LOG_BODY_BYTES, signal: this.stopping.signal });
    countDelivery('async', result);
    const schedule = this.deps.config.webhookRetrySchedule;
    const outcome = result.ok ? 'delivered' : result.status === 410 ? 'gone' : 'failed';
    await this.outcomes.write({
      id: row.id,
      lease: row.leaseUntil,
      outcome,
      url: row.url,
      reason: result.status === 410 ? `answered 410 Gone to delivery ${row.webhookId}` : null,
      statusCode: result.status,
      latencyMs: result.latencyMs,
      responseBody: result.body,
      error: result.error,
      retryDelaysMs: outcome === 'failed' ? schedule.map((_, i) => retryDelay(schedule, i + 1, result.retryAfterMs)!) : [],
    });
  }
}

/** A delivery claimed for sending, with what signs it; `secrets` is null when its hook_auth has no live key. */
export interface ClaimedDelivery {
  row: deliveries.DeliveryRow;
  auth: HookAuth | null;
  secrets: string[] | null;
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
