import { useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useState, type RefObject } from 'react';
import { api, type TaskFilters } from '../api';
import { navigate, useLocation, withParams } from '../router';
import { Options } from './common';

const views: { value: TaskFilters['resolved']; label: string }[] = [
  { value: 'un', label: 'Unresolved' },
  { value: 'all', label: 'All' },
  { value: 'done', label: 'Resolved' },
];

/** View, search, schema, type, state and order; all kept in the URL so back and reload keep them. */
export function Filters({ filters, searchRef, onHelp }: { filters: TaskFilters; searchRef: RefObject<HTMLInputElement | null>; onHelp: () => void }) {
  const loc = useLocation();
  const types = useQuery({ queryKey: ['types'], queryFn: api.types, staleTime: 60_000 });
  const set = (changes: Record<string, string | undefined>) => navigate(withParams(loc, changes), { replace: true });

  const [text, setText] = useState(filters.q ?? '');
  useEffect(() => setText(filters.q ?? ''), [filters.q]);
  useEffect(() => {
    if (text === (filters.q ?? '')) return;
    const timer = setTimeout(() => set({ q: text || undefined }), 250);
    return () => clearTimeout(timer);
  }, [text]); // eslint-disable-line react-hooks/exhaustive-deps

  const all = types.data?.types ?? [];
  const schemas = useMemo(() => [...new Set(all.map((t) => t.schema_name))].sort(), [all]);
  const typeNames = useMemo(() => [...new Set(all.filter((t) => !filters.schema || t.schema_name === filters.schema).map((t) => t.name))].sort(), [all, filters.schema]);
  const states = useMemo(() => {
    const chosen = all.filter((t) => (!filters.schema || t.schema_name === filters.schema) && (!filters.type || t.name === filters.type));
    return [...new Set(chosen.flatMap((t) => [...t.pending_states, ...t.resolved_states]))];
  }, [all, filters.schema, filters.type]);

  return (
    <div className="filters" role="search">
      <div className="row">
        <div className="segmented" role="group" aria-label="Show">
          {views.map((v) => (
            <button key={v.value} type="button" aria-pressed={filters.resolved === v.value} onClick={() => set({ view: v.value === 'un' ? undefined : v.value })}>
              {v.label}
            </button>
          ))}
        </div>
        <button type="button" className="link" onClick={onHelp} aria-label="Keyboard shortcuts" title="Keyboard shortcuts (?)">
          ?
        </button>
      </div>
      <label htmlFor="task-search" className="visually-hidden">
        Search in metadata
      </label>
      <input id="task-search" ref={searchRef} type="search" placeholder="Search metadata  ( / )" value={text} onChange={(e) => setText(e.target.value)} autoComplete="off" />
      <div className="row">
        <label htmlFor="filter-schema" className="visually-hidden">
          Schema
        </label>
        <select id="filter-schema" value={filters.schema ?? ''} onChange={(e) => set({ schema: e.target.value || undefined, type: undefined, state: undefined })}>
          <option value="">All schemas</option>
          <Options values={schemas} />
        </select>
        <label htmlFor="filter-type" className="visually-hidden">
          Type
        </label>
        <select id="filter-type" value={filters.type ?? ''} onChange={(e) => set({ type: e.target.value || undefined, state: undefined })}>
          <option value="">All types</option>
          <Options values={typeNames} />
        </select>
      </div>
      <div className="row">
        <label htmlFor="filter-state" className="visually-hidden">
          State
        </label>
        <select id="filter-state" value={filters.state === undefined ? '*' : filters.state} onChange={(e) => set({ state: e.target.value === '*' ? undefined : e.target.value })}>
          <option value="*">Any state</option>
          <option value="">No state yet</option>
          <Options values={states} />
        </select>
        <label htmlFor="filter-order" className="visually-hidden">
          Order
        </label>
        <select id="filter-order" value={filters.order} onChange={(e) => set({ order: e.target.value === 'newest' ? 'newest' : undefined })}>
          <option value="oldest">Oldest first</option>
          <option value="newest">Newest first</option>
        </select>
      </div>
    </div>
  );
}
