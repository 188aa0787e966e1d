#!/usr/bin/env node
// Draws the app icons into web/public/icons/ with no dependencies (node:zlib only):
//   icon-192.png, icon-512.png          purpose "any": rounded blue tile, transparent corners
//   maskable-192.png, maskable-512.png  purpose "maskable": full-bleed blue, glyph inside the
//                                       central 80 % safe zone (a circle of radius 0.4 × size)
//   icon.svg                            the "any" design as SVG (favicon), from the same geometry
// The glyph is a white inbox tray with a check mark above it: round-capped, round-joined
// strokes, so the PNG rasteriser (union of capsules, 4×4 supersampled) and the SVG agree.
// Run: node web/scripts/make-icons.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'public', 'icons');
const BLUE = [0x24, 0x56, 0xd3];
const WHITE = [0xff, 0xff, 0xff];

// ---- PNG encoder: signature, IHDR (8-bit RGBA), IDAT (filter 0 on every row), IEND ----
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}
function encodePng(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // bit depth 8, colour type 6 (RGBA), deflate, filter set 0, no interlace
  const stride = width * 4;
  const raw = Buffer.alloc((stride + 1) * height); // each row: filter byte 0 (None), then pixels
  for (let y = 0; y < height; y++) rgba.copy(raw, y * (stride + 1) + 1, y * stride, (y + 1) * stride);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---- Glyph, on a 24-unit grid (y down) ----
const STROKE = 2.25;
/** Quarter-circle points from angle a0 to a1 (radians) around (cx, cy), end points included. */
function arc(cx, cy, r, a0, a1, steps = 8) {
  return Array.from({ length: steps + 1 }, (_, i) => {
    const a = a0 + ((a1 - a0) * i) / steps;
    return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  });
}
const R = 2.5; // tray's bottom corner radius
const GLYPH = [
  // Tray: the rim with its dip, then round the bottom and back up to the start (closed).
  {
    closed: true,
    points: [
      [3, 13], [8, 13], [9.5, 16.5], [14.5, 16.5], [16, 13], [21, 13],
      ...arc(21 - R, 20.5 - R, R, 0, Math.PI / 2),
      ...arc(3 + R, 20.5 - R, R, Math.PI / 2, Math.PI),
    ],
  },
  // Check mark above the tray.
  { closed: false, points: [[8, 6.5], [11, 9.5], [16.5, 4]] },
];
function segmentsOf(shape) {
  const p = shape.points;
  const segs = [];
  for (let i = 0; i + 1 < p.length; i++) segs.push([p[i], p[i + 1]]);
  if (shape.closed) segs.push([p[p.length - 1], p[0]]);
  return segs;
}
// Centre the glyph on its stroked bounding box.
const allPoints = GLYPH.flatMap((s) => s.points);
const gx0 = Math.min(...allPoints.map((p) => p[0])) - STROKE / 2;
const gx1 = Math.max(...allPoints.map((p) => p[0])) + STROKE / 2;
const gy0 = Math.min(...allPoints.map((p) => p[1])) - STROKE / 2;
const gy1 = Math.max(...allPoints.map((p) => p[1])) + STROKE / 2;
const GCX = (gx0 + gx1) / 2;
const GCY = (gy0 + gy1) / 2;

/**
 * A design at a given pixel size: the tile (rounded square or full bleed) and the glyph
 * strokes in pixel coordinates.
 */
function layout(size, maskable) {
  // "any": tile inset 1/32 of the size, corner radius 22 %; glyph 24 units = 66 % of the size.
  // "maskable": no tile shape (the platform masks it); glyph 24 units = 60 % of the size.
  const inset = maskable ? 0 : size / 32;
  const tile = { x: inset, y: inset, w: size - 2 * inset, r: maskable ? 0 : size * 0.22 };
  const k = (size * (maskable ? 0.6 : 0.66)) / 24;
  const map = ([x, y]) => [size / 2 + (x - GCX) * k, size / 2 + (y - GCY) * k];
  const shapes = GLYPH.map((s) => ({ closed: s.closed, points: s.points.map(map) }));
  return { size, tile, halfStroke: (STROKE * k) / 2, shapes, segments: shapes.flatMap(segmentsOf) };
}

// ---- Rasteriser: 4×4 samples per pixel, premultiplied accumulation ----
function insideRoundedSquare(px, py, { x, y, w, r }) {
  if (px < x || py < y || px > x + w || py > y + w) return false;
  const dx = Math.max(x + r - px, px - (x + w - r), 0);
  const dy = Math.max(y + r - py, py - (y + w - r), 0);
  return dx * dx + dy * dy <= r * r;
}
function distSqToSegment(px, py, [[ax, ay], [bx, by]]) {
  const vx = bx - ax;
  const vy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * vx + (py - ay) * vy) / (vx * vx + vy * vy)));
  const dx = px - (ax + t * vx);
  const dy = py - (ay + t * vy);
  return dx * dx + dy * dy;
}
function render(design) {
  const { size, tile, halfStroke, segments } = design;
  const SS = 4;
  const r2 = halfStroke * halfStroke;
  const rgba = Buffer.alloc(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const px = x + (sx + 0.5) / SS;
          const py = y + (sy + 0.5) / SS;
          if (!insideRoundedSquare(px, py, tile)) continue;
          const glyph = segments.some((s) => distSqToSegment(px, py, s) <= r2);
          const [cr, cg, cb] = glyph ? WHITE : BLUE;
          r += cr; g += cg; b += cb; a += 1;
        }
      }
      const i = (y * size + x) * 4;
      if (a > 0) {
        rgba[i] = Math.round(r / a);
        rgba[i + 1] = Math.round(g / a);
        rgba[i + 2] = Math.round(b / a);
        rgba[i + 3] = Math.round((255 * a) / (SS * SS));
      }
    }
  }
  return rgba;
}

