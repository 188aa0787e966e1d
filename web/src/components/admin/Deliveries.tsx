import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, type MouseEvent } from 'react';
import { api, type DeliveryStatus, type WebhookDelivery } from '../../api';
import { Link, navigate, useLocation, withParams } from '../../router';
import { CopyButton, DataTable, ErrorMessage, Loading, Options, RelativeTime } from '../common';
import { DetailDialog } from './DetailDialog';
import { Empty, LoadMore, Moment, Screen } from './Screen';

const statuses: { value: DeliveryStatus; label: string }[] = [
  { value: 'pending', label: 'Pending (retrying)' },
  { value: 'delivered', label: 'Delivered' },
  { value: 'failed', label: 'Failed' },
  { value: 'dead', label: 'Dead (gave up)' },
  { value: 'paused', label: 'Paused (endpoint disabled)' },
];
const isStatus = (s: string | null): s is DeliveryStatus => statuses.some((x) => x.value === s);

/** The webhook delivery log: filter by status and schema, open one to see its attempts and payload. */
export function Deliveries() {
  const loc = useLocation();
  const id = useId();
  const statusParam = loc.params.get('status');
  const status = isStatus(statusParam) ? statusParam : undefined;
  const schema = loc.params.get('schema') || undefined;
  const openId = Number(loc.params.get('delivery')) || null;
  const schemas = useQuery({ queryKey: ['admin', 'schemas'], queryFn: api.schemas });
  const deliveries = useInfiniteQuery({
    queryKey: ['admin', 'deliveries', { status, schema }],
    queryFn: ({ pageParam }) => api.deliveries({ status, schema, cursor: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    staleTime: 0,
  });
  const list = deliveries.data?.pages.flatMap((p) => p.deliveries) ?? [];
  const set = (changes: Record<string, string | undefined>) => navigate(withParams(loc, changes), { replace: true });
  const open = (delivery?: number) => navigate(withParams(loc, { delivery: delivery === undefined ? undefined : String(delivery) }));

  return (
    <Screen title="Deliveries" lead="Every webhook task-inbox sent or is still trying to send to application servers, newest first.">
      <div className="admin-filters" role="search" aria-label="Filter deliveries">
        <div className="field">
          <label htmlFor={`${id}-status`}>Status</label>
          <select id={`${id}-status`} value={status ?? ''} onChange={(e) => set({ status: e.target.value || undefined })}>
            <option value="">All statuses</option>
            {statuses.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-schema`}>Schema</label>
          <select id={`${id}-schema`} value={schema ?? ''} onChange={(e) => set({ schema: e.target.value || undefined })}>
            <option value="">All schemas</option>
            {schema && !schemas.data?.schemas.some((s) => s.name === schema) && <option value={schema}>{schema}</option>}
            <Options values={schemas.data?.schemas.map((s) => s.name)} />
          </select>
        </div>
      </div>
      {deliveries.isPending && <Loading />}
      <ErrorMessage error={deliveries.error} />
      {deliveries.isSuccess && list.length === 0 && <Empty>{status || schema ? 'No delivery matches these filters.' : 'No webhook has been sent yet.'}</Empty>}
      {list.length > 0 && (
        <DataTable caption="Webhook deliveries" className="admin-table clickable" columns={['Delivery', 'Status', 'Schema', 'Task', 'Mode', 'Attempts', 'Last answer', 'Created']}>
          {list.map((d) => (
            <DeliveryRow key={d.id} delivery={d} current={d.id === openId} onOpen={() => open(d.id)} />
          ))}
        </DataTable>
      )}
      <LoadMore hasMore={deliveries.hasNextPage} loading={deliveries.isFetchingNextPage} onMore={() => void deliveries.fetchNextPage()} count={list.length} noun="delivery" />
      {openId !== null && <DeliveryDialog id={openId} onClose={() => open(undefined)} />}
    </Screen>
  );
}

export function DeliveryStatusBadge({ status }: { status: DeliveryStatus }) {
  return <span className={`badge ${status}`}>{status}</span>;
}

function DeliveryRow({ delivery: d, current, onOpen }: { delivery: WebhookDelivery; current: boolean; onOpen: () => void }) {
  // The whole row opens the delivery; the button in its first cell is the keyboard's way in.
  const click = (e: MouseEvent<HTMLTableRowElement>) => {
    if ((e.target as HTMLElement).closest('a, button')) return;
    onOpen();
  };
  return (
    <tr onClick={click} aria-current={current ? 'true' : undefined}>
      <td>
        <button type="button" className="link mono" onClick={onOpen} aria-label={`Delivery #${d.id}: details`}>
          #{d.id}
        </button>
      </td>
      <td>
        <DeliveryStatusBadge status={d.status} />
      </td>
      <td className="mono">{d.schema_name}</td>
      <td>
        {d.task_id ? (
          <Link to={`/taskui/tasks/${d.task_id}`} className="mono" title={d.task_id} aria-label={`Task ${d.task_id}`}>
            {d.task_id.slice(0, 8)}
          </Link>
        ) : (
          <span className="muted">deleted</span>
        )}
      </td>
      <td>{d.mode}</td>
      <td className="num">{d.attempts}</td>
      <td className="nowrap">{d.last_status ?? (d.last_error ? <span className="muted">no answer</span> : <span className="muted">—</span>)}</td>
      <td className="nowrap">
        <RelativeTime iso={d.created} />
      </td>
    </tr>
  );
}

function DeliveryDialog({ id, onClose }: { id: number; onClose: () => void }) {
  const queryClient = useQueryClient();
  const detail = useQuery({
    queryKey: ['admin', 'delivery', id],
    queryFn: () => api.delivery(id),
    refetchInterval: (q) => (q.state.data?.delivery.status === 'pending' ? 3000 : false),
  });
  const redeliver = useMutation({
    mutationFn: () => api.redeliver(id),
    onSuccess: (data) => {
      queryClient.setQueryData(['admin', 'delivery', id], data);
      void queryClient.invalidateQueries({ queryKey: ['admin', 'deliveries'] });
    },
  });
  const d = detail.data?.delivery;
  const payload = detail.data ? JSON.stringify(detail.data.payload, null, 2) : '';
  return (
    <DetailDialog
      title={`Delivery #${id}`}
      subtitle={
        d && (
          <span className="row">
            <DeliveryStatusBadge status={d.status} />
            <span>
              {d.mode} · {d.schema_name}
            </span>
          </span>
        )
      }
      onClose={onClose}
    >
      {detail.isPending && <Loading />}
      <ErrorMessage error={detail.error} />
      {d && detail.data && (
        <>
          <dl className="facts">
            <div>
              <dt>Sent to</dt>
              <dd className="mono break">{d.url}</dd>
            </div>
            <div>
              <dt>Task</dt>
              <dd>
                {d.task_id ? (
                  <Link to={`/taskui/tasks/${d.task_id}`} className="mono break">
                    {d.task_id}
                  </Link>
                ) : (
                  <span className="muted">deleted</span>
                )}
              </dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>
                <RelativeTime iso={d.created} />
              </dd>
            </div>
            <div>
              <dt>Delivered</dt>
              <dd>
                <Moment iso={d.delivered_at} none="not yet" />
              </dd>
            </div>
            {d.status === 'pending' && (
              <div>
                <dt>Next attempt</dt>
                <dd>
                  <Moment iso={d.next_attempt_at} none="soon" />
                </dd>
              </div>
            )}
            <div>
              <dt>Webhook id</dt>
              <dd className="mono break">{d.webhook_id}</dd>
            </div>
          </dl>
          {d.mode === 'async' && (
            <div className="row">
              <button type="button" className="primary" onClick={() => redeliver.mutate()} disabled={redeliver.isPending}>
                {redeliver.isPending ? 'Queuing…' : 'Redeliver'}
              </button>
              <span className="muted small">Sends the same payload again, with the same webhook id.</span>
            </div>
          )}
          <ErrorMessage error={redeliver.error} />
          {redeliver.isSuccess && (
            <div className="alert ok" role="status">
              Queued to be sent again.
            </div>
          )}
          <section className="stack" aria-labelledby="attempts-title">
            <h3 id="attempts-title">Attempts</h3>
            {detail.data.attempts.length === 0 ? (
              <p className="muted">No attempt yet.</p>
            ) : (
              <ol className="attempt-list">
                {detail.data.attempts.map((a, n) => (
                  <li key={a.id} className="stack">
                    <div className="row">
                      <strong>Attempt {n + 1}</strong>
                      <span className={`badge ${a.status_code !== null && a.status_code < 300 ? 'delivered' : 'failed'}`}>{a.status_code ?? 'no answer'}</span>
                      <span className="muted">
                        {a.latency_ms} ms · <RelativeTime iso={a.created} />
                      </span>
                    </div>
                    {a.error && <div className="attempt-error">{a.error}</div>}
                    {a.response_body ? (
                      <pre className="code-block" tabIndex={0}>
                        {a.response_body}
                      </pre>
                    ) : (
                      <span className="muted small">No response body.</span>
                    )}
                  </li>
                ))}
              </ol>
            )}
          </section>
          <section className="stack" aria-labelledby="payload-title">
            <div className="row">
              <h3 id="payload-title">Payload</h3>
              <span className="spacer" />
              <CopyButton text={payload} label="Copy payload" />
            </div>
            <pre className="code-block" tabIndex={0}>
              {payload}
            </pre>
          </section>
        </>
      )}
    </DetailDialog>
  );
}
