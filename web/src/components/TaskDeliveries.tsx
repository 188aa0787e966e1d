import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, type TaskDelivery } from '../api';
import { ErrorMessage, RelativeTime } from './common';

const statusText: Record<TaskDelivery['status'], string> = {
  pending: 'retrying',
  delivered: 'delivered',
  failed: 'failed',
  dead: 'failed for good',
  paused: 'paused (endpoint disabled)',
};

/** Each change's webhook: delivered, retrying or failed with what the receiver answered. */
export function TaskDeliveries({ taskId }: { taskId: string }) {
  const queryClient = useQueryClient();
  const me = useQuery({ queryKey: ['me'], queryFn: api.me, staleTime: 5 * 60_000 });
  const deliveries = useQuery({
    queryKey: ['task', taskId, 'deliveries'],
    queryFn: () => api.taskDeliveries(taskId),
    // Retrying deliveries change without a task event: look again while any is pending.
    refetchInterval: (q) => (q.state.data?.deliveries.some((d) => d.status === 'pending') ? 3000 : false),
  });
  const redeliver = useMutation({
    mutationFn: api.redeliver,
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['task', taskId, 'deliveries'] }),
  });
  const list = deliveries.data?.deliveries ?? [];
  if (list.length === 0 && !deliveries.error) return null;
  const isAdmin = me.data?.user.role === 'admin';
  return (
    <section aria-labelledby="deliveries-title">
      <h2 id="deliveries-title">Webhooks</h2>
      <ErrorMessage error={deliveries.error ?? redeliver.error} />
      <ul className="deliveries">
        {list.map((d) => {
          const last = d.attempts[d.attempts.length - 1];
          return (
            <li key={d.id} className="stack" style={{ gap: 4 }}>
              <div className="row">
                <span className={`badge ${d.status}`}>{statusText[d.status]}</span>
                <span className="muted">
                  {d.mode} · {d.attempts.length} attempt{d.attempts.length === 1 ? '' : 's'} · <RelativeTime iso={d.created} />
                </span>
                {isAdmin && d.mode === 'async' && d.status !== 'pending' && (
                  <button type="button" onClick={() => redeliver.mutate(d.id)} disabled={redeliver.isPending}>
                    Redeliver
                  </button>
                )}
              </div>
              {last && d.status !== 'delivered' && (
                <div className="muted">
                  The receiver answered {last.status_code ?? 'nothing'}
                  {last.error ? ` (${last.error})` : ''}
                  {last.response_body ? (
                    <>
                      : <pre>{last.response_body}</pre>
                    </>
                  ) : null}
                </div>
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
