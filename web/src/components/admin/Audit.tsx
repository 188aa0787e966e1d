import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useEffect, useId, useState } from 'react';
import { api, type AuditEvent } from '../../api';
import { navigate, useLocation, withParams } from '../../router';
import { DataTable, ErrorMessage, Loading, Options, RelativeTime } from '../common';
import { Empty, LoadMore, Screen } from './Screen';

/** What the server records; the filter offers these, and keeps any other value it is given. */
const actions = [
  'auth.sign-in',
  'auth.sign-in-failed',
  'auth.sign-out',
  'user.create',
  'user.update',
  'user.activate',
  'user.deactivate',
  'user.reset-password',
  'user.change-password',
  'session.revoke',
  'schema.install',
  'schema.remove',
  'api-key.create',
  'api-key.revoke',
  'webhook-key.create',
  'webhook-key.rotate',
  'webhook-key.revoke',
  'delivery.redeliver',
  'delivery.redeliver-since',
  'endpoint.enable',
];

/** Who did what and when: sign-ins, people, schemas, keys and deliveries, newest first. */
export function Audit() {
  const loc = useLocation();
  const id = useId();
  const action = loc.params.get('action') || undefined;
  const actor = loc.params.get('actor') || undefined;
  const set = (changes: Record<string, string | undefined>) => navigate(withParams(loc, changes), { replace: true });

  // The actor box filters as one types, after a short pause (the match is exact).
  const [actorText, setActorText] = useState(actor ?? '');
  useEffect(() => setActorText(actor ?? ''), [actor]);
  useEffect(() => {
    const next = actorText.trim() || undefined;
    if (next === actor) return;
    const timer = setTimeout(() => set({ actor: next }), 400);
    return () => clearTimeout(timer);
  }, [actorText]); // eslint-disable-line react-hooks/exhaustive-deps

  const users = useQuery({ queryKey: ['admin', 'users'], queryFn: api.users });
  const events = useInfiniteQuery({
    queryKey: ['admin', 'audit', { action, actor }],
    queryFn: ({ pageParam }) => api.audit({ action, actor, cursor: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    staleTime: 0,
  });
  const list = events.data?.pages.flatMap((p) => p.events) ?? [];
  const filtered = action !== undefined || actor !== undefined;

  return (
    <Screen title="Audit log" lead="Who did what and when: sign-ins, people, schemas, keys and deliveries. Newest first; secrets are never recorded.">
      <div className="admin-filters" role="search" aria-label="Filter the audit log">
        <div className="field">
          <label htmlFor={`${id}-action`}>Action</label>
          <select id={`${id}-action`} value={action ?? ''} onChange={(e) => set({ action: e.target.value || undefined })}>
            <option value="">All actions</option>
            {action && !actions.includes(action) && <option value={action}>{action}</option>}
            <Options values={actions} />
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-actor`}>Actor</label>
          <input
            id={`${id}-actor`}
            type="search"
            list={`${id}-actors`}
            autoComplete="off"
            autoCapitalize="none"
            spellCheck={false}
            placeholder="username or key name"
            value={actorText}
            onChange={(e) => setActorText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter') set({ actor: actorText.trim() || undefined });
            }}
          />
          <datalist id={`${id}-actors`}>
            {users.data?.users.map((u) => <option key={u.id} value={u.username} />)}
            <option value="command line" />
          </datalist>
        </div>
        {filtered && (
          <div className="filter-clear">
            <button type="button" className="link" onClick={() => set({ action: undefined, actor: undefined })}>
              Clear filters
            </button>
          </div>
        )}
      </div>
      {events.isPending && <Loading />}
      <ErrorMessage error={events.error} />
      {events.isSuccess && list.length === 0 && <Empty>{filtered ? 'No event matches these filters.' : 'Nothing recorded yet.'}</Empty>}
      {list.length > 0 && (
        <DataTable caption="Audit events" className="admin-table audit-table" columns={['Time', 'Actor', 'Action', 'Target', 'Details', 'IP address']}>
          {list.map((e) => (
            <AuditRow key={e.id} event={e} />
          ))}
        </DataTable>
      )}
      <LoadMore hasMore={events.hasNextPage} loading={events.isFetchingNextPage} onMore={() => void events.fetchNextPage()} count={list.length} noun="event" />
    </Screen>
  );
}

const actorKinds: Record<string, string> = { person: 'person', 'api-key': 'API key', cli: 'command line', anonymous: 'not signed in' };

function AuditRow({ event: e }: { event: AuditEvent }) {
  const details = Object.entries(e.details ?? {});
  return (
    <tr>
      <td className="nowrap">
        <RelativeTime iso={e.created} />
      </td>
      <td>
        {e.actor.name ? <strong>{e.actor.name}</strong> : <span className="muted">unknown</span>}
        {e.actor.name !== actorKinds[e.actor.kind] && <div className="muted small">{actorKinds[e.actor.kind] ?? e.actor.kind}</div>}
      </td>
      <td>
        <code className="action">{e.action}</code>
      </td>
      <td className="mono break">{e.target ?? <span className="muted">—</span>}</td>
      <td>
        {details.length === 0 ? (
          <span className="muted">—</span>
        ) : (
          <ul className="details">
            {details.map(([k, v]) => (
              <li key={k}>
                <span className="muted">{k}:</span> <span className="mono break">{typeof v === 'string' ? v : JSON.stringify(v)}</span>
              </li>
            ))}
          </ul>
        )}
      </td>
      <td className="mono nowrap">{e.ip ?? <span className="muted">—</span>}</td>
    </tr>
  );
}
