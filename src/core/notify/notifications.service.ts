import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hashToken } from '../people/people.js';
import type { Config } from '../../config.js';
import type { PushMessage } from '../../contract/index.js';
import type { Database, Executor } from '../../db/index.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { retryDelay } from '../webhooks/webhooks.js';
import { WakeSignal } from '../wake-signal.js';
import { metrics } from '../metrics.js';
import { notifyFields, pushMessageFor, type TaskSummary } from './notify.js';
import * as repo from './notify.repo.js';
import { Senders, type ChannelConfig, type PushTarget, type SendOutcome } from './senders.js';
import { loadVapidKeys, type VapidKeys } from './vapid.js';

export interface NotificationDeps {
  database: Database;
  config: Config;
  secrets: SecretBox;
  /** The inbox's address as people reach it, for links in messages (PUBLIC_URL, or where the server listens). */
  baseUrl: () => string;
}

/**
 * Messages of one claim that go out together (one message, or every task of one digest), with
 * what sending them needs, read for the whole claim at once rather than per message.
 */
export interface NotificationBatch {
  rows: repo.NotificationRow[];
  subscription?: repo.PushSubscriptionRow;
  channel?: repo.ChannelRow;
  tasks: repo.TaskWithTypeRow[];
}

/**
 * How many messages one fan-out statement should write at most. On the embedded database a
 * statement holds the event loop, and so every request, while it runs (100 devices: 100 rows, a
 * few ms; two such tasks per statement measurably lengthened the POST tail in
 * bench/notify-push.ts). So a statement takes as many new tasks as this many messages allow,
 * judged by the messages per task of the statement before: one task when each reaches a hundred
 * devices, up to MAX_EVENTS_PER_FAN_OUT when few people are notified (a busy inbox then pays one
 * statement for many tasks, not one each: on PostgreSQL, 8 clients posting ran 10 % faster with
 * batches of up to 256 tasks, 200 ms apart, than of 64, 50 ms apart). Claims fan out repeatedly, within FAN_OUT_BUDGET_MS.
 */
const MESSAGES_PER_FAN_OUT = 32;
/** How long after a new task the worker looks for it: the tasks posted meanwhile are fanned out together (see MESSAGES_PER_FAN_OUT). */
export const NEW_TASK_WAKE_MS = 200;
const MAX_EVENTS_PER_FAN_OUT = 256;
const LINK_PURPOSE = 'action-link';
/** How long one claim may spend fanning out before it claims due messages. */
const FAN_OUT_BUDGET_MS = 1000;

/** A link's stored form: the SHA-256 of its random part, like session tokens. */
export const hashLinkToken = hashToken;

/**
 * The notification outbox. A new task writes one event row in its own transaction; a worker fans
 * it out into one message per device and channel of each person it concerns, and sends them with
 * retries — the same lease-and-skip-locked claiming as webhook deliveries.
 */
