import type { HistoryEntry } from '../api';
import { RelativeTime, StateBadge } from './common';

const verbs: Record<HistoryEntry['event'], string> = { created: 'created', state: 'set', meta: 'details updated', cancel: 'cancelled' };

/** Who did what to the task, and when (oldest first). */
export function History({ entries }: { entries: HistoryEntry[] }) {
  if (entries.length === 0) return <p className="muted">No history.</p>;
  return (
    <ol className="history">
      {entries.map((h) => {
        const who = h.editor_name ? `by ${h.editor_name}` : h.editor_id ? 'by a removed person' : h.event === 'created' ? 'by the application' : 'by an application server';
        return (
          <li key={h.id} className="row">
            {h.event === 'meta' ? <span className="badge">details</span> : <StateBadge state={h.state} resolved={h.resolved} cancelled={h.event === 'cancel'} />}
            <span>
              {h.event === 'state' && h.state === null ? 'unset' : verbs[h.event]} {who}
              {h.reason ? `: ${h.reason}` : ''}
            </span>
            <span className="muted">
              <RelativeTime iso={h.created} />
            </span>
          </li>
        );
      })}
    </ol>
  );
}
