import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { api, ApiError, type User } from '../api';
import { useLiveUpdates } from '../live';
import { registerServiceWorker, useOnline } from '../pwa';
import { Link, navigate, useLocation } from '../router';
import { Account } from './Account';
import { AdminPage } from './admin/AdminPage';
import { ErrorMessage, Loading } from './common';
import { Inbox } from './Inbox';
import { Setup } from './Setup';
import { SignIn } from './SignIn';

export function App() {
  const loc = useLocation();
  const online = useOnline();
  const [applyUpdate, setApplyUpdate] = useState<(() => void) | null>(null);
  useEffect(() => registerServiceWorker((apply) => setApplyUpdate(() => apply)), []);
  const me = useQuery({ queryKey: ['me'], queryFn: api.me, retry: false, staleTime: 5 * 60_000 });

  let body;
  if (loc.path === '/setup') body = <Setup />;
  else if (me.isPending) body = <Loading />;
  else if (me.error instanceof ApiError && me.error.status === 401) body = <SignIn />;
  else if (me.error) body = me.error instanceof ApiError && me.error.status === 0 ? <OfflineScreen onRetry={() => void me.refetch()} /> : <div className="page"><ErrorMessage error={me.error} /></div>;
  else body = <Shell user={me.data.user} />;

  return (
    <>
      {!online && (
        <div className="banner offline" role="status">
          You are offline. What is shown may be out of date; changes need a connection.
        </div>
      )}
      {applyUpdate && (
        <div className="banner update" role="status">
          A new version of task-inbox is ready.{' '}
          <button type="button" className="primary" onClick={applyUpdate}>
            Reload
          </button>
        </div>
      )}
      {body}
    </>
  );
}

function OfflineScreen({ onRetry }: { onRetry: () => void }) {
  return (
    <main className="page">
      <div className="card center-card stack" role="alert">
        <h1>You are offline</h1>
        <p>task-inbox cannot reach its server. Your inbox appears as soon as the connection is back.</p>
        <button type="button" className="primary" onClick={onRetry}>
          Try again
        </button>
      </div>
    </main>
  );
}

function Shell({ user }: { user: User }) {
  const loc = useLocation();
  const queryClient = useQueryClient();
  useLiveUpdates(true);
  const count = useQuery({ queryKey: ['count', 'un'], queryFn: () => api.countTasks('un') });
  const unresolved = count.data?.count;
  useEffect(() => {
    document.title = unresolved ? `(${unresolved}) task-inbox` : 'task-inbox';
  }, [unresolved]);

  useEffect(() => {
    if (loc.path === '/' || loc.path === '/index.html') navigate('/taskui', { replace: true });
  }, [loc.path]);

  const signOut = async () => {
    await api.signOut().catch(() => {});
    queryClient.clear();
    navigate('/taskui');
    await queryClient.invalidateQueries({ queryKey: ['me'] });
  };

  const section = loc.path.startsWith('/taskui/admin') ? 'admin' : loc.path.startsWith('/taskui/account') ? 'account' : 'inbox';
  const taskMatch = /^\/taskui\/tasks\/([^/]+)$/.exec(loc.path);

  let page;
  if (section === 'account') page = <Account user={user} onSignOut={signOut} />;
  else if (section === 'admin') page = user.role === 'admin' ? <AdminPage section={loc.path.split('/')[3] ?? 'people'} /> : <NotAllowed />;
  else if (loc.path === '/taskui' || taskMatch || loc.path === '/') page = <Inbox taskId={taskMatch?.[1]} />;
  else page = <NotFound />;

  return (
    <>
      <header className="app-header">
        <Link to="/taskui" className="brand" aria-label="task-inbox, inbox">
          <img src="/icons/icon.svg" alt="" width={26} height={26} />
          <span>task-inbox</span>
        </Link>
        <nav aria-label="Main">
          <Link to="/taskui" aria-current={section === 'inbox' ? 'page' : undefined}>
            Inbox
            {unresolved ? (
              <span className="count-badge" aria-label={`${unresolved} unresolved`}>
                {unresolved}
              </span>
            ) : null}
          </Link>
          {user.role === 'admin' && (
            <Link to="/taskui/admin/people" aria-current={section === 'admin' ? 'page' : undefined}>
              Admin
            </Link>
          )}
          <Link to="/taskui/account" aria-current={section === 'account' ? 'page' : undefined}>
            Account
          </Link>
        </nav>
        <span className="spacer" />
        <button type="button" className="link sign-out" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main">{page}</main>
    </>
  );
}

function NotFound() {
  return (
    <div className="page">
      <h1>Nothing here</h1>
      <p>
        This page does not exist. <Link to="/taskui">Go to the inbox</Link>.
      </p>
    </div>
  );
}

function NotAllowed() {
  return (
    <div className="page">
      <h1>Admins only</h1>
      <p>Your account cannot open the admin screens. Ask an admin if you need something changed.</p>
    </div>
  );
}