export class Notifications extends WakeSignal {
  readonly senders: Senders;
  private vapid: Promise<VapidKeys> | undefined;
  /** New tasks the next fan-out statement takes (see MESSAGES_PER_FAN_OUT). */
  private eventsPerFanOut = 1;
  private newTaskTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: NotificationDeps) {
    super();
    this.senders = new Senders(deps.config);
  }

  /** The VAPID keys, generated and stored on first use unless VAPID_PATH gives them. */
  vapidKeys(): Promise<VapidKeys> {
    this.vapid ??= loadVapidKeys(this.deps.database.db, this.deps.config, this.deps.secrets).catch((err: unknown) => {
      this.vapid = undefined;
      throw err;
    });
    return this.vapid;
  }

  /**
   * A task was posted: wakes this process's worker NEW_TASK_WAKE_MS later, once for every task
   * posted meanwhile, so that a busy inbox fans out its new tasks in batches instead of a claim
   * per task (each claim costs the database statements the requests are waiting for).
   */
  taskPosted() {
    if (this.newTaskTimer) return;
    this.newTaskTimer = setTimeout(() => {
      this.newTaskTimer = undefined;
      this.wake();
    }, NEW_TASK_WAKE_MS);
    this.newTaskTimer.unref();
  }

  /** Signs a one-tap link's random part: the link is `<random>.<signature>`. */
  signLink(random: string): string {
    return `${random}.${this.deps.secrets.sign(LINK_PURPOSE, random)}`;
  }

  /** The stored hash of a link's token, or null when its signature is wrong (a tampered or made-up link). */
  verifyLink(token: string): string | null {
    const [random, signature, extra] = token.split('.');
    if (!random || !signature || extra !== undefined) return null;
    const expected = Buffer.from(this.deps.secrets.sign(LINK_PURPOSE, random));
    const given = Buffer.from(signature);
    return given.length === expected.length && timingSafeEqual(given, expected) ? hashLinkToken(random) : null;
  }

  /** Claims due messages, after turning new-task events into messages. */
  async claimDue(limit: number): Promise<NotificationBatch[]> {
    // A backlog of new tasks is worked off a few at a time, with due messages claimed in between.
    const deadline = Date.now() + FAN_OUT_BUDGET_MS;
    for (;;) {
      const asked = this.eventsPerFanOut;
      // Fewer than asked for: none are left.
      if ((await this.fanOut()) < asked || Date.now() >= deadline) break;
    }
    const rows = await repo.claimDueNotifications(this.deps.database.background, limit, this.deps.config.webhookLeaseMs);
    return this.prepare(rows);
  }

  /** Groups claimed rows into batches and reads their devices, channels and tasks: three queries per claim. */
  private async prepare(rows: repo.NotificationRow[]): Promise<NotificationBatch[]> {
    if (rows.length === 0) return [];
    const db = this.deps.database.background;
    const ids = (pick: (r: repo.NotificationRow) => string | null) => [...new Set(rows.map(pick).filter((v): v is string => v !== null))];
    const [subscriptions, channels, tasks] = await Promise.all([
      repo.findPushSubscriptions(db, ids((r) => r.subscriptionId)),
      repo.findChannels(db, ids((r) => r.channelId)),
      repo.findTasksWithTypes(db, ids((r) => r.taskId)),
    ]);
    const byId = <V extends { id: string }>(list: V[]) => new Map(list.map((v) => [v.id, v]));
    const subscriptionById = byId(subscriptions);
    const channelById = byId(channels);
    const taskById = byId(tasks);
    return groupIntoBatches(rows).map((batch) => ({
      rows: batch,
      subscription: batch[0]!.subscriptionId ? subscriptionById.get(batch[0]!.subscriptionId) : undefined,
      channel: batch[0]!.channelId ? channelById.get(batch[0]!.channelId) : undefined,
      tasks: [...new Set(batch.map((r) => r.taskId))].flatMap((id) => (id && taskById.has(id) ? [taskById.get(id)!] : [])),
    }));
  }

  /** Turns some waiting new-task events into messages; returns how many events it took (0: none waited). */
  async fanOut(): Promise<number> {
    const { events, messages } = await repo.fanOutEvents(this.deps.database.background, this.eventsPerFanOut, Boolean(this.deps.config.smtpUrl));
    if (events > 0) {
      const fit = messages === 0 ? MAX_EVENTS_PER_FAN_OUT : Math.floor((MESSAGES_PER_FAN_OUT * events) / messages);
      this.eventsPerFanOut = Math.min(MAX_EVENTS_PER_FAN_OUT, Math.max(1, fit));
    }
    return events;
  }

  /** Hands claimed messages back: their leases end now, if this worker still holds them. */
  async release(batches: NotificationBatch[]): Promise<void> {
    for (const { rows } of batches) await repo.updateNotifications(this.deps.database.background, rows.map((r) => r.id), { leaseUntil: null }, rows[0]!.leaseUntil);
  }

  /** Sends one batch and records the outcome. Never throws for a channel's failure. */
  async deliver(batch: NotificationBatch): Promise<void> {
    const outcome = await this.send(batch);
    metrics.notifications.inc({ kind: batch.rows[0]!.kind, outcome }, batch.rows.length);
  }

  private async send({ rows, subscription: sub, channel, tasks: taskRows }: NotificationBatch): Promise<'sent' | 'failed' | 'gone' | 'skipped'> {
    const db = this.deps.database.background;
    const first = rows[0]!;
    const ids = rows.map((r) => r.id);
    const lease = first.leaseUntil;
    const attempts = Math.max(...rows.map((r) => r.attempts)) + 1;

    let outcome: SendOutcome;
    if (first.kind === 'push') {
      if (!sub) return this.record(ids, { status: 'gone', leaseUntil: null, lastError: 'the push subscription was removed' }, lease, 'gone');
      let message: PushMessage;
      if (first.message !== null) {
        message = { title: 'task-inbox', body: first.message, tag: 'message', renotify: true, url: '/taskui' };
      } else {
        const [task] = await this.summaries(db, taskRows, null);
        if (!task) return this.record(ids, { status: 'skipped', leaseUntil: null, lastError: 'the task was resolved or removed before it was sent' }, lease, 'skipped');
        message = pushMessageFor(task);
      }
      outcome = await this.senders.push(this.pushTarget(sub), await this.vapidKeys(), message);
      if (outcome.gone) {
        // The browser unsubscribed or the subscription expired: it will never work again.
        await repo.deletePushSubscription(db, sub.id);
        return this.record(ids, { status: 'gone', leaseUntil: null, attempts, lastStatus: outcome.status, lastError: outcome.error }, lease, 'gone');
      }
    } else {
      if (!channel) return this.record(ids, { status: 'skipped', leaseUntil: null, lastError: 'the channel was removed' }, lease, 'skipped');
      const tasks = await this.summaries(db, taskRows, first.userId);
      if (tasks.length === 0) return this.record(ids, { status: 'skipped', leaseUntil: null, lastError: 'the tasks were resolved or removed before they were sent' }, lease, 'skipped');
      outcome = await this.senders.channel(this.channelConfig(channel), { tasks });
      await repo.updateChannel(db, channel.id, outcome.ok ? { lastSentAt: new Date(), lastError: null } : { lastError: outcome.error });
    }
    const common = { leaseUntil: null, attempts, lastStatus: outcome.status, lastError: outcome.error };
    if (outcome.ok) return this.record(ids, { ...common, status: 'sent', sentAt: new Date() }, lease, 'sent');
    const delay = retryDelay(this.deps.config.webhookRetrySchedule, attempts, outcome.retryAfterMs);
    if (delay === null) return this.record(ids, { ...common, status: 'dead' }, lease, 'failed');
    return this.record(ids, { ...common, nextAttemptAt: new Date(Date.now() + delay) }, lease, 'failed');
  }

  private async record(ids: number[], values: Parameters<typeof repo.updateNotifications>[2], lease: Date | null, outcome: 'sent' | 'failed' | 'gone' | 'skipped') {
    await repo.updateNotifications(this.deps.database.background, ids, values, lease);
    return outcome;
  }

  /**
   * What the messages say about the tasks still open. With `linksFor`, each task gets a one-tap
   * link per state for that person, stored (hashed) before the message can go out.
   */
  private async summaries(db: Executor, taskRows: repo.TaskWithTypeRow[], linksFor: string | null): Promise<TaskSummary[]> {
    const rows = taskRows.filter((t) => !t.resolved);
    const base = this.deps.baseUrl().replace(/\/+$/, '');
    const links: Parameters<typeof repo.insertActionLinks>[1] = [];
    const expiresAt = new Date(Date.now() + this.deps.config.actionLinkTtlMs);
    const summaries = rows.map((t) => {
      const actions = linksFor
        ? [...t.pendingStates, ...t.resolvedStates]
            .filter((state) => state !== t.state)
            .map((state) => {
              const random = randomBytes(24).toString('base64url');
              links.push({ tokenHash: hashLinkToken(random), taskId: t.id, userId: linksFor, state, expiresAt });
              return { state, url: `${base}/act/${this.signLink(random)}` };
            })
        : [];
      return { id: t.id, schema: t.schema, type: t.type, fields: notifyFields(t.meta), url: `${base}/taskui/${t.id}`, actions };
    });
    await repo.insertActionLinks(db, links);
    return summaries;
  }

  pushTarget(row: repo.PushSubscriptionRow): PushTarget {
    return JSON.parse(this.deps.secrets.decrypt(row.subscriptionEnc)) as PushTarget;
  }

  channelConfig(row: repo.ChannelRow): ChannelConfig {
    return JSON.parse(this.deps.secrets.decrypt(row.configEnc)) as ChannelConfig;
  }

  /**
   * Pushes a message to every device of a person now (the `webpush` command, the "send a test"
   * button). The messages are logged like any other; one that fails is retried by the worker.
   */
  async pushToPerson(userId: string, message: string): Promise<{ sent: number; removed: number; failed: number }> {
    const db = this.deps.database.db;
    const subs = await repo.listPushSubscriptionsOfUser(db, userId);
    const rows = await repo.insertNotifications(
      db,
      subs.map((s) => ({ userId, kind: 'push' as const, subscriptionId: s.id, target: s.host, message, status: 'pending' as const })),
    );
    const claimed = await repo.claimNotificationsById(db, rows.map((r) => r.id), this.deps.config.webhookLeaseMs);
    await Promise.all((await this.prepare(claimed)).map((batch) => this.deliver(batch)));
    const after = await repo.findNotificationsById(db, rows.map((r) => r.id));
    return {
      sent: after.filter((r) => r.status === 'sent').length,
      removed: after.filter((r) => r.status === 'gone').length,
      failed: after.filter((r) => r.status === 'pending' || r.status === 'dead').length,
    };
  }

  close() {
    clearTimeout(this.newTaskTimer);
    this.newTaskTimer = undefined;
    this.senders.close();
  }
}

/** Digest messages of one channel go together; every other message alone. */
function groupIntoBatches(rows: repo.NotificationRow[]): repo.NotificationRow[][] {
  const batches = new Map<string, repo.NotificationRow[]>();
  for (const row of rows) {
    const key = row.digest && row.channelId ? `c:${row.channelId}` : `n:${row.id}`;
    const batch = batches.get(key);
    if (batch) batch.push(row);
    else batches.set(key, [row]);
  }
  return [...batches.values()];
}
