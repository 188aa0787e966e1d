import type { ComponentType } from 'react';
import { Link } from '../../router';
import { ApiKeys } from './ApiKeys';
import { Audit } from './Audit';
import { Deliveries } from './Deliveries';
import { NotificationLog } from './NotificationLog';
import { People } from './People';
import { Schemas } from './Schemas';
import { WebhookKeys } from './WebhookKeys';

const sections: { path: string; label: string; Screen: ComponentType }[] = [
  { path: 'people', label: 'People', Screen: People },
  { path: 'schemas', label: 'Schemas', Screen: Schemas },
  { path: 'api-keys', label: 'API keys', Screen: ApiKeys },
  { path: 'webhook-keys', label: 'Webhook keys', Screen: WebhookKeys },
  { path: 'deliveries', label: 'Deliveries', Screen: Deliveries },
  { path: 'notifications', label: 'Notifications', Screen: NotificationLog },
  { path: 'audit', label: 'Audit', Screen: Audit },
];

/** The admin screens (the server allows their API to admins only), one per section of /taskui/admin/<section>. */
export function AdminPage({ section }: { section: string }) {
  const current = sections.find((s) => s.path === section);
  return (
    <div className="page admin">
      <nav className="admin-nav" aria-label="Admin">
        {sections.map((s) => (
          <Link key={s.path} to={`/taskui/admin/${s.path}`} aria-current={s === current ? 'page' : undefined}>
            {s.label}
          </Link>
        ))}
      </nav>
      {current ? (
        // Keyed by section, so a screen's state (a key shown once, an open form) ends when one leaves it.
        <current.Screen key={current.path} />
      ) : (
        <section className="stack">
          <h1>Nothing here</h1>
          <p>
            There is no admin screen called “{section}”. <Link to="/taskui/admin/people">Go to People</Link>.
          </p>
        </section>
      )}
    </div>
  );
}
