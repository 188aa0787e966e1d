import { useEffect, useRef } from 'react';

const shortcuts: [string, string][] = [
  ['j / k', 'Next / previous task'],
  ['Enter or o', 'Open the selected task'],
  ['Esc', 'Close the task'],
  ['1 – 9', 'Press the n-th state button'],
  ['u', 'Switch between unresolved and all tasks'],
  ['/', 'Search'],
  ['?', 'This list'],
];

export function ShortcutHelp({ open, onClose }: { open: boolean; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} onClose={onClose} aria-labelledby="shortcuts-title">
      <h2 id="shortcuts-title">Keyboard shortcuts</h2>
      <table className="shortcuts">
        <tbody>
          {shortcuts.map(([keys, what]) => (
            <tr key={keys}>
              <td>
                <kbd>{keys}</kbd>
              </td>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form method="dialog" className="row" style={{ marginTop: 12 }}>
        <button type="submit" className="primary" autoFocus>
          Close
        </button>
      </form>
    </dialog>
  );
}
