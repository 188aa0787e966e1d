/*
 * Task metadata conventions (SPEC §4): `screenshot__preview` is the field `screenshot` with the
 * attribute `preview`. Values are always text; only http(s) URLs become links or images.
 */

export interface MetaField {
  key: string;
  field: string;
  attributes: string[];
  value: unknown;
}

export function parseMeta(meta: Record<string, unknown> | null | undefined): MetaField[] {
  return Object.entries(meta ?? {}).map(([key, value]) => {
    const [field = key, ...attributes] = key.split('__');
    return { key, field: field || key, attributes, value };
  });
}

/** The value as text: strings as they are, anything else as JSON. */
export function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return JSON.stringify(value, null, 2);
}

/** The URL to link to, or null when the value is not an http(s) URL. */
export function safeUrl(value: unknown): URL | null {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

const IMAGE = /\.(jpe?g|gif|png|webp|avif)$/i;
export const isImageUrl = (url: URL) => IMAGE.test(url.pathname);

/** One line for the list: the first few plain values. */
export function summary(meta: Record<string, unknown> | null | undefined): string {
  return parseMeta(meta)
    .filter((f) => f.value !== null && typeof f.value !== 'object')
    .slice(0, 4)
    .map((f) => `${f.field}: ${valueText(f.value)}`)
    .join(' · ')
    .slice(0, 200);
}
