import { useInfiniteQuery } from '@tanstack/react-query';
import { useId } from 'react';
import { api, type NotificationLogEntry, type NotificationStatus } from '../../api';
import { Link, navigate, useLocation, withParams } from '../../router';
import { DataTable, ErrorMessage, Loading, RelativeTime } from '../common';
import { Empty, LoadMore, Moment, Screen } from './Screen';

const statuses: { value: NotificationStatus; label: string }[] = [
  { value: 'pending', label: 'Pending (waiting or retrying)' },
  { value: 'sent', label: 'Sent' },
  { value: 'skipped', label: 'Skipped (task resolved first)' },
  { value: 'gone', label: 'Gone (push subscription expired)' },
  { value: 'dead', label: 'Dead (gave up)' },
];
const isStatus = (s: string | null): s is NotificationStatus => statuses.some((x) => x.value === s);

const kinds: Record<NotificationLogEntry['kind'], string> = { push: 'Push', email: 'Email', slack: 'Slack-compatible', ntfy: 'ntfy', webhook: 'JSON webhook' };

/** The notification log: every push, email and channel message about new tasks, newest first. */
export function NotificationLog() {
  const loc = useLocation();
  const id = useId();
  const statusParam = loc.params.get('status');
  const status = isStatus(statusParam) ? statusParam : undefined;
  const log = useInfiniteQuery({
    queryKey: ['admin', 'notifications', { status }],
    queryFn: ({ pageParam }) => api.notificationLog({ status, cursor: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    staleTime: 0,
  });
  const list = log.data?.pages.flatMap((p) => p.notifications) ?? [];

  return (
    <Screen title="Notifications" lead="Every push notification and channel message about new tasks that task-inbox sent or is still trying to send, newest first.">
      <div className="admin-filters" role="search" aria-label="Filter notifications">
        <div className="field">
          <label htmlFor={`${id}-status`}>Status</label>
          <select id={`${id}-status`} value={status ?? ''} onChange={(e) => navigate(withParams(loc, { status: e.target.value || undefined }), { replace: true })}>
            <option value="">All statuses</option>
            {statuses.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
      </div>
      {log.isPending && <Loading />}
      <ErrorMessage error={log.error} />
      {log.isSuccess && list.length === 0 && <Empty>{status ? 'No notification has this status.' : 'No notification has been sent yet.'}</Empty>}
      {list.length > 0 && (
        <DataTable caption="Notifications" columns={['Created', 'Status', 'Kind', 'Person', 'Sent to', 'Task', 'Attempts', 'Last answer', 'Sent']}>
          {list.map((n) => (
            <NotificationRow key={n.id} entry={n} />
          ))}
        </DataTable>
      )}
      <LoadMore hasMore={log.hasNextPage} loading={log.isFetchingNextPage} onMore={() => void log.fetchNextPage()} count={list.length} noun="notification" />
    </Screen>
  );
}

function NotificationRow({ entry: n }: { entry: NotificationLogEntry }) {
  return (
    <tr>
      <td className="nowrap">
        <RelativeTime iso={n.created} />
      </td>
      <td>
        <span className={`badge ${n.status}`}>{n.status}</span>
        {n.status === 'pending' && (
          <div className="muted small">
            due <RelativeTime iso={n.due} />
          </div>
        )}
      </td>
      <td>{kinds[n.kind] ?? n.kind}</td>
      <td>{n.username}</td>
      <td className="break">{n.target}</td>
      <td>
        {n.task_id ? (
          <Link to={`/taskui/tasks/${n.task_id}`} className="mono" title={n.task_id} aria-label={`Task ${n.task_id}`}>
            {n.task_id.slice(0, 8)}
          </Link>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td className="num">{n.attempts}</td>
      <td>
        {n.last_status !== null && <div className="nowrap">{n.last_status}</div>}
        {n.last_error ? <div className="attempt-error small">{n.last_error}</div> : n.last_status === null && <span className="muted">—</span>}
      </td>
      <td className="nowrap">
        <Moment iso={n.sent_at} none="not yet" />
      </td>
    </tr>
  );
}
