import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { api } from '../api';
import { navigate } from '../router';
import { ErrorMessage } from './common';

/**
 * The first-run page the setup link opens (`/setup#<token>`). The token stays in the URL fragment,
 * which browsers never send to servers or put in logs.
 */
export function Setup() {
  const queryClient = useQueryClient();
  const [token] = useState(() => location.hash.slice(1));
  const [form, setForm] = useState({ username: '', name: '', email: '', password: '', password2: '' });
  const [mismatch, setMismatch] = useState(false);
  const setup = useMutation({
    mutationFn: () => api.setup({ token, username: form.username, name: form.name, email: form.email || null, password: form.password }),
    onSuccess: (data) => {
      queryClient.setQueryData(['me'], data);
      navigate('/taskui', { replace: true });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setMismatch(form.password !== form.password2);
    if (form.password === form.password2) setup.mutate();
  };
  const field = (key: keyof typeof form, label: string, props: Record<string, unknown> = {}) => (
    <div className="field">
      <label htmlFor={`setup-${key}`}>{label}</label>
      <input id={`setup-${key}`} name={key} value={form[key]} onChange={(e) => setForm({ ...form, [key]: e.target.value })} {...props} />
    </div>
  );
  return (
    <main className="page">
      <form className="card center-card stack" onSubmit={submit} aria-labelledby="setup-title">
        <h1 id="setup-title">Create the first admin</h1>
        {!token && <div className="alert error">This page needs the setup link the server printed (it ends with #…).</div>}
        {field('username', 'Username', { required: true, autoComplete: 'username', autoCapitalize: 'none' })}
        {field('name', 'Display name', { required: true, autoComplete: 'name' })}
        {field('email', 'Email (optional)', { type: 'email', autoComplete: 'email' })}
        {field('password', 'Password (at least 10 characters)', { type: 'password', required: true, minLength: 10, autoComplete: 'new-password' })}
        {field('password2', 'Password again', { type: 'password', required: true, minLength: 10, autoComplete: 'new-password' })}
        {mismatch && <div className="alert error" role="alert">The two passwords differ.</div>}
        <ErrorMessage error={setup.error} />
        <button type="submit" className="primary" disabled={setup.isPending || !token}>
          Create admin and sign in
        </button>
      </form>
    </main>
  );
}
