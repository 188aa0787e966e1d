import { z } from 'zod';
import { Timestamp } from './common.js';

/** Where a person hears about new tasks, besides web push on their devices. */
export const ChannelKind = z.enum(['email', 'slack', 'ntfy', 'webhook']);
export type ChannelKind = z.infer<typeof ChannelKind>;

const HttpUrl = z
  .url({ protocol: /^https?$/ })
  .max(2000)
  .describe('An http(s) URL');

/** Null: each new task is sent at once. A number: the new tasks are gathered and sent together every so many minutes. */
const DigestMinutes = z
  .int()
  .min(1)
  .max(7 * 24 * 60)
  .nullable()
  .describe('null sends each new task at once; a number of minutes gathers new tasks into one message that often');

/** A channel as its owner sees it: the secret parts (a chat webhook's URL, an ntfy token) never leave the server. */
export const NotificationChannel = z.object({
  id: z.uuid(),
  kind: ChannelKind,
  label: z.string().describe('What the channel sends to, without its secret parts (an address, a host, a topic)'),
  digest_minutes: DigestMinutes,
  created: Timestamp,
  last_sent_at: Timestamp.nullable(),
  last_error: z.string().nullable(),
});
export type NotificationChannel = z.infer<typeof NotificationChannel>;

export const CreateChannelBody = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('email'), address: z.email().max(320), digest_minutes: DigestMinutes.default(null) }),
  z.object({
    kind: z.literal('slack'),
    url: HttpUrl.describe('A Slack-compatible incoming webhook (Slack, Mattermost, Discord’s …/slack endpoint)'),
    digest_minutes: DigestMinutes.default(null),
  }),
  z.object({
    kind: z.literal('ntfy'),
    server: HttpUrl.default('https://ntfy.sh'),
    topic: z
      .string()
      .regex(/^[-_A-Za-z0-9]{1,64}$/, 'letters, digits, - and _ (up to 64)'),
    token: z.string().max(500).optional().describe('An ntfy access token, for protected topics'),
    digest_minutes: DigestMinutes.default(null),
  }),
  z.object({ kind: z.literal('webhook'), url: HttpUrl, digest_minutes: DigestMinutes.default(null) }),
]);
export type CreateChannelBody = z.input<typeof CreateChannelBody>;

export const UpdateChannelBody = z.object({ digest_minutes: DigestMinutes });

/** One schema, or one type of it, that notifies a person. */
export const NotifyTopic = z.object({ schema: z.string().min(1), type: z.string().min(1).nullable().default(null) });
export type NotifyTopic = z.output<typeof NotifyTopic>;

/** null: every schema and type (the default); a list: only those. */
export const NotifyTopics = z.array(NotifyTopic).max(500).nullable();

export const NotificationSettings = z.object({
  topics: NotifyTopics,
  channels: z.array(NotificationChannel),
  push: z.object({
    devices: z.int().describe('Devices (browser sessions) of this person registered for web push'),
  }),
  email_available: z.boolean().describe('Whether the server can send email (SMTP_URL is set)'),
});
export type NotificationSettings = z.infer<typeof NotificationSettings>;

export const ChannelTestResult = z.object({
  ok: z.boolean(),
  status: z.int().nullable().describe('The HTTP status the channel answered, when it is reached over HTTP'),
  error: z.string().nullable(),
});
export type ChannelTestResult = z.infer<typeof ChannelTestResult>;

/** A browser's PushSubscription, as `JSON.stringify(subscription)` gives it. */
export const PushSubscriptionJson = z.object({
  endpoint: HttpUrl,
  expirationTime: z.number().nullish(),
  keys: z.object({ p256dh: z.string().min(1).max(200), auth: z.string().min(1).max(100) }),
});
export const PushRegisterBody = z.object({ sub: PushSubscriptionJson });
export const PushUnregisterBody = z.object({ endpoint: HttpUrl });

export const NotificationStatus = z.enum(['pending', 'sent', 'skipped', 'gone', 'dead']);

/** One message of the notification log (admins). */
export const NotificationLogEntry = z.object({
  id: z.string(),
  kind: z.enum(['push', 'email', 'slack', 'ntfy', 'webhook']),
  username: z.string(),
  target: z.string().describe('The channel’s label, or the push service’s host'),
  task_id: z.uuid().nullable(),
  status: NotificationStatus.describe('pending (waiting, or retrying), sent, skipped (nothing left to say: the task was resolved first), gone (the push subscription expired and was deleted), dead (every retry failed)'),
  attempts: z.int(),
  last_status: z.int().nullable(),
  last_error: z.string().nullable(),
  created: Timestamp,
  due: Timestamp,
  sent_at: Timestamp.nullable(),
});
export type NotificationLogEntry = z.infer<typeof NotificationLogEntry>;

export const NotificationLogQuery = z.object({
  status: NotificationStatus.optional(),
  cursor: z.string().regex(/^\d+$/).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

/**
 * What a web push message carries (encrypted; the service worker shows it). Messages of one type
 * share a tag, so they stack, and `renotify` makes each new one alert again.
 */
export const PushMessage = z.object({
  title: z.string(),
  body: z.string(),
  tag: z.string(),
  renotify: z.boolean(),
  /** A path on the inbox to open on click, e.g. `/taskui/<id>`. */
  url: z.string(),
});
export type PushMessage = z.infer<typeof PushMessage>;
