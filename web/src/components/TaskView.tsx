import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';
import { api, type GetTaskResponse } from '../api';
import { Link } from '../router';
import { ErrorMessage, isTyping, Loading, plainKey, RelativeTime, StateBadge } from './common';
import { History } from './History';
import { MetaTable } from './MetaTable';
import { StateButtons, stateChoices } from './StateButtons';
import { TaskDeliveries } from './TaskDeliveries';

/** One task: what it is, its state buttons, metadata, history and webhook deliveries. */
export function TaskView({ id, backHref }: { id: string; backHref: string }) {
  const queryClient = useQueryClient();
  const task = useQuery({ queryKey: ['task', id], queryFn: () => api.getTask(id) });
  const history = useQuery({ queryKey: ['task', id, 'history'], queryFn: () => api.history(id) });
  const setState = useMutation({
    mutationFn: (state: string | null) => api.setState(id, state),
    onSuccess: ({ task: updated }) => {
      queryClient.setQueryData<GetTaskResponse>(['task', id], (old) => (old ? { ...old, task: updated } : old));
      void queryClient.invalidateQueries({ queryKey: ['task', id] });
      void queryClient.invalidateQueries({ queryKey: ['tasks'] });
      void queryClient.invalidateQueries({ queryKey: ['count'] });
    },
  });

  // 1–9 press the n-th state button.
  const current = useRef({ data: task.data, setState });
  current.current = { data: task.data, setState };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!plainKey(e) || isTyping(e) || e.defaultPrevented || !/^[1-9]$/.test(e.key) || document.querySelector('dialog[open]')) return;
      const { data, setState } = current.current;
      if (!data || setState.isPending || data.task.cancelled) return;
      const choice = stateChoices(data.type)[Number(e.key) - 1];
      if (!choice) return;
      e.preventDefault();
      if (choice.state !== data.task.state) setState.mutate(choice.state);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);

  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus({ preventScroll: true }), [id, task.isSuccess]);

  if (task.isPending) return <Loading label="Loading task…" />;
  if (task.error) {
    return (
      <div className="task-view">
        <Link to={backHref} className="button back">
          ← Back to the list
        </Link>
        <ErrorMessage error={task.error} />
      </div>
    );
  }
  const { task: t, type, meta } = task.data;
  return (
    <article className="task-view" aria-labelledby="task-title">
      <header>
        <Link to={backHref} className="button back" aria-label="Back to the list">
          ←
        </Link>
        <div className="stack" style={{ gap: 4 }}>
          <h1 id="task-title" ref={heading} tabIndex={-1}>
            {type.name}
          </h1>
          <div className="row muted">
            <span>{type.schema_name}</span>
            <span aria-hidden="true">·</span>
            <span>
              version {type.semver}
            </span>
            <span aria-hidden="true">·</span>
            <span>
              created <RelativeTime iso={t.created} />
            </span>
            <StateBadge state={t.state} resolved={t.resolved} cancelled={t.cancelled !== null} />
          </div>
        </div>
      </header>

      <section aria-labelledby="state-title" className="stack">
        <h2 id="state-title">State</h2>
        {t.cancelled && (
          <div className="alert info" role="status">
            The application cancelled this task <RelativeTime iso={t.cancelled.at} />: {t.cancelled.reason}
          </div>
        )}
        <StateButtons type={type} current={t.state} disabled={t.cancelled !== null} pending={setState.isPending ? setState.variables : undefined} onSet={(s) => setState.mutate(s)} />
        {setState.error ? <ErrorMessage error={setState.error} title="The state was not changed." /> : null}
      </section>

      <section aria-labelledby="meta-title">
        <h2 id="meta-title">Details</h2>
        <MetaTable meta={meta} />
      </section>

      <section aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        {history.isPending ? <Loading /> : history.error ? <ErrorMessage error={history.error} /> : <History entries={history.data.history} />}
      </section>

      <TaskDeliveries taskId={id} />
    </article>
  );
}