/** Fails loudly if a maskable glyph pokes out of the safe zone (circle of radius 0.4 × size). */
function assertInSafeZone({ size, halfStroke, shapes }) {
  const c = size / 2;
  const farthest = Math.max(...shapes.flatMap((s) => s.points.map(([x, y]) => Math.hypot(x - c, y - c) + halfStroke)));
  if (farthest > 0.4 * size) throw new Error(`maskable glyph reaches ${(farthest / size).toFixed(3)} × size, safe zone is 0.4`);
}

// ---- SVG (favicon): the "any" design at 512, rounded to 0.1 px ----
function svgOf({ size, tile, halfStroke, shapes }) {
  const n = (v) => String(Math.round(v * 10) / 10);
  const d = shapes
    .map((s) => 'M' + s.points.map(([x, y]) => `${n(x)} ${n(y)}`).join('L') + (s.closed ? 'Z' : ''))
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}">` +
    `<rect x="${n(tile.x)}" y="${n(tile.y)}" width="${n(tile.w)}" height="${n(tile.w)}" rx="${n(tile.r)}" fill="#2456d3"/>` +
    `<path d="${d}" fill="none" stroke="#fff" stroke-width="${n(halfStroke * 2)}" stroke-linecap="round" stroke-linejoin="round"/>` +
    `</svg>\n`
  );
}

mkdirSync(outDir, { recursive: true });
for (const size of [192, 512]) {
  for (const maskable of [false, true]) {
    const design = layout(size, maskable);
    if (maskable) assertInSafeZone(design);
    const file = path.join(outDir, `${maskable ? 'maskable' : 'icon'}-${size}.png`);
    writeFileSync(file, encodePng(size, size, render(design)));
    console.log('wrote', path.relative(process.cwd(), file));
  }
}
writeFileSync(path.join(outDir, 'icon.svg'), svgOf(layout(512, false)));
console.log('wrote', path.relative(process.cwd(), path.join(outDir, 'icon.svg')));
