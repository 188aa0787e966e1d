import { useEffect, useState, type ReactNode } from 'react';
import { ApiError } from '../api';

/** An error from the API, in words a person can act on; a refused webhook shows the receiver's answer. */
export function ErrorMessage({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const problem = error instanceof ApiError ? error.problem : undefined;
  const receiver = problem?.receiver;
  const issues = (problem?.errors ?? []) as { line?: number; column?: number; field?: string; message?: string }[];
  const listed = issues.length > 0 && issues.some((i) => i.line !== undefined);
  // With positioned issues, the detail only repeats them: the title and the list say it once.
  const message = problem ? (listed ? `${problem.title}:` : problem.detail || problem.title) : (error as Error).message || String(error);
  return (
    <div className="alert error" role="alert">
      {title && <strong>{title} </strong>}
      <span style={{ whiteSpace: 'pre-wrap' }}>{message}</span>
      {receiver && (
        <div className="receiver">
          <div>
            The application server answered{receiver.status !== null ? ` ${receiver.status}` : ''}
            {receiver.error ? ` (${receiver.error})` : ''}:
          </div>
          {receiver.body ? <pre>{receiver.body}</pre> : <div className="muted">(no body)</div>}
        </div>
      )}
      {listed && (
        <ul>
          {issues.map((i, n) => (
            <li key={n}>
              Line {i.line}
              {i.field ? `, ${i.field}` : ''}: {i.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['week', 7 * 86400],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatRelative(iso: string, now = Date.now()): string {
  const seconds = (new Date(iso).getTime() - now) / 1000;
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      if (unit === 'second' && Math.abs(seconds) < 45) return 'just now';
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return '';
}

/** A timestamp shown as "5 min ago", with the full date on hover and for screen readers. */
export function RelativeTime({ iso }: { iso: string }) {
  const [, tick] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => tick((n) => n + 1), 30_000);
    return () => clearInterval(timer);
  }, []);
  const full = absolute.format(new Date(iso));
  return (
    <time dateTime={iso} title={full} aria-label={full}>
      {formatRelative(iso)}
    </time>
  );
}

export function StateBadge({ state, resolved, cancelled = false }: { state: string | null; resolved: boolean; cancelled?: boolean }) {
  if (cancelled) return <span className="badge cancelled">cancelled</span>;
  return (
    <span className={`badge ${resolved ? 'resolved' : state ? 'pending' : ''}`}>
      {state ?? 'new'}
      {resolved && <span aria-label=", resolved"> ✓</span>}
    </span>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="muted" role="status">
      {label}
    </p>
  );
}

export function Page({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <div className="page stack">
      <div className="row">
        <h1 style={{ margin: 0 }}>{title}</h1>
        <span className="spacer" />
        {actions}
      </div>
      {children}
    </div>
  );
}

/** The options of a select, one for each value, each shown as the value itself. */
export function Options({ values }: { values: readonly string[] | undefined }) {
  return values?.map((v) => (
    <option key={v} value={v}>
      {v}
    </option>
  ));
}

/** A column heading; a hidden one (e.g. the actions column) is there only for screen readers. */
export type Column = string | { label: string; hidden: true };

/**
 * A table with a row of column headings, scrolling sideways inside its frame on a narrow screen.
 * By default it is an admin list: framed as a flush card, with the compact admin-table look.
 * The caption, when given, names the table for screen readers only.
 */
export function DataTable({ caption, columns, className = 'admin-table', framed = true, children }: { caption?: string; columns: Column[]; className?: string; framed?: boolean; children: ReactNode }) {
  return (
    <div className={framed ? 'table-wrap card flush' : 'table-wrap'}>
      <table className={className || undefined}>
        {caption ? <caption className="visually-hidden">{caption}</caption> : null}
        <thead>
          <tr>
            {columns.map((c) =>
              typeof c === 'string' ? (
                <th key={c} scope="col">
                  {c}
                </th>
              ) : (
                <th key={c.label} scope="col">
                  <span className="visually-hidden">{c.label}</span>
                </th>
              ),
            )}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** A button that asks before doing something that cannot be undone. */
export function ConfirmButton({ label, question, onConfirm, disabled, className = 'danger' }: { label: string; question: string; onConfirm: () => void; disabled?: boolean; className?: string }) {
  return (
    <button type="button" className={className} disabled={disabled} onClick={() => window.confirm(question) && onConfirm()}>
      {label}
    </button>
  );
}

/** Copies text to the clipboard, saying so for screen readers. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setCopied(true);
          setTimeout(() => setCopied(false), 2000);
        } catch {
          window.prompt('Copy this:', text);
        }
      }}
    >
      <span aria-live="polite">{copied ? 'Copied' : label}</span>
    </button>
  );
}

/** True while the person is typing somewhere (shortcuts must not fire then). */
export function isTyping(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  if (!t) return false;
  return t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName);
}

/** A keyboard shortcut without modifiers (Shift allowed for `?`). */
export function plainKey(e: KeyboardEvent): boolean {
  return !e.ctrlKey && !e.metaKey && !e.altKey && !e.isComposing;
}
