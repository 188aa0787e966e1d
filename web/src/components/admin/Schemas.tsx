import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useMemo, useRef, useState, type ChangeEvent } from 'react';
import { api, ApiError, type InstallResult, type RemoveResult, type SchemaSummary, type TaskType } from '../../api';
import { ConfirmButton, DataTable, ErrorMessage, Loading, RelativeTime } from '../common';
import { Empty, Screen } from './Screen';

/** Task schemas: what is installed, each version's types and states; install and delete. */
export function Schemas() {
  const schemas = useQuery({ queryKey: ['admin', 'schemas'], queryFn: api.schemas, staleTime: 0 });
  const types = useQuery({ queryKey: ['types'], queryFn: api.types, staleTime: 60_000 });
  const list = schemas.data?.schemas ?? [];
  const [deleted, setDeleted] = useState<RemoveResult | null>(null);
  return (
    <Screen title="Schemas" lead="A schema names the task types an application server may post and the states a person can choose.">
      <InstallSchema />
      <section className="stack" aria-labelledby="installed-title">
        <h2 id="installed-title">Installed schemas</h2>
        {schemas.isPending && <Loading />}
        <ErrorMessage error={schemas.error} />
        {deleted && (
          <div className="alert ok" role="status">
            Deleted {deleted.name} with its {plural(deleted.versions, 'version')} and {plural(deleted.tasks, 'task')}.
          </div>
        )}
        {schemas.isSuccess && list.length === 0 && <Empty>No schema yet. Install one above.</Empty>}
        <ul className="schema-list">
          {list.map((s) => (
            <SchemaCard key={s.name} schema={s} onDeleted={setDeleted} types={(types.data?.types ?? []).filter((t) => t.schema_name === s.name)} />
          ))}
        </ul>
      </section>
    </Screen>
  );
}

