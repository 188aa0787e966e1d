import { useId } from 'react';

/** How often a channel sends: at once (null), or a digest every so many minutes. */
export type Digest = { mode: 'now' } | { mode: 'digest'; amount: string; unit: 'minutes' | 'hours' };

export const MAX_DIGEST_MINUTES = 7 * 24 * 60;

export function digestFromMinutes(minutes: number | null): Digest {
  if (minutes === null) return { mode: 'now' };
  return minutes % 60 === 0 ? { mode: 'digest', amount: String(minutes / 60), unit: 'hours' } : { mode: 'digest', amount: String(minutes), unit: 'minutes' };
}

/** The minutes to send, or an error message for the person. */
export function digestMinutes(d: Digest): { minutes: number | null } | { error: string } {
  if (d.mode === 'now') return { minutes: null };
  const n = Number(d.amount);
  const minutes = d.unit === 'hours' ? n * 60 : n;
  if (!Number.isInteger(n) || n < 1 || minutes > MAX_DIGEST_MINUTES) return { error: 'A digest is sent every 1 minute to 7 days (168 hours), in whole minutes or hours.' };
  return { minutes };
}

/** "immediately", "digest every 30 minutes", "digest every 2 hours". */
export function describeDigest(minutes: number | null): string {
  if (minutes === null) return 'immediately';
  if (minutes % 60 === 0) return minutes === 60 ? 'digest every hour' : `digest every ${minutes / 60} hours`;
  return minutes === 1 ? 'digest every minute' : `digest every ${minutes} minutes`;
}

/** The "Delivery" choice of a channel: immediately, or a digest every N minutes or hours. */
export function DigestFields({ value, onChange, legend = 'Delivery' }: { value: Digest; onChange: (d: Digest) => void; legend?: string }) {
  const id = useId();
  const digest = value.mode === 'digest' ? value : { mode: 'digest' as const, amount: '30', unit: 'minutes' as const };
  return (
    <fieldset className="choice">
      <legend>{legend}</legend>
      <label className="checkbox">
        <input type="radio" name={`${id}-mode`} checked={value.mode === 'now'} onChange={() => onChange({ mode: 'now' })} />
        Immediately, one message per new task
      </label>
      <label className="checkbox">
        <input type="radio" name={`${id}-mode`} checked={value.mode === 'digest'} onChange={() => onChange(digest)} />
        A digest of the new tasks, every…
      </label>
      {value.mode === 'digest' && (
        <div className="row digest-every">
          <label htmlFor={`${id}-amount`} className="visually-hidden">
            Every how many
          </label>
          <input id={`${id}-amount`} type="number" inputMode="numeric" min={1} max={value.unit === 'hours' ? 168 : MAX_DIGEST_MINUTES} step={1} required value={value.amount} onChange={(e) => onChange({ ...value, amount: e.target.value })} />
          <label htmlFor={`${id}-unit`} className="visually-hidden">
            Unit
          </label>
          <select id={`${id}-unit`} value={value.unit} onChange={(e) => onChange({ ...value, unit: e.target.value as 'minutes' | 'hours' })}>
            <option value="minutes">minutes</option>
            <option value="hours">hours</option>
          </select>
        </div>
      )}
    </fieldset>
  );
}
