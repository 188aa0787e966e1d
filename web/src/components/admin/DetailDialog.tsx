import { useLayoutEffect, useRef, type ReactNode } from 'react';

/**
 * A modal sheet for one item's details (a person, a delivery). It opens while mounted: the
 * browser keeps focus inside and Esc closes it; focus goes back to where it was when it closes.
 */
export function DetailDialog({ title, subtitle, onClose, children }: { title: ReactNode; subtitle?: ReactNode; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  const close = useRef(onClose);
  close.current = onClose;

  useLayoutEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const before = document.activeElement as HTMLElement | null;
    if (!dialog.open) dialog.showModal();
    return () => {
      // Runs before React removes the element, so the browser still sees it close.
      if (dialog.open) dialog.close();
      if (before?.isConnected) before.focus({ preventScroll: true });
    };
  }, []);

  return (
    <dialog
      ref={ref}
      className="detail-dialog"
      aria-labelledby="detail-title"
      onCancel={(e) => {
        e.preventDefault();
        close.current();
      }}
      onClick={(e) => {
        // A click on the backdrop (the dialog element itself, outside its content) closes it.
        if (e.target === ref.current) close.current();
      }}
    >
      <div className="detail-dialog-body stack">
        <header className="detail-dialog-head">
          <div className="stack detail-dialog-titles">
            <h2 id="detail-title">{title}</h2>
            {subtitle && <div className="muted">{subtitle}</div>}
          </div>
          <button type="button" className="icon-button" onClick={() => close.current()} aria-label="Close">
            <span aria-hidden="true">✕</span>
          </button>
        </header>
        {children}
      </div>
    </dialog>
  );
}
