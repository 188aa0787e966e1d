import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api, type WebhookKeyInfo } from '../../api';
import { ConfirmButton, DataTable, ErrorMessage, Loading, Options, RelativeTime } from '../common';
import { NewSecret } from './NewSecret';
import { Empty, KeyStatus, Moment, Screen } from './Screen';

interface Created {
  key: string;
  schema: string;
  kind: WebhookKeyInfo['kind'];
  rotated: boolean;
}

/** A key is live while neither revoked nor past its expiry (a rotated key expires after a grace period). */
function isLive(k: WebhookKeyInfo, now = Date.now()): boolean {
  return !k.revoked && (!k.expires || new Date(k.expires).getTime() > now);
}

/** Keys that authenticate task-inbox's webhooks to application servers: create, rotate, revoke. */
export function WebhookKeys() {
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey: ['admin', 'webhook-keys'], queryFn: api.webhookKeys, staleTime: 0 });
  // The new key lives only here: leaving the screen or reloading forgets it.
  const [created, setCreated] = useState<Created | null>(null);
  const make = useMutation({
    mutationFn: (v: { schema_name: string; rotate: boolean }) => api.createWebhookKey(v),
    gcTime: 0,
    onSuccess: ({ webhook_key }, v) => {
      void queryClient.invalidateQueries({ queryKey: ['admin', 'webhook-keys'] });
      setCreated({ key: webhook_key.key, schema: webhook_key.schema_name, kind: webhook_key.kind, rotated: v.rotate });
    },
  });
  const list = [...(keys.data?.webhook_keys ?? [])].sort(
    (a, b) => a.schema_name.localeCompare(b.schema_name) || Number(isLive(b)) - Number(isLive(a)) || b.created.localeCompare(a.created),
  );
  const rotatable = new Set(list.filter((k) => isLive(k) && !k.expires).map((k) => k.schema_name));

  return (
    <Screen
      title="Webhook keys"
      lead="When a schema has hook_auth, task-inbox proves its webhooks come from it with a key: sent in a header (kind head) or used to sign them (kind standard)."
    >
      {created ? (
        <NewSecret title={`${created.rotated ? 'Rotated' : 'New'} webhook key for ${created.schema}`} secret={created.key} onDone={() => setCreated(null)}>
          <p className="muted small">
            {created.kind === 'standard' ? 'Give it to the application server as its Standard Webhooks secret.' : 'The application server checks for it in the header named by hook_auth.val.'}{' '}
            {created.rotated && 'The previous key keeps working until its expiry below, so the application server can switch without missing a webhook.'}
          </p>
        </NewSecret>
      ) : (
        <CreateWebhookKey pending={make.isPending} error={make.error} hasLiveKey={(s) => rotatable.has(s)} onCreate={(schema_name, rotate) => make.mutate({ schema_name, rotate })} />
      )}
      <section className="stack" aria-labelledby="webhook-keys-title">
        <h2 id="webhook-keys-title">Keys</h2>
        {keys.isPending && <Loading />}
        <ErrorMessage error={keys.error} />
        {keys.isSuccess && list.length === 0 && <Empty>No webhook keys yet. A schema without hook_auth needs none.</Empty>}
        {list.length > 0 && (
          <DataTable caption="Webhook keys" columns={['Schema', 'Kind', 'Prefix', 'Created', 'Expires', 'Status', { label: 'Actions', hidden: true }]}>
            {list.map((k) => (
              <WebhookKeyRow key={k.id} webhookKey={k} canRotate={isLive(k) && !k.expires} rotating={make.isPending} onRotate={() => make.mutate({ schema_name: k.schema_name, rotate: true })} />
            ))}
          </DataTable>
        )}
      </section>
    </Screen>
  );
}

function CreateWebhookKey({ pending, error, hasLiveKey, onCreate }: { pending: boolean; error: unknown; hasLiveKey: (schema: string) => boolean; onCreate: (schema: string, rotate: boolean) => void }) {
  const id = useId();
  const schemas = useQuery({ queryKey: ['admin', 'schemas'], queryFn: api.schemas });
  const [schema, setSchema] = useState('');
  const names = schemas.data?.schemas.map((s) => s.name) ?? [];
  const chosen = schema || names[0] || '';
  const rotate = chosen !== '' && hasLiveKey(chosen);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (chosen) onCreate(chosen, rotate);
  };
  return (
    <form className="card stack" onSubmit={submit} aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Create or rotate a key</h2>
      <div className="form-grid">
        <div className="field">
          <label htmlFor={`${id}-schema`}>Schema</label>
          <select id={`${id}-schema`} value={chosen} onChange={(e) => setSchema(e.target.value)} disabled={names.length === 0} aria-describedby={`${id}-hint`}>
            {names.length === 0 && <option value="">No schema installed</option>}
            <Options values={names} />
          </select>
        </div>
      </div>
      <p id={`${id}-hint`} className="muted small">
        {rotate
          ? 'This schema has a key. A new one replaces it; the current key keeps working for a grace period so the application server can switch over.'
          : 'The key is made for the hook_auth of the schema’s latest version.'}
      </p>
      <ErrorMessage error={error ?? schemas.error} />
      <div className="row">
        <button type="submit" className="primary" disabled={pending || !chosen}>
          {rotate ? 'Rotate key' : 'Create key'}
        </button>
      </div>
    </form>
  );
}

function WebhookKeyRow({ webhookKey: k, canRotate, rotating, onRotate }: { webhookKey: WebhookKeyInfo; canRotate: boolean; rotating: boolean; onRotate: () => void }) {
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: () => api.revokeWebhookKey(k.id),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['admin', 'webhook-keys'] }),
  });
  const live = isLive(k);
  return (
    <tr className={live ? undefined : 'inactive'}>
      <td className="mono">{k.schema_name}</td>
      <td>{k.kind}</td>
      <td className="mono nowrap">{k.prefix}…</td>
      <td className="nowrap">
        <RelativeTime iso={k.created} />
      </td>
      <td className="nowrap">
        <Moment iso={k.expires} none="never" />
      </td>
      <td className="nowrap">
        <KeyStatus revoked={k.revoked} expired={!live} grace={k.expires !== null} />
      </td>
      <td className="actions">
        <div className="row nowrap-row">
          {canRotate && (
            <button type="button" onClick={onRotate} disabled={rotating}>
              Rotate
            </button>
          )}
          {!k.revoked && live && (
            <ConfirmButton
              label="Revoke"
              question={`Revoke webhook key ${k.prefix}… of ${k.schema_name}? It stops working at once, with no grace period.`}
              onConfirm={() => revoke.mutate()}
              disabled={revoke.isPending}
            />
          )}
        </div>
        {revoke.error ? <ErrorMessage error={revoke.error} /> : null}
      </td>
    </tr>
  );
}
