import { keepPreviousData, useInfiniteQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useRef, useState } from 'react';
import { api, type TaskFilters, type TaskType } from '../api';
import { navigate, useLocation, withParams, type Location } from '../router';
import { isTyping, plainKey } from './common';
import { Filters } from './Filters';
import { ShortcutHelp } from './ShortcutHelp';
import { TaskList } from './TaskList';
import { TaskView } from './TaskView';

export function filtersFrom(params: URLSearchParams): TaskFilters {
  const resolved = params.get('view');
  return {
    resolved: resolved === 'all' || resolved === 'done' ? resolved : 'un',
    schema: params.get('schema') || undefined,
    type: params.get('type') || undefined,
    state: params.get('state') ?? undefined,
    q: params.get('q') || undefined,
    order: params.get('order') === 'newest' ? 'newest' : 'oldest',
  };
}

const taskUrl = (loc: Location, id?: string) => withParams(loc, {}, id ? `/taskui/tasks/${id}` : '/taskui');

/** The inbox: filters and the task list, with the open task beside it (or instead of it on phones). */
export function Inbox({ taskId }: { taskId?: string }) {
  const loc = useLocation();
  const filters = useMemo(() => filtersFrom(loc.params), [loc.params.toString()]); // eslint-disable-line react-hooks/exhaustive-deps
  const list = useInfiniteQuery({
    queryKey: ['tasks', filters],
    queryFn: ({ pageParam, signal }) => api.listTasks(filters, pageParam, signal),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    placeholderData: keepPreviousData,
  });
  const tasks = useMemo(() => list.data?.pages.flatMap((p) => p.tasks) ?? [], [list.data]);
  const types = useMemo(() => Object.assign({}, ...(list.data?.pages.map((p) => p.types) ?? [])) as Record<string, TaskType>, [list.data]);

  const [selected, setSelected] = useState(0);
  const [helpOpen, setHelpOpen] = useState(false);
  const searchRef = useRef<HTMLInputElement>(null);

  // The open task is the selected one.
  useEffect(() => {
    if (!taskId) return;
    const at = tasks.findIndex((t) => t.id === taskId);
    if (at >= 0) setSelected(at);
  }, [taskId, tasks]);
  useEffect(() => {
    if (selected >= tasks.length && tasks.length > 0) setSelected(tasks.length - 1);
  }, [selected, tasks.length]);

  // Keyboard triage (1–9 are handled by the task view).
  const keys = useRef({ tasks, selected, taskId, loc, filters });
  keys.current = { tasks, selected, taskId, loc, filters };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!plainKey(e) || e.defaultPrevented) return;
      const { tasks, selected, taskId, loc, filters } = keys.current;
      if (isTyping(e)) {
        if (e.key === 'Escape') (e.target as HTMLElement).blur();
        return;
      }
      if (document.querySelector('dialog[open]')) return;
      const move = (to: number) => {
        const next = Math.max(0, Math.min(tasks.length - 1, to));
        setSelected(next);
        const task = tasks[next];
        if (task) {
          if (taskId) navigate(taskUrl(loc, task.id), { replace: true });
          document.getElementById(`task-row-${task.id}`)?.scrollIntoView({ block: 'nearest' });
        }
      };
      switch (e.key) {
        case 'j':
          move(selected + 1);
          break;
        case 'k':
          move(selected - 1);
          break;
        case 'Enter':
        case 'o': {
          const task = tasks[selected];
          if (!task || (e.key === 'Enter' && (e.target as HTMLElement).tagName === 'A')) return;
          navigate(taskUrl(loc, task.id));
          break;
        }
        case 'Escape':
          if (!taskId) return;
          navigate(taskUrl(loc));
          break;
        case 'u':
          navigate(withParams(loc, { view: filters.resolved === 'un' ? 'all' : undefined }));
          break;
        case '/':
          searchRef.current?.focus();
          break;
        case '?':
          setHelpOpen(true);
          break;
        default:
          return;
      }
      e.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);

  return (
    <div className={`inbox${taskId ? ' task-open' : ''}`}>
      <section className="list-pane" aria-label="Tasks">
        <Filters filters={filters} searchRef={searchRef} onHelp={() => setHelpOpen(true)} />
        <TaskList
          tasks={tasks}
          types={types}
          openId={taskId}
          selectedId={tasks[selected]?.id}
          hrefOf={(id) => taskUrl(loc, id)}
          loading={list.isPending}
          error={list.error}
          hasMore={list.hasNextPage}
          loadingMore={list.isFetchingNextPage}
          loadMore={() => void list.fetchNextPage()}
          filtered={filters.resolved !== 'all' || !!(filters.schema || filters.type || filters.state !== undefined || filters.q)}
        />
      </section>
      <section className="task-pane" aria-label="Task">
        {taskId ? (
          <TaskView key={taskId} id={taskId} backHref={taskUrl(loc)} />
        ) : (
          <div className="empty">
            <p>
              Select a task to work on it.
              <br />
              Press <kbd>?</kbd> for keyboard shortcuts.
            </p>
          </div>
        )}
      </section>
      <ShortcutHelp open={helpOpen} onClose={() => setHelpOpen(false)} />
    </div>
  );
}
