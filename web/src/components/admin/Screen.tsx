import type { ReactNode } from 'react';
import { RelativeTime } from '../common';

/** One admin screen: its title (the page's h1), a line saying what it is for, and its content. */
export function Screen({ title, lead, children }: { title: string; lead: ReactNode; children: ReactNode }) {
  return (
    <section className="admin-screen stack" aria-labelledby="admin-title">
      <header className="admin-screen-head">
        <h1 id="admin-title">{title}</h1>
        <p className="muted">{lead}</p>
      </header>
      {children}
    </section>
  );
}

/** A time, or a word for its absence ("never", "—"). */
export function Moment({ iso, none = '—' }: { iso: string | null | undefined; none?: string }) {
  return iso ? <RelativeTime iso={iso} /> : <span className="muted">{none}</span>;
}

/** The "Load more" button under a paged list, or a quiet end-of-list line. */
export function LoadMore({ hasMore, loading, onMore, count, noun }: { hasMore: boolean; loading: boolean; onMore: () => void; count: number; noun: string }) {
  if (count === 0) return null;
  return (
    <div className="admin-more">
      {hasMore ? (
        <button type="button" onClick={onMore} disabled={loading}>
          {loading ? 'Loading…' : 'Load more'}
        </button>
      ) : (
        <span className="muted">
          {count} {noun}
          {count === 1 ? '' : 's'}, that is all.
        </span>
      )}
    </div>
  );
}

/** A quiet placeholder for a list with nothing in it yet. */
export function Empty({ children }: { children: ReactNode }) {
  return <p className="admin-empty muted">{children}</p>;
}

/** Where a key stands: revoked (and when), expired, in the grace period after a rotation, or active. */
export function KeyStatus({ revoked, expired = false, grace = false }: { revoked: string | null; expired?: boolean; grace?: boolean }) {
  if (revoked)
    return (
      <span className="badge dead">
        revoked <RelativeTime iso={revoked} />
      </span>
    );
  if (expired) return <span className="badge">expired</span>;
  if (grace) return <span className="badge pending">in grace period</span>;
  return <span className="badge delivered">active</span>;
}
