import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';

/**
 * Live updates: listens to the server's event stream (`/api/v1/events`) and refreshes what a
 * change affects. Events arriving together are folded into one refresh. Each time the stream
 * (re)connects, events may have been missed, so everything task-related is refreshed.
 */
export function useLiveUpdates(enabled: boolean) {
  const queryClient = useQueryClient();
  useEffect(() => {
    if (!enabled || typeof EventSource === 'undefined') return;
    const changed = new Set<string>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let everything = false;
    const flush = () => {
      timer = undefined;
      void queryClient.invalidateQueries({ queryKey: ['tasks'] });
      void queryClient.invalidateQueries({ queryKey: ['count'] });
      if (everything) void queryClient.invalidateQueries({ queryKey: ['task'] });
      else for (const id of changed) void queryClient.invalidateQueries({ queryKey: ['task', id] });
      changed.clear();
      everything = false;
    };
    const schedule = () => {
      timer ??= setTimeout(flush, 150);
    };
    const source = new EventSource('/api/v1/events');
    source.addEventListener('ready', () => {
      // The server sends `ready` once it listens for this stream. What changed before that (after
      // the page's first load, or while a reconnect was pending) came with no event: refresh.
      everything = true;
      schedule();
    });
    source.addEventListener('task', (e) => {
      try {
        changed.add((JSON.parse((e as MessageEvent<string>).data) as { id: string }).id);
      } catch {
        everything = true;
      }
      schedule();
    });
    source.addEventListener('resync', () => {
      everything = true;
      schedule();
    });
    return () => {
      source.close();
      if (timer) clearTimeout(timer);
    };
  }, [enabled, queryClient]);
}
