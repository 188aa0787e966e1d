import { useQuery } from '@tanstack/react-query';
import { api } from '../../api';
import { ErrorMessage, Loading } from '../common';
import { Channels } from './Channels';
import { PushDevice } from './PushDevice';
import { Topics } from './Topics';

/** "My account" → Notifications: push on this device, other channels, and which tasks notify. */
export function Notifications() {
  const settings = useQuery({ queryKey: ['notifications'], queryFn: api.notificationSettings });
  const s = settings.data;
  return (
    <section className="card stack notifications" aria-labelledby="notifications-title">
      <h2 id="notifications-title">Notifications</h2>
      <p className="muted">Hear about new tasks without keeping the inbox open.</p>
      <PushDevice devices={s?.push.devices} />
      {settings.isPending && <Loading />}
      <ErrorMessage error={settings.error} />
      {s && (
        <>
          <Channels channels={s.channels} emailAvailable={s.email_available} />
          <Topics topics={s.topics} />
        </>
      )}
    </section>
  );
}
