import type { PushMessage } from '../../contract/index.js';

/** A field of a task's metadata marked for notifications (`key__notify`, SPEC §4). */
export interface NotifyField {
  name: string;
  value: string;
}

/** One state a one-tap link sets. */
export interface TaskAction {
  state: string | null;
  url: string;
}

/** What a message says about one new task: schema, type, a link, and only the fields marked `notify`. */
export interface TaskSummary {
  id: string;
  schema: string;
  type: string;
  fields: NotifyField[];
  /** The task in the inbox. */
  url: string;
  /** One-tap links, one per state (empty for push, which opens the inbox). */
  actions: TaskAction[];
}

const MAX_FIELD_CHARS = 300;

/**
 * The metadata fields whose key carries the `notify` attribute, by field name. Nothing else of
 * the metadata leaves the server in a notification: messages cross services we do not control.
 */
export function notifyFields(meta: Record<string, unknown> | null): NotifyField[] {
  if (!meta) return [];
  const fields: NotifyField[] = [];
  for (const [key, raw] of Object.entries(meta)) {
    const [name, ...attributes] = key.split('__');
    if (!name || !attributes.includes('notify')) continue;
    const text = typeof raw === 'string' ? raw : JSON.stringify(raw) ?? '';
    fields.push({ name, value: text.length > MAX_FIELD_CHARS ? `${text.slice(0, MAX_FIELD_CHARS - 1)}…` : text });
  }
  return fields;
}

/** A state as a person reads it on a button. */
export const stateLabel = (state: string | null) => state ?? '(no state)';

export function pushMessageFor(task: TaskSummary): PushMessage {
  const lines = [`${task.schema} · ${task.type}`, ...task.fields.map((f) => `${f.name}: ${f.value}`)];
  return { title: `new ${task.type}`, body: lines.join('\n'), tag: `${task.schema}/${task.type}`, renotify: true, url: new URL(task.url).pathname };
}

export function subjectFor(tasks: readonly TaskSummary[]): string {
  if (tasks.length === 1) return `new ${tasks[0]!.type} (${tasks[0]!.schema})`;
  return `${tasks.length} new tasks`;
}

/** The plain-text message: email text part, ntfy message. */
export function textFor(tasks: readonly TaskSummary[]): string {
  return tasks
    .map((t) => {
      const lines = [`${t.schema} · ${t.type}`, ...t.fields.map((f) => `  ${f.name}: ${f.value}`), `  Open: ${t.url}`];
      for (const a of t.actions) lines.push(`  Set to ${stateLabel(a.state)}: ${a.url}`);
      return lines.join('\n');
    })
    .join('\n\n');
}

/** Text made safe inside HTML elements and attribute values. */
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The HTML part of an email: every value escaped, links only to this server. */
export function htmlFor(tasks: readonly TaskSummary[]): string {
  const blocks = tasks.map((t) => {
    const fields = t.fields.map((f) => `<tr><th align="left" style="padding-right:12px">${escapeHtml(f.name)}</th><td>${escapeHtml(f.value)}</td></tr>`).join('');
    const buttons = t.actions
      .map((a) => `<a href="${escapeHtml(a.url)}" style="display:inline-block;margin:4px 8px 4px 0;padding:8px 14px;border:1px solid #444;border-radius:6px;color:#111;text-decoration:none">${escapeHtml(stateLabel(a.state))}</a>`)
      .join('');
    return (
      `<div style="margin:0 0 24px"><h2 style="font-size:18px;margin:0 0 8px">${escapeHtml(t.type)} <span style="color:#666;font-weight:normal">${escapeHtml(t.schema)}</span></h2>` +
      (fields ? `<table style="margin:0 0 8px">${fields}</table>` : '') +
      `<p style="margin:0 0 8px"><a href="${escapeHtml(t.url)}">Open in the inbox</a></p>` +
      (buttons ? `<p style="margin:0">${buttons}</p>` : '') +
      '</div>'
    );
  });
  return `<!doctype html><html><body style="font-family:system-ui,sans-serif;color:#111">${blocks.join('')}<p style="color:#666;font-size:12px">Each button asks you to confirm before anything changes; each works once.</p></body></html>`;
}

/** Slack's mrkdwn needs &, < and > escaped; links are `<url|label>`. */
const escapeSlack = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A Slack-compatible incoming-webhook body (Slack, Mattermost, Discord's /slack endpoint). */
export function slackBodyFor(tasks: readonly TaskSummary[]): { text: string } {
  const text = tasks
    .map((t) => {
      const lines = [`*new ${escapeSlack(t.type)}* (${escapeSlack(t.schema)}) <${t.url}|open>`, ...t.fields.map((f) => `${escapeSlack(f.name)}: ${escapeSlack(f.value)}`)];
      if (t.actions.length > 0) lines.push(t.actions.map((a) => `<${a.url}|${escapeSlack(stateLabel(a.state))}>`).join(' · '));
      return lines.join('\n');
    })
    .join('\n\n');
  return { text };
}

/** An ntfy JSON publish body: one task gets up to three view buttons (ntfy's limit), a digest lists links. */
export function ntfyBodyFor(topic: string, tasks: readonly TaskSummary[]) {
  const one = tasks.length === 1 ? tasks[0]! : null;
  return {
    topic,
    title: subjectFor(tasks),
    message: textFor(one ? [{ ...one, actions: one.actions.length > 3 ? one.actions : [] }] : tasks),
    click: one ? one.url : tasks[0]!.url.replace(/\/taskui\/.*$/, '/taskui'),
    tags: ['inbox_tray'],
    actions: one ? one.actions.slice(0, 3).map((a) => ({ action: 'view', label: stateLabel(a.state), url: a.url, clear: true })) : [],
  };
}

/** The generic JSON webhook body. */
export function webhookBodyFor(tasks: readonly TaskSummary[]) {
  return {
    type: 'tasks.new',
    tasks: tasks.map((t) => ({
      id: t.id,
      schema: t.schema,
      type: t.type,
      url: t.url,
      fields: Object.fromEntries(t.fields.map((f) => [f.name, f.value])),
      actions: t.actions.map((a) => ({ state: a.state, url: a.url })),
    })),
  };
}
