import type { FastifyPluginAsync } from 'fastify';

// The first-run page the setup link opens: a form that posts to /api/v1/setup. The token stays
// in the URL fragment, which browsers never send to servers or put in logs.
const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>task-inbox · first admin</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1b1f24;background:#fff}
@media (prefers-color-scheme:dark){body{color:#e6e8eb;background:#14171a}input{background:#1d2125;color:inherit}}
label{display:block;margin-top:1rem;font-weight:600}input{width:100%;box-sizing:border-box;padding:.6rem;font:inherit;border:1px solid #8a939c;border-radius:6px}
button{margin-top:1.5rem;width:100%;min-height:44px;font:inherit;font-weight:600;border:0;border-radius:6px;background:#2456d3;color:#fff}
#msg{margin-top:1rem;min-height:1.5rem}
</style></head><body>
<h1>Create the first admin</h1>
<form id="f">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="name">Display name</label><input id="name" name="name" required>
<label for="email">Email (optional)</label><input id="email" name="email" type="email" autocomplete="email">
<label for="password">Password (at least 10 characters)</label><input id="password" name="password" type="password" minlength="10" autocomplete="new-password" required>
<label for="password2">Password again</label><input id="password2" type="password" minlength="10" autocomplete="new-password" required>
<button type="submit">Create admin and sign in</button>
<p id="msg" role="status" aria-live="polite"></p>
</form>
<script>
const f = document.getElementById('f'), msg = document.getElementById('msg');
f.addEventListener('submit', async (e) => {
  e.preventDefault();
  const v = (id) => document.getElementById(id).value;
  if (v('password') !== v('password2')) { msg.textContent = 'The two passwords differ.'; return; }
  const body = { token: location.hash.slice(1), username: v('username'), name: v('name'), email: v('email') || null, password: v('password') };
  const res = await fetch('/api/v1/setup', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  msg.textContent = res.ok ? 'Done: you are signed in as ' + data.user.username + '.' : (data.detail || 'Something went wrong.');
});
</script></body></html>`;

export const setupPage: FastifyPluginAsync = async (app) => {
  app.get('/setup', { config: { auth: 'public' } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'").send(page),
  );
};
