import type { HistoryEntry } from '../api';
import { RelativeTime, StateBadge } from './common';

/** Who moved the task to which state, and when (oldest first). */
export function History({ entries }: { entries: HistoryEntry[] }) {
  if (entries.length === 0) return <p className="muted">No history.</p>;
  return (
    <ol className="history">
      {entries.map((h, n) => (
        <li key={h.id} className="row">
          <StateBadge state={h.state} resolved={h.resolved} />
          <span>
            {n === 0 ? 'created' : h.state === null ? 'unset' : 'set'}
            {h.editor_name ? ` by ${h.editor_name}` : h.editor_id ? ' by a removed person' : n === 0 ? ' by the application' : ' by an application server'}
          </span>
          <span className="muted">
            <RelativeTime iso={h.created} />
          </span>
          {h.update_meta && n > 0 && <span className="muted">· details updated</span>}
        </li>
      ))}
    </ol>
  );
}
