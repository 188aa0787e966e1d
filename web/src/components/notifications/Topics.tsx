import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useMemo, useState, type FormEvent } from 'react';
import { api, type NotifyTopic } from '../../api';
import { ErrorMessage, Loading } from '../common';

/** A topic as one string: `schema` + NUL + type, or + NUL + `*` for every type of the schema. */
const keyOf = (schema: string, type: string | null | undefined) => `${schema}\u0000${type ?? '*'}`;

/** Which new tasks notify me: every schema and type, or the chosen schemas and types. */
export function Topics({ topics }: { topics: NotifyTopic[] | null }) {
  const id = useId();
  const queryClient = useQueryClient();
  const types = useQuery({ queryKey: ['types'], queryFn: api.types, staleTime: 60_000 });
  const [all, setAll] = useState(topics === null);
  const [chosen, setChosen] = useState(() => new Set((topics ?? []).map((t) => keyOf(t.schema, t.type))));
  const save = useMutation({
    mutationFn: api.setTopics,
    onSuccess: (settings) => queryClient.setQueryData(['notifications'], settings),
  });

  // Every schema with its types (each name once, across versions), and any chosen one that no longer exists.
  const schemas = useMemo(() => {
    const map = new Map<string, Set<string>>();
    const add = (schema: string, type: string | null | undefined) => {
      const set = map.get(schema) ?? new Set<string>();
      if (type) set.add(type);
      map.set(schema, set);
    };
    for (const t of types.data?.types ?? []) add(t.schema_name, t.name);
    for (const t of topics ?? []) add(t.schema, t.type);
    return [...map.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, set]) => ({ name, types: [...set].sort() }));
  }, [types.data, topics]);

  const choose = (everything: boolean) => {
    setAll(everything);
    save.reset();
  };
  const toggle = (key: string, on: boolean) => {
    const next = new Set(chosen);
    if (on) next.add(key);
    else next.delete(key);
    setChosen(next);
    save.reset();
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (all) return save.mutate(null);
    const list: NotifyTopic[] = [];
    for (const s of schemas) {
      if (chosen.has(keyOf(s.name, null))) list.push({ schema: s.name, type: null });
      else for (const t of s.types) if (chosen.has(keyOf(s.name, t))) list.push({ schema: s.name, type: t });
    }
    save.mutate(list);
  };
  const nothing = !all && chosen.size === 0;

  return (
    <form className="stack" onSubmit={submit} aria-labelledby={`${id}-title`}>
      <h3 id={`${id}-title`}>Which new tasks notify me</h3>
      <fieldset className="choice">
        <legend className="visually-hidden">Which new tasks notify me</legend>
        <label className="checkbox">
          <input type="radio" name={`${id}-all`} checked={all} onChange={() => choose(true)} />
          All schemas and types
        </label>
        <label className="checkbox">
          <input type="radio" name={`${id}-all`} checked={!all} onChange={() => choose(false)} />
          Only the ones I choose
        </label>
      </fieldset>
      {!all && types.isPending && <Loading label="Loading the schemas…" />}
      <ErrorMessage error={types.error} />
      {!all && types.isSuccess && schemas.length === 0 && <p className="muted">No schema is installed yet.</p>}
      {!all &&
        schemas.map((s) => {
          const whole = chosen.has(keyOf(s.name, null));
          return (
            <fieldset key={s.name} className="topic-schema">
              <legend className="mono break">{s.name}</legend>
              <label className="checkbox">
                <input type="checkbox" checked={whole} onChange={(e) => toggle(keyOf(s.name, null), e.target.checked)} />
                Every type of {s.name}, also types added later
              </label>
              <div className="topic-types">
                {s.types.map((t) => (
                  <label key={t} className="checkbox">
                    <input type="checkbox" checked={whole || chosen.has(keyOf(s.name, t))} disabled={whole} onChange={(e) => toggle(keyOf(s.name, t), e.target.checked)} />
                    <span className="mono break">{t}</span>
                  </label>
                ))}
              </div>
            </fieldset>
          );
        })}
      {nothing && <p className="muted">Nothing is chosen: no new task will notify you.</p>}
      <ErrorMessage error={save.error} title="Not saved." />
      {save.isSuccess && (
        <div className="alert ok" role="status">
          Saved.
        </div>
      )}
      <div>
        <button type="submit" className="primary" disabled={save.isPending}>
          {save.isPending ? 'Saving…' : 'Save'}
        </button>
      </div>
    </form>
  );
}
