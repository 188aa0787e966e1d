import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { api, type User } from '../api';
import { DataTable, ErrorMessage, Loading, Page, RelativeTime } from './common';
import { Notifications } from './notifications/Notifications';

export function Account({ user, onSignOut }: { user: User; onSignOut: () => void }) {
  return (
    <Page
      title="My account"
      actions={
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      }
    >
      <section className="card stack" aria-labelledby="me-title">
        <h2 id="me-title">{user.name}</h2>
        <p className="muted">
          Signed in as <strong>{user.username}</strong> ({user.role}){user.email ? ` · ${user.email}` : ''}
        </p>
      </section>
      <Notifications />
      <ChangePassword />
      <MySessions />
    </Page>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const change = useMutation({
    mutationFn: () => api.changePassword({ current_password: current, password: next }),
    onSuccess: () => {
      setCurrent('');
      setNext('');
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    change.mutate();
  };
  return (
    <form className="card stack" onSubmit={submit} aria-labelledby="password-title">
      <h2 id="password-title">Change password</h2>
      <div className="field">
        <label htmlFor="current-password">Current password</label>
        <input id="current-password" type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />
      </div>
      <div className="field">
        <label htmlFor="new-password">New password (at least 10 characters)</label>
        <input id="new-password" type="password" autoComplete="new-password" minLength={10} required value={next} onChange={(e) => setNext(e.target.value)} />
      </div>
      <ErrorMessage error={change.error} />
      {change.isSuccess && (
        <div className="alert ok" role="status">
          Password changed. Your other sessions were signed out.
        </div>
      )}
      <div>
        <button type="submit" className="primary" disabled={change.isPending}>
          Change password
        </button>
      </div>
    </form>
  );
}

function MySessions() {
  const queryClient = useQueryClient();
  const sessions = useQuery({ queryKey: ['my-sessions'], queryFn: api.mySessions });
  const end = useMutation({
    mutationFn: api.endMySession,
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['my-sessions'] }),
  });
  return (
    <section className="card stack" aria-labelledby="sessions-title">
      <h2 id="sessions-title">My sessions</h2>
      {sessions.isPending && <Loading />}
      <ErrorMessage error={sessions.error ?? end.error} />
      {/* A plain table inside the card, not the framed admin-table look. */}
      <DataTable framed={false} className="" columns={['Browser', 'Last seen', { label: 'Actions', hidden: true }]}>
        {sessions.data?.sessions.map((s) => (
          <tr key={s.id}>
            <td>
              {s.user_agent ?? 'Unknown browser'}
              <div className="muted">{s.ip ?? ''}</div>
            </td>
            <td>
              <RelativeTime iso={s.last_seen} />
            </td>
            <td>
              {s.current ? (
                <span className="badge">This browser</span>
              ) : (
                <button type="button" onClick={() => end.mutate(s.id)} disabled={end.isPending}>
                  Sign out
                </button>
              )}
            </td>
          </tr>
        ))}
      </DataTable>
    </section>
  );
}
