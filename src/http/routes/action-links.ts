import { createHash } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/index.js';
import { escapeHtml, inspectActionLink, stateLabel, useActionLink, type LinkRefusal, type LinkTarget, type Notifications } from '../../core/notify/index.js';
import type { Webhooks } from '../../core/webhooks/index.js';
import { AppError } from '../../errors.js';
import { refuseCrossSite } from '../auth.js';

const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#111;background:#fff}' +
  'h1{font-size:1.4rem}dt{font-weight:600}dd{margin:0 0 .5rem}.muted{color:#555}' +
  'button{font:inherit;min-height:44px;padding:.5rem 1.25rem;border-radius:8px;border:1px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer}' +
  'a{color:#0b57d0}.problem{border-left:4px solid #b3261e;padding-left:.75rem}' +
  '@media (prefers-color-scheme:dark){body{color:#eee;background:#111}.muted{color:#bbb}a{color:#8ab4f8}button{background:#8ab4f8;border-color:#8ab4f8;color:#111}}';

/** Nothing but that one style block and a form posting to this page itself; the token is kept out of referrers. */
const HEADERS = {
  'content-security-policy': `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-robots-tag': 'noindex, nofollow',
  'x-content-type-options': 'nosniff',
};

function page(reply: FastifyReply, status: number, title: string, body: string) {
  return reply
    .status(status)
    .headers(HEADERS)
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
        `<title>${escapeHtml(title)} · task-inbox</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`,
    );
}

const REFUSALS: Record<LinkRefusal, [number, string, string]> = {
  invalid: [404, 'This link is not valid', 'It may have been copied incompletely. Open the task in the inbox instead.'],
  used: [410, 'This link has been used', 'A link works once, and using one spends the other links you were sent for the same task.'],
  expired: [410, 'This link has expired', 'Open the task in the inbox instead.'],
  inactive: [403, 'This link no longer works', 'The account it was sent to is deactivated.'],
  gone: [404, 'The task no longer exists', 'Its schema may have been removed.'],
};

function refusal(reply: FastifyReply, why: LinkRefusal) {
  const [status, title, detail] = REFUSALS[why];
  return page(reply, status, title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(detail)}</p><p><a href="/taskui">Open the inbox</a></p>`);
}

function describe(t: LinkTarget): string {
  const rows = [
    ['Schema', t.schema],
    ['Type', t.type],
    ...t.fields.map((f) => [f.name, f.value] as const),
    ['Current state', `${stateLabel(t.currentState)}${t.resolved ? ' (resolved)' : ''}${t.cancelled ? ' (cancelled by the application)' : ''}`],
  ];
  return `<dl>${rows.map(([k, v]) => `<dt>${escapeHtml(k!)}</dt><dd>${escapeHtml(v!)}</dd>`).join('')}</dl>`;
}

const TokenParams = z.object({ token: z.string().max(300) });
const html = { 200: z.string(), 403: z.string(), 404: z.string(), 409: z.string(), 410: z.string(), 502: z.string() };

/**
 * One-tap links from notifications. Opening one (GET) only shows what it would do: mail scanners
 * that fetch every link change nothing. The button on that page (POST) makes the change, as the
 * person the link was sent to.
 */
export function actionLinkRoutes(database: Database, config: Config, notifications: Notifications, webhooks: Webhooks): FastifyPluginAsyncZod {
  return async (app) => {
    // The confirm form posts no fields (the token is in the path); its body is ignored.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 }, (_req, _body, done) => done(null, {}));

    app.get('/act/:token', { config: { auth: 'public' }, schema: { hide: true, params: TokenParams, response: html } }, async (req, reply) => {
      const found = await inspectActionLink(database, notifications, req.params.token);
      if (!found.ok) return refusal(reply, found.refusal);
      const t = found.target;
      const label = escapeHtml(stateLabel(t.state));
      return page(
        reply,
        200,
        `Set to ${stateLabel(t.state)}?`,
        `<h1>Set this task to “${label}”?</h1><p class="muted">As ${escapeHtml(t.person)}. Nothing changes until you confirm.</p>${describe(t)}` +
          `<form method="post"><button type="submit">Set to ${label}</button></form>` +
          `<p><a href="/taskui/${escapeHtml(t.taskId)}">Open it in the inbox instead</a></p>`,
      );
    });

    app.post('/act/:token', { config: { auth: 'public' }, schema: { hide: true, params: TokenParams, response: html } }, async (req, reply) => {
      try {
        refuseCrossSite(config, req);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        return page(reply, 403, 'Refused', `<h1>This confirmation came from another site</h1><p>Nothing was changed. Open the link again and confirm on its own page.</p>`);
      }
      const used = await useActionLink(database, notifications, webhooks, req.params.token);
      if (used.ok) {
        const label = escapeHtml(stateLabel(used.target.state));
        const said = used.changed ? `The task is now “${label}”.` : `The task already was “${label}”.`;
        return page(reply, 200, 'Done', `<h1>Done</h1><p>${said}</p>${describe({ ...used.target, currentState: used.target.state })}<p><a href="/taskui/${escapeHtml(used.target.taskId)}">Open it in the inbox</a></p>`);
      }
      if ('refusal' in used) return refusal(reply, used.refusal);
      const status = used.error.status >= 500 ? 502 : 409;
      return page(
        reply,
        status,
        'Not changed',
        `<h1>The task was not changed</h1><p class="problem">${escapeHtml(used.error.detail)}</p><p>The link still works: you can try again.</p>${describe(used.target)}` +
          `<p><a href="/taskui/${escapeHtml(used.target.taskId)}">Open it in the inbox</a></p>`,
      );
    });
  };
}
