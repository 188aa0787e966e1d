import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState, type FormEvent } from 'react';
import { api, type User } from '../../api';
import { navigate, useLocation, withParams } from '../../router';
import { ConfirmButton, DataTable, ErrorMessage, Loading, RelativeTime } from '../common';
import { DetailDialog } from './DetailDialog';
import { Empty, Moment, Screen } from './Screen';

const MIN_PASSWORD = 10;

/** Everyone who can sign in: add people, deactivate them, reset passwords, end sessions. */
export function People() {
  const loc = useLocation();
  const users = useQuery({ queryKey: ['admin', 'users'], queryFn: api.users, staleTime: 0 });
  const me = useQuery({ queryKey: ['me'], queryFn: api.me, staleTime: 5 * 60_000 });
  const [adding, setAdding] = useState(false);
  const [added, setAdded] = useState<User | null>(null);
  const list = users.data?.users ?? [];
  const selectedId = loc.params.get('person');
  const selected = list.find((u) => u.id === selectedId);
  const open = (id?: string) => navigate(withParams(loc, { person: id }));

  return (
    <Screen title="People" lead="Everyone who can sign in to this inbox. Admins also see these screens.">
      <div className="row">
        <button type="button" className="primary" aria-expanded={adding} aria-controls="add-person" onClick={() => setAdding((a) => !a)}>
          {adding ? 'Cancel' : 'Add a person'}
        </button>
      </div>
      {adding && (
        <AddPerson
          onAdded={(user) => {
            setAdded(user);
            setAdding(false);
          }}
        />
      )}
      {added && !adding && (
        <div className="alert ok" role="status">
          Added <strong>{added.name}</strong>. They can sign in as <strong>{added.username}</strong> with the password you chose.
        </div>
      )}
      {users.isPending && <Loading />}
      <ErrorMessage error={users.error} />
      {users.isSuccess && list.length === 0 && <Empty>Nobody yet.</Empty>}
      {list.length > 0 && (
        <DataTable caption="People" columns={['Name', 'Username', 'Role', 'Status', 'Added', { label: 'Actions', hidden: true }]}>
          {list.map((u) => (
            <tr key={u.id} className={u.active ? undefined : 'inactive'}>
              <td>
                <strong>{u.name}</strong>
                {u.id === me.data?.user.id && <span className="muted"> (you)</span>}
                {u.email && <div className="muted small">{u.email}</div>}
              </td>
              <td className="mono">{u.username}</td>
              <td>
                <span className={`badge ${u.role === 'admin' ? 'role-admin' : ''}`}>{u.role}</span>
              </td>
              <td>
                <ActiveBadge active={u.active} />
              </td>
              <td className="nowrap">
                <RelativeTime iso={u.created} />
              </td>
              <td className="actions">
                <button type="button" onClick={() => open(u.id)} aria-label={`Manage ${u.name}`}>
                  Manage
                </button>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      {selected && <PersonDialog user={selected} isMe={selected.id === me.data?.user.id} onClose={() => open(undefined)} />}
    </Screen>
  );
}

function ActiveBadge({ active }: { active: boolean }) {
  return <span className={`badge ${active ? 'delivered' : 'dead'}`}>{active ? 'active' : 'deactivated'}</span>;
}

function AddPerson({ onAdded }: { onAdded: (user: User) => void }) {
  const queryClient = useQueryClient();
  const id = useId();
  const [form, setForm] = useState({ username: '', name: '', email: '', role: 'member' as 'member' | 'admin', password: '' });
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const create = useMutation({
    mutationFn: () => api.createUser({ username: form.username.trim(), name: form.name.trim(), email: form.email.trim() || null, role: form.role, password: form.password }),
    onSuccess: ({ user }) => {
      void queryClient.invalidateQueries({ queryKey: ['admin', 'users'] });
      onAdded(user);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <form id="add-person" className="card stack" onSubmit={submit} aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Add a person</h2>
      <div className="form-grid">
        <div className="field">
          <label htmlFor={`${id}-username`}>Username</label>
          <input id={`${id}-username`} required autoFocus autoComplete="off" autoCapitalize="none" spellCheck={false} value={form.username} onChange={set('username')} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-name`}>Display name</label>
          <input id={`${id}-name`} required autoComplete="off" value={form.name} onChange={set('name')} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-email`}>
            Email <span className="muted optional">(optional)</span>
          </label>
          <input id={`${id}-email`} type="email" autoComplete="off" value={form.email} onChange={set('email')} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-role`}>Role</label>
          <select id={`${id}-role`} value={form.role} onChange={set('role')}>
            <option value="member">Member: works on tasks</option>
            <option value="admin">Admin: also manages the inbox</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-password`}>Password</label>
          <input id={`${id}-password`} type="password" required minLength={MIN_PASSWORD} autoComplete="new-password" aria-describedby={`${id}-password-hint`} value={form.password} onChange={set('password')} />
          <span id={`${id}-password-hint`} className="muted small">
            At least {MIN_PASSWORD} characters. Give it to them privately; they can change it under Account.
          </span>
        </div>
      </div>
      <ErrorMessage error={create.error} />
      <div className="row">
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? 'Adding…' : 'Add person'}
        </button>
      </div>
    </form>
  );
}

function PersonDialog({ user, isMe, onClose }: { user: User; isMe: boolean; onClose: () => void }) {
  const queryClient = useQueryClient();
  const setActive = useMutation({
    mutationFn: (active: boolean) => api.updateUser(user.id, { active }),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ['admin', 'users'] });
      void queryClient.invalidateQueries({ queryKey: ['admin', 'sessions', user.id] });
    },
  });
  return (
    <DetailDialog
      title={user.name}
      subtitle={
        <>
          <span className="mono">{user.username}</span> · {user.role}
          {user.email ? ` · ${user.email}` : ''}
        </>
      }
      onClose={onClose}
    >
      <section className="stack" aria-labelledby="person-access">
        <h3 id="person-access">Access</h3>
        <div className="row">
          <ActiveBadge active={user.active} />
          <span className="muted">{user.active ? 'Can sign in.' : 'Cannot sign in until reactivated.'}</span>
          <span className="spacer" />
          {user.active ? (
            <ConfirmButton
              label="Deactivate"
              question={`Deactivate ${user.name}? Their sessions end at once and they cannot sign in until reactivated.`}
              onConfirm={() => setActive.mutate(false)}
              disabled={setActive.isPending || isMe}
            />
          ) : (
            <button type="button" onClick={() => setActive.mutate(true)} disabled={setActive.isPending}>
              Reactivate
            </button>
          )}
        </div>
        {isMe && <p className="muted small">You cannot deactivate yourself.</p>}
        <ErrorMessage error={setActive.error} />
      </section>
      <ResetPassword user={user} />
      <PersonSessions user={user} />
    </DetailDialog>
  );
}

function ResetPassword({ user }: { user: User }) {
  const queryClient = useQueryClient();
  const id = useId();
  const [password, setPassword] = useState('');
  const reset = useMutation({
    mutationFn: () => api.resetPassword(user.id, password),
    onSuccess: () => {
      setPassword('');
      void queryClient.invalidateQueries({ queryKey: ['admin', 'sessions', user.id] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    reset.mutate();
  };
  return (
    <form className="stack" onSubmit={submit} aria-labelledby={`${id}-title`}>
      <h3 id={`${id}-title`}>Reset password</h3>
      <div className="field">
        <label htmlFor={`${id}-password`}>New password for {user.name}</label>
        <div className="row nowrap-row">
          <input
            id={`${id}-password`}
            type="password"
            required
            minLength={MIN_PASSWORD}
            autoComplete="new-password"
            aria-describedby={`${id}-hint`}
            value={password}
            onChange={(e) => {
              setPassword(e.target.value);
              if (reset.isSuccess || reset.isError) reset.reset();
            }}
          />
          <button type="submit" disabled={reset.isPending}>
            Set password
          </button>
        </div>
        <span id={`${id}-hint`} className="muted small">
          At least {MIN_PASSWORD} characters. Their sessions end, so they sign in again with it.
        </span>
      </div>
      <ErrorMessage error={reset.error} />
      {reset.isSuccess && (
        <div className="alert ok" role="status">
          Password changed. {user.name}'s sessions were ended.
        </div>
      )}
    </form>
  );
}

function PersonSessions({ user }: { user: User }) {
  const queryClient = useQueryClient();
  const sessions = useQuery({ queryKey: ['admin', 'sessions', user.id], queryFn: () => api.userSessions(user.id), staleTime: 0 });
  const end = useMutation({
    mutationFn: api.revokeSession,
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['admin', 'sessions', user.id] }),
  });
  const list = sessions.data?.sessions ?? [];
  return (
    <section className="stack" aria-labelledby="person-sessions">
      <h3 id="person-sessions">Sessions</h3>
      {sessions.isPending && <Loading />}
      <ErrorMessage error={sessions.error ?? end.error} />
      {sessions.isSuccess && list.length === 0 && <p className="muted">Not signed in anywhere.</p>}
      {list.length > 0 && (
        <ul className="session-list">
          {list.map((s) => (
            <li key={s.id} className="row">
              <div className="session-what">
                <div className="session-agent">{s.user_agent ?? 'Unknown browser'}</div>
                <div className="muted small">
                  {s.ip ?? 'unknown address'} · signed in <RelativeTime iso={s.created} /> · last seen <Moment iso={s.last_seen} />
                </div>
              </div>
              <button type="button" onClick={() => end.mutate(s.id)} disabled={end.isPending}>
                End session
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
