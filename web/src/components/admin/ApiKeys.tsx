import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api, type ApiKeyInfo } from '../../api';
import { ConfirmButton, DataTable, ErrorMessage, Loading, Options, RelativeTime } from '../common';
import { NewSecret } from './NewSecret';
import { Empty, KeyStatus, Moment, Screen } from './Screen';

/** Keys application servers use to post tasks: create one (shown once), see when each was used, revoke. */
export function ApiKeys() {
  const keys = useQuery({ queryKey: ['admin', 'api-keys'], queryFn: api.apiKeys, staleTime: 0 });
  // The new key lives only here: leaving the screen or reloading forgets it.
  const [created, setCreated] = useState<{ key: string; name: string | null; schema: string | null } | null>(null);
  const list = sortKeys(keys.data?.api_keys ?? []);
  return (
    <Screen title="API keys" lead={
        <>
          Application servers send an API key in the <code>api-key</code> header to post tasks and read them. A key limited to one schema can only touch that schema’s tasks.
        </>
      }>
      {created ? (
        <NewSecret title={`New API key${created.name ? ` “${created.name}”` : ''}`} secret={created.key} onDone={() => setCreated(null)}>
          <p className="muted small">
            {created.schema ? `It can only use schema ${created.schema}.` : 'It can use every schema.'} Send it in the <code>api-key</code> header.
          </p>
        </NewSecret>
      ) : (
        <CreateApiKey onCreated={setCreated} />
      )}
      <section className="stack" aria-labelledby="api-keys-title">
        <h2 id="api-keys-title">Keys</h2>
        {keys.isPending && <Loading />}
        <ErrorMessage error={keys.error} />
        {keys.isSuccess && list.length === 0 && <Empty>No API keys yet.</Empty>}
        {list.length > 0 && (
          <DataTable caption="API keys" columns={['Name', 'Prefix', 'Schema', 'Created', 'Last used', 'Status', { label: 'Actions', hidden: true }]}>
            {list.map((k) => (
              <ApiKeyRow key={k.id} apiKey={k} />
            ))}
          </DataTable>
        )}
      </section>
    </Screen>
  );
}

/** Live keys first (newest first), then revoked ones. */
function sortKeys(keys: ApiKeyInfo[]): ApiKeyInfo[] {
  return [...keys].sort((a, b) => Number(a.revoked !== null) - Number(b.revoked !== null) || b.created.localeCompare(a.created));
}

function CreateApiKey({ onCreated }: { onCreated: (k: { key: string; name: string | null; schema: string | null }) => void }) {
  const queryClient = useQueryClient();
  const id = useId();
  const schemas = useQuery({ queryKey: ['admin', 'schemas'], queryFn: api.schemas });
  const [name, setName] = useState('');
  const [schema, setSchema] = useState('');
  const create = useMutation({
    mutationFn: () => api.createApiKey({ name: name.trim() || null, schema_name: schema || null }),
    // The answer holds the key: do not keep it in the mutation cache after this screen.
    gcTime: 0,
    onSuccess: ({ api_key }) => {
      void queryClient.invalidateQueries({ queryKey: ['admin', 'api-keys'] });
      onCreated({ key: api_key.key, name: api_key.name, schema: api_key.schema_name });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <form className="card stack" onSubmit={submit} aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Create an API key</h2>
      <div className="form-grid">
        <div className="field">
          <label htmlFor={`${id}-name`}>Name</label>
          <input id={`${id}-name`} autoComplete="off" placeholder="e.g. billing server" aria-describedby={`${id}-name-hint`} value={name} onChange={(e) => setName(e.target.value)} />
          <span id={`${id}-name-hint`} className="muted small">
            Who uses it; shown in the audit log.
          </span>
        </div>
        <div className="field">
          <label htmlFor={`${id}-schema`}>Limit to schema</label>
          <select id={`${id}-schema`} value={schema} onChange={(e) => setSchema(e.target.value)}>
            <option value="">No limit: every schema</option>
            <Options values={schemas.data?.schemas.map((s) => s.name)} />
          </select>
        </div>
      </div>
      <ErrorMessage error={create.error ?? schemas.error} />
      <div className="row">
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create key'}
        </button>
      </div>
    </form>
  );
}

function ApiKeyRow({ apiKey: k }: { apiKey: ApiKeyInfo }) {
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: () => api.revokeApiKey(k.id),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['admin', 'api-keys'] }),
  });
  const label = k.name ?? `key ${k.prefix}…`;
  return (
    <tr className={k.revoked ? 'inactive' : undefined}>
      <td>{k.name ? <strong>{k.name}</strong> : <span className="muted">unnamed</span>}</td>
      <td className="mono nowrap">{k.prefix}…</td>
      <td>{k.schema_name ? <span className="mono">{k.schema_name}</span> : <span className="muted">any</span>}</td>
      <td className="nowrap">
        <RelativeTime iso={k.created} />
      </td>
      <td className="nowrap">
        <Moment iso={k.last_used} none="never" />
      </td>
      <td className="nowrap">
        <KeyStatus revoked={k.revoked} />
      </td>
      <td className="actions">
        {!k.revoked && (
          <ConfirmButton
            label="Revoke"
            question={`Revoke API key ${label}? Application servers using it are refused at once. This cannot be undone.`}
            onConfirm={() => revoke.mutate()}
            disabled={revoke.isPending}
          />
        )}
        {revoke.error ? <ErrorMessage error={revoke.error} /> : null}
      </td>
    </tr>
  );
}
