import { useEffect, useRef } from 'react';
import type { Task, TaskType } from '../api';
import { summary } from '../meta';
import { Link } from '../router';
import { ErrorMessage, Loading, RelativeTime, StateBadge } from './common';

interface Props {
  tasks: Task[];
  types: Record<string, TaskType>;
  openId?: string;
  selectedId?: string;
  hrefOf: (id: string) => string;
  loading: boolean;
  error: unknown;
  hasMore: boolean;
  loadingMore: boolean;
  loadMore: () => void;
  filtered: boolean;
}

/** The tasks, loading the next page as the end scrolls into view. */
export function TaskList(p: Props) {
  const end = useRef<HTMLDivElement>(null);
  const { hasMore, loadingMore, loadMore } = p;
  useEffect(() => {
    const el = end.current;
    if (!el || !hasMore) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !loadingMore) loadMore();
    }, { rootMargin: '400px' });
    observer.observe(el);
    return () => observer.disconnect();
  }, [hasMore, loadingMore, loadMore]);

  if (p.loading) return <Loading label="Loading tasks…" />;
  return (
    <div className="task-list">
      <ErrorMessage error={p.error} />
      <ul className="tasks" aria-label="Task list">
        {p.tasks.map((t) => {
          const type = p.types[String(t.ttype_id)];
          const line = summary(t.meta);
          return (
            <li key={t.id}>
              <Link
                id={`task-row-${t.id}`}
                to={p.hrefOf(t.id)}
                className={`task-row${t.id === p.selectedId ? ' selected' : ''}`}
                aria-current={t.id === p.openId ? 'true' : undefined}
              >
                <div className="top">
                  <span className="type">{type?.name ?? `type ${t.ttype_id}`}</span>
                  <span className="schema">{type?.schema_name}</span>
                  <RelativeTime iso={t.created} />
                </div>
                <div className="row">
                  <StateBadge state={t.state} resolved={t.resolved} cancelled={t.cancelled !== null} />
                  {line && <span className="summary">{line}</span>}
                </div>
              </Link>
            </li>
          );
        })}
      </ul>
      <div ref={end} className="list-end" role="status">
        {p.tasks.length === 0
          ? p.filtered
            ? 'No tasks match. Try another view or filter.'
            : 'No tasks yet. They appear here as application servers post them.'
          : p.hasMore
            ? 'Loading more…'
            : `${p.tasks.length} task${p.tasks.length === 1 ? '' : 's'}`}
      </div>
    </div>
  );
}
