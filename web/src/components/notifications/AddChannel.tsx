import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api, type ChannelKind, type CreateChannelBody } from '../../api';
import { ErrorMessage } from '../common';
import { DigestFields, digestMinutes, type Digest } from './digest';

export const kindNames: Record<ChannelKind, string> = {
  email: 'Email',
  slack: 'Slack-compatible webhook',
  ntfy: 'ntfy',
  webhook: 'Generic JSON webhook',
};

const kindHelp: Record<ChannelKind, string> = {
  email: 'A message to this address.',
  slack: 'An incoming webhook of Slack, Mattermost, or Discord (its …/slack address). Keep the address secret: anyone who has it can post.',
  ntfy: 'A message to an ntfy topic, on ntfy.sh or your own server; the ntfy app shows it.',
  webhook: 'A POST with a JSON body describing the new tasks, to your own receiver.',
};

/** The form that adds a channel: its kind, the kind's fields, and how often it sends. */
export function AddChannel({ emailAvailable, onDone }: { emailAvailable: boolean; onDone: () => void }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [kind, setKind] = useState<ChannelKind>(emailAvailable ? 'email' : 'webhook');
  const [fields, setFields] = useState({ address: '', url: '', server: 'https://ntfy.sh', topic: '', token: '' });
  const [digest, setDigest] = useState<Digest>({ mode: 'now' });
  const [invalid, setInvalid] = useState<string | null>(null);
  const set = (name: keyof typeof fields) => (e: { target: { value: string } }) => setFields({ ...fields, [name]: e.target.value });

  const create = useMutation({
    mutationFn: api.createChannel,
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['notifications'] });
      onDone();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const d = digestMinutes(digest);
    if ('error' in d) return setInvalid(d.error);
    setInvalid(null);
    const digest_minutes = d.minutes;
    let body: CreateChannelBody;
    if (kind === 'email') body = { kind, address: fields.address.trim(), digest_minutes };
    else if (kind === 'ntfy') body = { kind, server: fields.server.trim(), topic: fields.topic.trim(), token: fields.token || undefined, digest_minutes };
    else body = { kind, url: fields.url.trim(), digest_minutes };
    create.mutate(body);
  };

  return (
    <form className="stack add-channel" onSubmit={submit} aria-labelledby={`${id}-title`}>
      <h4 id={`${id}-title`}>Add a channel</h4>
      <div className="field">
        <label htmlFor={`${id}-kind`}>Kind</label>
        <select id={`${id}-kind`} value={kind} onChange={(e) => setKind(e.target.value as ChannelKind)} aria-describedby={`${id}-kind-help`}>
          {(Object.keys(kindNames) as ChannelKind[]).map((k) => (
            <option key={k} value={k} disabled={k === 'email' && !emailAvailable}>
              {kindNames[k]}
              {k === 'email' && !emailAvailable ? ' (not set up)' : ''}
            </option>
          ))}
        </select>
        <span id={`${id}-kind-help`} className="muted small">
          {kindHelp[kind]}
        </span>
      </div>
      {kind === 'email' && (
        <div className="field">
          <label htmlFor={`${id}-address`}>Email address</label>
          <input id={`${id}-address`} type="email" autoComplete="email" required maxLength={320} value={fields.address} onChange={set('address')} />
        </div>
      )}
      {(kind === 'slack' || kind === 'webhook') && (
        <div className="field">
          <label htmlFor={`${id}-url`}>{kind === 'slack' ? 'Webhook address' : 'Receiver address'}</label>
          <input id={`${id}-url`} type="url" inputMode="url" autoComplete="off" spellCheck={false} required maxLength={2000} placeholder="https://" value={fields.url} onChange={set('url')} />
        </div>
      )}
      {kind === 'ntfy' && (
        <>
          <div className="field">
            <label htmlFor={`${id}-server`}>ntfy server</label>
            <input id={`${id}-server`} type="url" inputMode="url" autoComplete="off" spellCheck={false} required maxLength={2000} value={fields.server} onChange={set('server')} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-topic`}>Topic</label>
            <input id={`${id}-topic`} autoComplete="off" autoCapitalize="none" spellCheck={false} required pattern="[\-_A-Za-z0-9]{1,64}" title="letters, digits, - and _ (up to 64)" value={fields.topic} onChange={set('topic')} aria-describedby={`${id}-topic-help`} />
            <span id={`${id}-topic-help`} className="muted small">
              Letters, digits, - and _. On a public server anyone who knows the topic can read it: pick one hard to guess.
            </span>
          </div>
          <div className="field">
            <label htmlFor={`${id}-token`}>
              Access token <span className="optional muted">(optional, for protected topics)</span>
            </label>
            <input id={`${id}-token`} type="password" autoComplete="off" maxLength={500} value={fields.token} onChange={set('token')} />
          </div>
        </>
      )}
      <DigestFields value={digest} onChange={setDigest} />
      {invalid && (
        <div className="alert error" role="alert">
          {invalid}
        </div>
      )}
      <ErrorMessage error={create.error} title="The channel was not added." />
      <div className="row">
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? 'Adding…' : 'Add channel'}
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
