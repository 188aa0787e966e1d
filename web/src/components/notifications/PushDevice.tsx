import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { api } from '../../api';
import { disablePush, enablePush, pushState, syncPush, type PushState } from '../../push';
import { ErrorMessage } from '../common';

/** Web push on this device: turn it on (asking the browser only then), off, and send a test. */
export function PushDevice({ devices }: { devices: number | undefined }) {
  const queryClient = useQueryClient();
  const [state, setState] = useState<PushState | 'checking'>('checking');
  const [dismissed, setDismissed] = useState(false);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ['notifications'] });

  useEffect(() => {
    let live = true;
    pushState()
      .then((s) => {
        if (!live) return;
        setState(s);
        // Already on: make sure the server has this device for the person signed in now.
        if (s === 'on') syncPush().then(refresh, () => {});
      })
      .catch(() => live && setState('unsupported'));
    return () => {
      live = false;
    };
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  const enable = useMutation({
    mutationFn: enablePush,
    onMutate: () => setDismissed(false),
    onSuccess: (s) => {
      setState(s);
      setDismissed(s === 'off');
      refresh();
    },
  });
  const disable = useMutation({
    mutationFn: disablePush,
    onSettled: () => {
      setState('off');
      refresh();
    },
  });
  const test = useMutation({ mutationFn: api.pushTest, onSuccess: refresh });
  const busy = enable.isPending || disable.isPending;

  return (
    <section className="stack" aria-labelledby="push-title">
      <h3 id="push-title">Push notifications on this device</h3>
      <PushStatus state={state} />
      {dismissed && (
        <p className="muted" role="status">
          The browser’s question was closed without an answer. Press the button again to allow notifications.
        </p>
      )}
      <div className="row">
        {(state === 'off' || state === 'checking') && (
          <button type="button" className="primary" onClick={() => enable.mutate()} disabled={busy || state === 'checking'}>
            {enable.isPending ? 'Enabling…' : 'Enable push notifications'}
          </button>
        )}
        {state === 'on' && (
          <button type="button" onClick={() => disable.mutate()} disabled={busy}>
            {disable.isPending ? 'Turning off…' : 'Turn off on this device'}
          </button>
        )}
        {(state === 'on' || (devices ?? 0) > 0) && (
          <button type="button" onClick={() => test.mutate()} disabled={test.isPending}>
            {test.isPending ? 'Sending…' : 'Send a test'}
          </button>
        )}
      </div>
      {devices !== undefined && (
        <p className="muted small">
          {devices === 0 ? 'No device of yours receives push notifications yet.' : devices === 1 ? '1 device of yours receives push notifications.' : `${devices} devices of yours receive push notifications.`}
        </p>
      )}
      <ErrorMessage error={enable.error ?? disable.error} />
      <ErrorMessage error={test.error} title="The test was not sent." />
      {test.data && <TestOutcome {...test.data} />}
    </section>
  );
}

function TestOutcome({ sent, removed, failed = 0 }: { sent: number; removed: number; failed?: number }) {
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  if (sent + removed + failed === 0)
    return (
      <div className="alert info" role="status">
        No device of yours is registered for push, so nothing was sent.
      </div>
    );
  return (
    <div className={`alert ${sent > 0 && failed === 0 ? 'ok' : 'info'}`} role="status">
      Sent to {plural(sent, 'device', 'devices')}.{removed > 0 && ` ${plural(removed, 'expired subscription was', 'expired subscriptions were')} removed.`}
      {failed > 0 && ` ${plural(failed, 'device', 'devices')} could not be reached; the server will try again.`}
    </div>
  );
}

function PushStatus({ state }: { state: PushState | 'checking' }) {
  switch (state) {
    case 'checking':
      return <p className="muted">Checking this browser…</p>;
    case 'on':
      return (
        <p>
          <span className="badge delivered">On</span> This device shows a notification when a new task arrives, even when the inbox is closed.
        </p>
      );
    case 'off':
      return (
        <p>
          <span className="badge">Off</span> Get a notification on this device when a new task arrives. The browser will ask you to allow it.
        </p>
      );
    case 'denied':
      return (
        <div className="alert info">
          <strong>Notifications are blocked for this site by the browser.</strong> To allow them, open the site settings (the icon
          beside the address), set <em>Notifications</em> to <em>Allow</em>, then reload this page.
        </div>
      );
    case 'insecure':
      return (
        <div className="alert info">
          <strong>Push notifications need a secure connection.</strong> Open the inbox over https (ask the administrator to set it up).
        </div>
      );
    case 'unsupported':
      return (
        <div className="alert info">
          <strong>This browser cannot receive push notifications.</strong> On an iPhone or iPad, add the inbox to the home screen first (Share,
          then “Add to Home Screen”) and open it from there.
        </div>
      );
  }
}
