import { z } from 'zod';
import type { Config } from '../../config.js';
import type { ChannelTestResult, CreateChannelBody, NotificationChannel, NotificationSettings, NotifyTopic, PushSubscriptionJson } from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { hashToken, type PersonPrincipal } from '../people/people.js';
import { findUserById } from '../people/people.repo.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { Notifications } from './notifications.service.js';
import * as repo from './notify.repo.js';
import type { ChannelConfig } from './senders.js';


export function channelRowToChannel(row: repo.ChannelRow): NotificationChannel {
  return {
    id: row.id,
    kind: row.kind,
    label: row.label,
    digest_minutes: row.digestMinutes,
    created: row.created.toISOString(),
    last_sent_at: row.lastSentAt?.toISOString() ?? null,
    last_error: row.lastError,
  };
}

/** What a channel is called in lists: where it sends, without the secret parts of a URL. */
function labelOf(body: ChannelConfig): string {
  switch (body.kind) {
    case 'email':
      return body.address;
    case 'ntfy':
      return `${new URL(body.server).host}/${body.topic}`;
    default:
      return `${new URL(body.url).host} (${body.kind === 'slack' ? 'chat webhook' : 'JSON webhook'})`;
  }
}

export async function getSettings(database: Database, config: Config, userId: string): Promise<NotificationSettings> {
  const user = await findUserById(database.db, userId);
  const channels = await repo.listChannelsOfUser(database.db, userId);
  const devices = await repo.listPushSubscriptionsOfUser(database.db, userId);
  return {
    topics: user?.notifyTopics ?? null,
    channels: channels.map(channelRowToChannel),
    push: { devices: devices.length },
    email_available: Boolean(config.smtpUrl),
  };
}

export async function setTopics(database: Database, config: Config, userId: string, topics: NotifyTopic[] | null): Promise<NotificationSettings> {
  await repo.setTopics(database.db, userId, topics);
  return getSettings(database, config, userId);
}

export async function createChannel(database: Database, config: Config, secrets: SecretBox, userId: string, body: z.output<typeof CreateChannelBody>) {
  if (body.kind === 'email' && !config.smtpUrl) {
    throw new AppError('bad-request', 'This server cannot send email: an administrator sets SMTP_URL (and SMTP_FROM) to allow email notifications.');
  }
  const { digest_minutes, ...settings } = body;
  const stored = settings.kind === 'ntfy' && !settings.token ? { kind: settings.kind, server: settings.server, topic: settings.topic } : settings;
  const row = await repo.insertChannel(database.db, {
    userId,
    kind: body.kind,
    label: labelOf(stored as ChannelConfig),
    configEnc: secrets.encrypt(JSON.stringify(stored)),
    digestMinutes: digest_minutes,
  });
  return channelRowToChannel(row);
}

async function ownChannel(database: Database, userId: string, id: string) {
  const row = await repo.findChannel(database.db, id);
  if (!row || row.userId !== userId) throw new AppError('not-found', `You have no notification channel ${id}.`);
  return row;
}

export async function updateChannel(database: Database, userId: string, id: string, digestMinutes: number | null) {
  await ownChannel(database, userId, id);
  return channelRowToChannel((await repo.updateChannel(database.db, id, { digestMinutes }))!);
}

export async function deleteChannel(database: Database, userId: string, id: string) {
  await ownChannel(database, userId, id);
  await repo.deleteChannel(database.db, id);
}

/** Sends a test message over one of the person's channels now, and says how it went. */
export async function testChannel(database: Database, notifications: Notifications, userId: string, id: string): Promise<ChannelTestResult> {
  const row = await ownChannel(database, userId, id);
  const outcome = await notifications.senders.channel(notifications.channelConfig(row), {
    test: 'This is a test message from task-inbox: new tasks will be announced here.',
  });
  await repo.updateChannel(database.db, id, outcome.ok ? { lastSentAt: new Date(), lastError: null } : { lastError: outcome.error });
  return { ok: outcome.ok, status: outcome.status, error: outcome.error };
}

/** Stores the signed-in session's push subscription (the keys and the endpoint sealed). */
export async function registerPush(database: Database, secrets: SecretBox, person: PersonPrincipal, sub: z.output<typeof PushSubscriptionJson>) {
  await repo.upsertPushSubscription(database.db, {
    userId: person.id,
    sessionId: person.sessionId,
    endpointHash: hashToken(sub.endpoint),
    subscriptionEnc: secrets.encrypt(JSON.stringify({ endpoint: sub.endpoint, keys: sub.keys })),
    host: new URL(sub.endpoint).host,
  });
}

export async function unregisterPush(database: Database, userId: string, endpoint: string) {
  await repo.deletePushSubscriptionOfUser(database.db, userId, hashToken(endpoint));
}
