import type { Transporter } from 'nodemailer';
import type webpushModule from 'web-push';
import type { Config } from '../../config.js';
import type { PushMessage } from '../../contract/index.js';
import { postWebhook } from '../webhooks/sender.js';
import { htmlFor, ntfyBodyFor, slackBodyFor, subjectFor, textFor, webhookBodyFor, type TaskSummary } from './notify.js';
import type { VapidKeys } from './vapid.js';

/** A channel's settings as stored (sealed): the parts that are secret stay on the server. */
export type ChannelConfig =
  | { kind: 'email'; address: string }
  | { kind: 'slack'; url: string }
  | { kind: 'ntfy'; server: string; topic: string; token?: string }
  | { kind: 'webhook'; url: string };

export interface PushTarget {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** How one send went. `gone`: the push subscription no longer exists (404 or 410). */
export interface SendOutcome {
  ok: boolean;
  status: number | null;
  error: string | null;
  retryAfterMs: number | null;
  gone: boolean;
}

/** What to say: new tasks, or a test message. */
export type Content = { tasks: readonly TaskSummary[] } | { test: string };

const TIMEOUT_MS = 15_000;
/** How long a push service keeps a message for a device that is offline. */
const PUSH_TTL_SECONDS = 24 * 3600;

/** A VAPID token is valid for 12 hours; one is made per push service and made again after 11. */
const VAPID_TOKEN_SECONDS = 12 * 3600;
const VAPID_RENEW_MS = 11 * 3600_000;

/*
 * nodemailer and web-push are loaded at the first message that needs them: a server that never
 * sends one does not spend its start compiling them.
 */
type WebPush = typeof webpushModule;
let webpushLoading: Promise<WebPush> | undefined;
const loadWebPush = (): Promise<WebPush> => (webpushLoading ??= import('web-push').then((m) => m.default));

const failure = (error: string): SendOutcome => ({ ok: false, status: null, error, retryAfterMs: null, gone: false });

/** Sends over each channel kind. One instance per process: it keeps the SMTP connection pool. */
export class Senders {
  private mailer: Promise<Transporter> | undefined;
  private readonly stopping = new AbortController();
  /** Signed VAPID tokens by push service origin and key: signing one per message would cost CPU for nothing. */
  private readonly vapidTokens = new Map<string, { authorization: string; renewAt: number }>();

  constructor(private readonly config: Config) {}

  /** The `Authorization` header for a push service: a VAPID JWT whose `aud` is the service's origin. */
  private vapidAuthorization(webpush: WebPush, endpoint: string, vapid: VapidKeys): string {
    const audience = new URL(endpoint).origin;
    const key = `${audience} ${vapid.publicKey} ${vapid.subject}`;
    const cached = this.vapidTokens.get(key);
    if (cached && cached.renewAt > Date.now()) return cached.authorization;
    const expiration = Math.floor(Date.now() / 1000) + VAPID_TOKEN_SECONDS;
    const { Authorization } = webpush.getVapidHeaders(audience, vapid.subject, vapid.publicKey, vapid.privateKey, 'aes128gcm', expiration) as { Authorization: string };
    this.vapidTokens.set(key, { authorization: Authorization, renewAt: Date.now() + VAPID_RENEW_MS });
    return Authorization;
  }

  async push(target: PushTarget, vapid: VapidKeys, message: PushMessage | string): Promise<SendOutcome> {
    const webpush = await loadWebPush();
    let details: ReturnType<WebPush['generateRequestDetails']>;
    try {
      details = webpush.generateRequestDetails(target, typeof message === 'string' ? message : JSON.stringify(message), {
        // No vapidDetails (and no process-wide web-push setting): the header below is the VAPID one.
        headers: { Authorization: this.vapidAuthorization(webpush, target.endpoint, vapid) },
        TTL: PUSH_TTL_SECONDS,
        urgency: 'high',
      });
    } catch (err) {
      return failure(`the subscription or the VAPID keys are unusable: ${(err as Error).message}`);
    }
    const headers = Object.fromEntries(Object.entries(details.headers).map(([k, v]) => [k, String(v)]));
    const r = await postWebhook({ url: details.endpoint, body: details.body as Buffer, headers, timeoutMs: TIMEOUT_MS, maxBody: 2000, signal: this.stopping.signal });
    return {
      ok: r.ok,
      status: r.status,
      error: r.ok ? null : (r.error ?? `the push service answered ${r.status}${r.body ? `: ${r.body.slice(0, 300)}` : ''}`),
      retryAfterMs: r.retryAfterMs,
      gone: r.status === 404 || r.status === 410,
    };
  }

  async channel(channel: ChannelConfig, content: Content): Promise<SendOutcome> {
    if (channel.kind === 'email') return this.email(channel.address, content);
    const json = (body: unknown, url: string, headers: Record<string, string> = {}) => this.postJson(url, body, headers);
    const test = 'test' in content ? content.test : null;
    const tasks = 'tasks' in content ? content.tasks : [];
    switch (channel.kind) {
      case 'slack':
        return json(test !== null ? { text: test } : slackBodyFor(tasks), channel.url);
      case 'ntfy': {
        const body = test !== null ? { topic: channel.topic, title: 'task-inbox', message: test, tags: ['inbox_tray'] } : ntfyBodyFor(channel.topic, tasks);
        return json(body, channel.server.replace(/\/+$/, '') + '/', channel.token ? { authorization: `Bearer ${channel.token}` } : {});
      }
      case 'webhook':
        return json(test !== null ? { type: 'test', message: test } : webhookBodyFor(tasks), channel.url);
    }
  }

  private async postJson(url: string, body: unknown, headers: Record<string, string>): Promise<SendOutcome> {
    const r = await postWebhook({
      url,
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'user-agent': 'task-inbox', ...headers },
      timeoutMs: TIMEOUT_MS,
      maxBody: 2000,
      signal: this.stopping.signal,
    });
    // Only the status is kept: the answer of an address a person typed in is not shown back.
    return { ok: r.ok, status: r.status, error: r.ok ? null : (r.error ?? `answered ${r.status}`), retryAfterMs: r.retryAfterMs, gone: false };
  }

  private async email(to: string, content: Content): Promise<SendOutcome> {
    if (!this.config.smtpUrl) return failure('email is not set up on this server (SMTP_URL)');
    const { smtpUrl, smtpFrom } = this.config;
    this.mailer ??= import('nodemailer').then((m) => m.default.createTransport(smtpUrl, { from: smtpFrom }));
    const message =
      'test' in content
        ? { subject: 'task-inbox: test message', text: content.test }
        : { subject: subjectFor(content.tasks), text: textFor(content.tasks), html: htmlFor(content.tasks) };
    try {
      await (await this.mailer).sendMail({ to, ...message });
      return { ok: true, status: null, error: null, retryAfterMs: null, gone: false };
    } catch (err) {
      const e = err as Error & { responseCode?: number };
      return { ...failure(`the mail server refused: ${e.message}`), status: e.responseCode ?? null };
    }
  }

  /** Ends the requests still in flight (the server stops and cannot wait longer). */
  abortInFlight() {
    this.stopping.abort(new Error('the server is stopping'));
  }

  close() {
    void this.mailer?.then(
      (mailer) => mailer.close(),
      () => {},
    );
  }
}
