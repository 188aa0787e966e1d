import { useEffect, useRef, type ReactNode } from 'react';
import { CopyButton } from '../common';

/**
 * A key that was just created, shown this once. The caller keeps it only in component state,
 * so leaving the screen or reloading it forgets the key for good.
 */
export function NewSecret({ title, secret, children, onDone }: { title: string; secret: string; children?: ReactNode; onDone: () => void }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => box.current?.focus(), [secret]);
  return (
    <div className="alert ok new-secret stack" role="status" tabIndex={-1} ref={box} aria-labelledby="new-secret-title">
      <h2 id="new-secret-title">{title}</h2>
      <p>
        Copy it now and store it somewhere safe: it is <strong>shown only once</strong>. task-inbox keeps only a fingerprint of it.
      </p>
      <div className="secret-row">
        <code className="secret">{secret}</code>
        <CopyButton text={secret} label="Copy key" />
      </div>
      {children}
      <div>
        <button type="button" onClick={onDone}>
          I have copied it
        </button>
      </div>
    </div>
  );
}
