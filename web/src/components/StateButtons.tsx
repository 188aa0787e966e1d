import type { TaskType } from '../api';

export interface StateChoice {
  state: string | null;
  label: string;
  resolved: boolean;
}

/** The buttons in order: unset, the pending states, the resolved states. Keys 1–9 follow it. */
export function stateChoices(type: TaskType): StateChoice[] {
  return [
    { state: null, label: 'Unset', resolved: false },
    ...type.pending_states.map((s) => ({ state: s, label: s, resolved: false })),
    ...type.resolved_states.map((s) => ({ state: s, label: s, resolved: true })),
  ];
}

export function StateButtons({ type, current, pending, disabled = false, onSet }: { type: TaskType; current: string | null; pending?: string | null; disabled?: boolean; onSet: (state: string | null) => void }) {
  return (
    <div className="state-buttons" role="group" aria-label="Set the state">
      {stateChoices(type).map((c, n) => (
        <button
          key={c.state ?? ''}
          type="button"
          className={c.resolved ? 'resolved-state' : undefined}
          aria-pressed={c.state === current}
          aria-keyshortcuts={n < 9 ? String(n + 1) : undefined}
          disabled={disabled || pending !== undefined}
          onClick={() => c.state !== current && onSet(c.state)}
        >
          {/* The name comes from the visible label (no aria-label, which would hide it from voice control). */}
          {n < 9 && <span className="key-hint" aria-hidden="true">{n + 1}</span>}
          {pending !== undefined && pending === c.state ? `${c.label}…` : c.label}
          {c.resolved && (
            <>
              <span className="visually-hidden"> (resolves the task)</span>
              <span className="resolved-mark" aria-hidden="true">
                ✓
              </span>
            </>
          )}
        </button>
      ))}
    </div>
  );
}
