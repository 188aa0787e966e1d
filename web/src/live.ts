import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';

/**
 * Live updates: listens to the server's event stream (`/api/v1/events`) and refreshes what a
 * change affects. Events arriving together are folded into one refresh. After a reconnect the
 * stream may have missed events, so everything task-related is refreshed.
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
    let opened = 0;
    const source = new EventSource('/api/v1/events');
    source.addEventListener('ready', () => {
      // The first `ready` is the initial connection; later ones follow a reconnect.
      if (opened++ > 0) {
        everything = true;
        schedule();
      }
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
