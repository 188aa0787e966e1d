/** Where a command writes; tests pass collectors, the executable passes the process streams. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.join(', ') || '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
};

/** Rows as aligned columns under a header; `columns` maps header → field. */
export function formatTable(rows: Record<string, unknown>[], columns: Record<string, string>): string {
  const headers = Object.keys(columns);
  const body = rows.map((r) => headers.map((h) => cell(r[columns[h]!]).replace(/\s*\n\s*/g, ' ')));
  const widths = headers.map((h, i) => Math.max(h.length, ...body.map((line) => line[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...body.map(line)].join('\n') + '\n';
}

/** Prints rows as a table, or as JSON with `--json`; says so when there is nothing. */
export function printRows(o: Output, rows: Record<string, unknown>[], columns: Record<string, string>, opts: { json?: boolean; empty: string }) {
  if (opts.json) return o.out(JSON.stringify(rows, null, 2) + '\n');
  if (rows.length === 0) return o.err(opts.empty + '\n');
  o.out(formatTable(rows, columns));
}
