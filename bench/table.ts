/**
 * The one table `bench/run.ts` prints: one row per figure, ours beside its baseline and the ratio.
 * Benchmarks return rows; formatting lives here so every benchmark prints numbers the same way.
 */

export interface Row {
  /** synth, overhead, fanout or convergence. */
  readonly bench: string;
  /** What was measured on, e.g. `1000 hosts` or `M=200 N=500`. */
  readonly scenario: string;
  /** The figure, e.g. `wall p50`. */
  readonly metric: string;
  readonly ours: string;
  /** The baseline's figure, with its name when the column header is not enough. */
  readonly baseline: string;
  /** ours / baseline, formatted. */
  readonly ratio: string;
  /** The target from the issue, or a short remark. */
  readonly note?: string;
}

const HEADERS: Array<[keyof Row, string]> = [
  ['bench', 'bench'],
  ['scenario', 'scenario'],
  ['metric', 'metric'],
  ['ours', 'ours'],
  ['baseline', 'baseline'],
  ['ratio', 'ours/base'],
  ['note', 'note'],
];

/** Renders rows as a fixed-width text table. */
export function renderTable(rows: Row[]): string {
  const cells = rows.map((r) => HEADERS.map(([key]) => String(r[key] ?? '')));
  const widths = HEADERS.map(([, title], i) => Math.max(title.length, ...cells.map((c) => c[i].length)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]))).join(' | ').trimEnd();
  const out = [line(HEADERS.map(([, title]) => title)), widths.map((w) => '-'.repeat(w)).join('-|-')];
  let previous = '';
  for (const [i, c] of cells.entries()) {
    if (previous !== '' && rows[i].bench !== previous) out.push('');
    previous = rows[i].bench;
    out.push(line(c));
  }
  return out.join('\n');
}

/** Milliseconds, with a unit that keeps 3 significant digits (µs below 1 ms, s above 10 s). */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const a = Math.abs(value);
  if (a < 1) return `${(value * 1000).toFixed(0)} µs`;
  if (a >= 1000) return `${(value / 1000).toFixed(a >= 100_000 ? 0 : a >= 10_000 ? 1 : 2)} s`;
  return `${value.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2)} ms`;
}

/** Microseconds as text, for request latencies. */
export function us(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return Math.abs(value) >= 1000 ? ms(value / 1000) : `${value.toFixed(0)} µs`;
}

/** KiB as MiB. */
export function mib(kib: number): string {
  return Number.isFinite(kib) ? `${(kib / 1024).toFixed(0)} MiB` : 'n/a';
}

export function times(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return Math.abs(value) < 0.095 && value !== 0 ? `${value.toPrecision(2)}x` : `${value.toFixed(2)}x`;
}

export function count(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function perSecond(value: number): string {
  return Number.isFinite(value) ? `${count(value)}/s` : 'n/a';
}
