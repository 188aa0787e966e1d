import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { api, type NotificationChannel } from '../../api';
import { ConfirmButton, ErrorMessage, RelativeTime } from '../common';
import { AddChannel, kindNames } from './AddChannel';
import { describeDigest, DigestFields, digestFromMinutes, digestMinutes, type Digest } from './digest';

/** Other places new tasks are announced: email, chat webhooks, ntfy, a JSON webhook. */
export function Channels({ channels, emailAvailable }: { channels: NotificationChannel[]; emailAvailable: boolean }) {
  const [adding, setAdding] = useState(false);
  return (
    <section className="stack" aria-labelledby="channels-title">
      <h3 id="channels-title">Channels</h3>
      <p className="muted">Also announce new tasks by email, in a chat, on ntfy, or to a webhook of your own: each new task at once, or gathered into a digest.</p>
      {!emailAvailable && <p className="muted small">Email is not available: the administrator needs to set SMTP_URL on the server first.</p>}
      {channels.length === 0 ? (
        <p className="muted">No channel yet.</p>
      ) : (
        <ul className="channel-list" aria-label="Your channels">
          {channels.map((c) => (
            <ChannelItem key={c.id} channel={c} />
          ))}
        </ul>
      )}
      {adding ? (
        <AddChannel emailAvailable={emailAvailable} onDone={() => setAdding(false)} />
      ) : (
        <div>
          <button type="button" onClick={() => setAdding(true)}>
            Add a channel
          </button>
        </div>
      )}
    </section>
  );
}

function ChannelItem({ channel: c }: { channel: NotificationChannel }) {
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState(false);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ['notifications'] });
  const test = useMutation({ mutationFn: () => api.testChannel(c.id), onSettled: refresh });
  const remove = useMutation({ mutationFn: () => api.removeChannel(c.id), onSuccess: refresh });
  const name = `${kindNames[c.kind]} ${c.label}`;

  return (
    <li className="channel stack" aria-label={name}>
      <div className="channel-head">
        <div className="channel-what">
          <strong>{kindNames[c.kind]}</strong> <span className="break">{c.label}</span>
          <div className="muted small">
            Sends {describeDigest(c.digest_minutes)}
            {c.last_sent_at && (
              <>
                {' '}
                · last sent <RelativeTime iso={c.last_sent_at} />
              </>
            )}
          </div>
        </div>
        <div className="row channel-actions">
          <button type="button" onClick={() => test.mutate()} disabled={test.isPending} aria-label={`Send a test to ${name}`}>
            {test.isPending ? 'Sending…' : 'Send a test'}
          </button>
          <button type="button" onClick={() => setEditing(!editing)} aria-expanded={editing} aria-label={`Change delivery of ${name}`}>
            Change delivery
          </button>
          <ConfirmButton label="Remove" question={`Remove the channel ${name}? Nothing more will be sent there.`} onConfirm={() => remove.mutate()} disabled={remove.isPending} />
        </div>
      </div>
      {c.last_error && (
        <div className="alert error">
          <strong>The last message failed: </strong>
          <span className="break">{c.last_error}</span>
        </div>
      )}
      {test.data &&
        (test.data.ok ? (
          <div className="alert ok" role="status">
            Test sent{test.data.status !== null ? ` (the channel answered ${test.data.status})` : ''}.
          </div>
        ) : (
          <div className="alert error" role="alert">
            <strong>The test failed{test.data.status !== null ? ` (the channel answered ${test.data.status})` : ''}: </strong>
            <span className="break">{test.data.error ?? 'no reason given'}</span>
          </div>
        ))}
      <ErrorMessage error={test.error} title="The test was not sent." />
      <ErrorMessage error={remove.error} title="The channel was not removed." />
      {editing && <ChangeDelivery channel={c} onDone={() => setEditing(false)} />}
    </li>
  );
}

function ChangeDelivery({ channel, onDone }: { channel: NotificationChannel; onDone: () => void }) {
  const queryClient = useQueryClient();
  const [digest, setDigest] = useState<Digest>(digestFromMinutes(channel.digest_minutes));
  const [invalid, setInvalid] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: (minutes: number | null) => api.updateChannel(channel.id, minutes),
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
    save.mutate(d.minutes);
  };
  return (
    <form className="stack" onSubmit={submit}>
      <DigestFields value={digest} onChange={setDigest} legend={`Delivery of ${kindNames[channel.kind]} ${channel.label}`} />
      {invalid && (
        <div className="alert error" role="alert">
          {invalid}
        </div>
      )}
      <ErrorMessage error={save.error} title="The delivery was not changed." />
      <div className="row">
        <button type="submit" className="primary" disabled={save.isPending}>
          Save
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