function InstallSchema() {
  const queryClient = useQueryClient();
  const id = useId();
  const [yaml, setYaml] = useState('');
  const [fileName, setFileName] = useState<string | null>(null);
  const [readError, setReadError] = useState<Error | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const install = useMutation({
    mutationFn: (v: { yaml: string; dryrun: boolean }) => api.installSchema(v.yaml, v.dryrun),
    onSuccess: (result) => {
      if (result.dryRun) return;
      void queryClient.invalidateQueries({ queryKey: ['admin', 'schemas'] });
      void queryClient.invalidateQueries({ queryKey: ['types'] });
    },
  });

  const chooseFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    install.reset();
    setReadError(null);
    try {
      const text = await file.text();
      setYaml(text);
      setFileName(file.name);
      // An uploaded file is checked at once, so its mistakes show before anyone presses Install.
      if (text.trim()) install.mutate({ yaml: text, dryrun: true });
    } catch (err) {
      setReadError(err as Error);
    }
  };

  const edit = (text: string) => {
    setYaml(text);
    setFileName(null);
    if (!install.isIdle) install.reset();
  };

  const empty = yaml.trim() === '';
  const issues = lineIssues(install.error);
  const badLines = new Set(issues.map((i) => i.line));
  return (
    <section className="card stack" aria-labelledby={`${id}-title`}>
      <div>
        <h2 id={`${id}-title`}>Install a schema</h2>
        <p className="muted">
          Upload the schema's YAML file or paste it. Installing a schema that exists adds its next version; tasks keep the version they were made with.
        </p>
      </div>
      <div className="field">
        <label htmlFor={`${id}-file`}>Upload a YAML file</label>
        <input ref={fileInput} id={`${id}-file`} className="file-input" type="file" accept=".yml,.yaml" onChange={chooseFile} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-yaml`}>Schema YAML</label>
        <YamlEditor id={`${id}-yaml`} value={yaml} onChange={edit} badLines={badLines} describedBy={fileName ? `${id}-from` : undefined} />
        {fileName && (
          <span id={`${id}-from`} className="muted small">
            From {fileName}. Edit it here before installing if you need to.
          </span>
        )}
      </div>
      <ErrorMessage error={readError} title="The file could not be read." />
      <ErrorMessage error={install.error} title={install.variables?.dryrun ? 'The check found problems.' : 'Not installed.'} />
      {install.data && <InstallOutcome result={install.data} />}
      <div className="row">
        <button type="button" onClick={() => install.mutate({ yaml, dryrun: true })} disabled={empty || install.isPending}>
          Check
        </button>
        <button type="button" className="primary" onClick={() => install.mutate({ yaml, dryrun: false })} disabled={empty || install.isPending}>
          Install
        </button>
        {!empty && (
          <button
            type="button"
            className="link"
            onClick={() => {
              edit('');
              if (fileInput.current) fileInput.current.value = '';
            }}
          >
            Clear
          </button>
        )}
        {install.isPending && (
          <span className="muted" role="status">
            {install.variables?.dryrun ? 'Checking…' : 'Installing…'}
          </span>
        )}
      </div>
    </section>
  );
}

/** The issues of a schema error that point at a line of the file. */
function lineIssues(error: unknown): { line: number; field?: string; message?: string }[] {
  if (!(error instanceof ApiError)) return [];
  return ((error.problem.errors ?? []) as { line?: unknown }[]).filter((i): i is { line: number } => typeof i?.line === 'number');
}

/** A textarea for YAML with line numbers beside it; lines with a problem are marked. */
function YamlEditor({ id, value, onChange, badLines, describedBy }: { id: string; value: string; onChange: (text: string) => void; badLines: Set<number>; describedBy?: string }) {
  const gutter = useRef<HTMLDivElement>(null);
  const count = Math.max(value.split('\n').length, 10);
  return (
    <div className="yaml-editor">
      <div className="yaml-gutter" aria-hidden="true" ref={gutter}>
        {Array.from({ length: count }, (_, n) => (
          <span key={n} className={badLines.has(n + 1) ? 'bad' : undefined}>
            {n + 1}
          </span>
        ))}
      </div>
      <textarea
        id={id}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        onScroll={(e) => {
          if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop;
        }}
        wrap="off"
        spellCheck={false}
        autoCapitalize="none"
        autoComplete="off"
        rows={10}
        aria-describedby={describedBy}
        aria-invalid={badLines.size > 0 || undefined}
        placeholder={"name: 'acme:moderation'\nsemver: '1'\ntasktypes:\n- name: flag-content\n  pending_states: ['level1']\n  resolved_states: ['block', 'allow']"}
      />
    </div>
  );
}

function InstallOutcome({ result }: { result: InstallResult }) {
  const what = result.isNewSchema ? `the new schema ${result.name}` : `version ${result.version} of ${result.name}`;
  return (
    <div className={`alert ${result.dryRun ? 'info' : 'ok'} stack install-outcome`} role="status">
      <div>
        {result.dryRun ? (
          <>
            <strong>Looks good.</strong> Installing it adds {what} (semver {result.semver}).
          </>
        ) : (
          <>
            <strong>Installed</strong> {result.name}, version {result.version} (semver {result.semver}).
          </>
        )}
      </div>
      <TypeTable types={result.types} caption={`Task types of ${result.name} ${result.semver}`} />
      {result.warnings.length > 0 && (
        <div>
          <strong>Worth a look:</strong>
          <ul>
            {result.warnings.map((w, n) => (
              <li key={n}>
                Line {w.line}, {w.field}: {w.message}
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}

function TypeTable({ types, caption }: { types: { name: string; pending_states: string[]; resolved_states: string[] }[]; caption: string }) {
  return (
    <DataTable caption={caption} framed={false} className="admin-table type-table" columns={['Task type', 'Pending states', 'Resolved states']}>
      {types.map((t) => (
        <tr key={t.name}>
          <td className="mono">{t.name}</td>
          <td>
            <States states={t.pending_states} kind="pending" />
          </td>
          <td>
            <States states={t.resolved_states} kind="resolved" />
          </td>
        </tr>
      ))}
    </DataTable>
  );
}

function States({ states, kind }: { states: string[]; kind: 'pending' | 'resolved' }) {
  if (states.length === 0) return <span className="muted">none</span>;
  return (
    <span className="state-chips">
      {states.map((s) => (
        <span key={s} className={`badge ${kind}`}>
          {s}
        </span>
      ))}
    </span>
  );
}

function SchemaCard({ schema, types, onDeleted }: { schema: SchemaSummary; types: TaskType[]; onDeleted: (result: RemoveResult) => void }) {
  const queryClient = useQueryClient();
  const id = useId();
  const remove = useMutation({
    mutationFn: () => api.removeSchema(schema.name),
    onSuccess: (result) => {
      onDeleted(result);
      void queryClient.invalidateQueries({ queryKey: ['admin'] });
      void queryClient.invalidateQueries({ queryKey: ['types'] });
      void queryClient.invalidateQueries({ queryKey: ['tasks'] });
      void queryClient.invalidateQueries({ queryKey: ['count'] });
    },
  });
  // Newest version first, each with its types.
  const versions = useMemo(() => {
    const byVersion = new Map<number, { version: number; semver: string; types: TaskType[] }>();
    for (const t of types) {
      const v = byVersion.get(t.version) ?? { version: t.version, semver: t.semver, types: [] };
      v.types.push(t);
      byVersion.set(t.version, v);
    }
    return [...byVersion.values()].sort((a, b) => b.version - a.version);
  }, [types]);

  const tasks = plural(schema.tasks, 'task');
  const question =
    `Delete schema ${schema.name}?\n\n` +
    `This deletes its ${plural(schema.versions, 'version')} and ${tasks}` +
    (schema.unresolved ? ` (${schema.unresolved} unresolved)` : '') +
    '. The change history is kept, without the tasks. This cannot be undone.';

  return (
    <li className="card stack schema-card">
      <div className="schema-head">
        <div className="stack schema-title">
          <h3 id={`${id}-name`} className="mono">
            {schema.name}
          </h3>
          <div className="muted small">
            installed <RelativeTime iso={schema.created} />
          </div>
        </div>
        {schema.semver !== null && (
          <span className="badge" title="Latest version">
            latest {schema.semver}
          </span>
        )}
      </div>
      <dl className="stats">
        <div>
          <dt>Versions</dt>
          <dd>{schema.versions}</dd>
        </div>
        <div>
          <dt>Tasks</dt>
          <dd>{schema.tasks}</dd>
        </div>
        <div>
          <dt>Unresolved</dt>
          <dd>{schema.unresolved}</dd>
        </div>
      </dl>
      <details className="versions">
        <summary>Versions and task types</summary>
        {versions.length === 0 ? (
          <p className="muted">No versions.</p>
        ) : (
          <ol className="version-list">
            {versions.map((v, n) => (
              <li key={v.version} className="stack">
                <h4>
                  Version {v.version} <span className="muted">· semver {v.semver}</span>
                  {n === 0 && <span className="badge delivered">latest</span>}
                </h4>
                <TypeTable types={v.types} caption={`Task types of ${schema.name} version ${v.version}`} />
              </li>
            ))}
          </ol>
        )}
      </details>
      <ErrorMessage error={remove.error} />
      <div className="row">
        {schema.tasks > 0 && <span className="muted small">Deleting it deletes its {tasks} too.</span>}
        <span className="spacer" />
        <ConfirmButton label="Delete schema" question={question} onConfirm={() => remove.mutate()} disabled={remove.isPending} />
      </div>
    </li>
  );
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
