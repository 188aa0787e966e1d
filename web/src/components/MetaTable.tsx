import { isImageUrl, parseMeta, safeUrl, valueText } from '../meta';

/** The task's metadata: one row per key, every value as text; `__preview` URLs as links and images. */
export function MetaTable({ meta }: { meta: Record<string, unknown> | null }) {
  const fields = parseMeta(meta);
  if (fields.length === 0) return <p className="muted">No metadata.</p>;
  return (
    <table className="meta-table">
      <caption className="visually-hidden">Metadata</caption>
      <tbody>
        {fields.map((f) => {
          const url = f.attributes.includes('preview') ? safeUrl(f.value) : null;
          const text = valueText(f.value);
          return (
            <tr key={f.key}>
              <th scope="row">{f.field}</th>
              <td>
                {url ? (
                  <>
                    <a href={url.href} target="_blank" rel="noopener noreferrer nofollow">
                      {text}
                    </a>
                    {isImageUrl(url) && <img src={url.href} alt={`${f.field} preview`} loading="lazy" decoding="async" referrerPolicy="no-referrer" />}
                  </>
                ) : typeof f.value === 'object' && f.value !== null ? (
                  <pre>{text}</pre>
                ) : (
                  text
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
