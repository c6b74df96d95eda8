/**
 * Small statistics shared by the benchmarks: percentiles, summaries, ratios and growth factors.
 * Every function is pure; an empty input gives NaN rather than an exception, so a benchmark that
 * measured nothing still prints a row.
 */

/** The p-th percentile (0-100) by the nearest-rank method on a copy of the values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function mean(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Count, median, p99, worst and best of a set of samples. */
export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly p99: number;
  readonly max: number;
  readonly min: number;
}

export function summarize(values: number[]): Summary {
  return {
    n: values.length,
    median: median(values),
    p99: percentile(values, 99),
    max: values.length === 0 ? NaN : Math.max(...values),
    min: values.length === 0 ? NaN : Math.min(...values),
  };
}

/** a / b, NaN when either is missing or b is 0. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}

/**
 * How much `value` grows per 10x of `size` between two measurements: (v2/v1)^(1/log10(s2/s1)).
 * 10 means linear, 100 quadratic.
 */
export function growthPer10x(size1: number, value1: number, size2: number, value2: number): number {
  if (!(value1 > 0) || !(value2 > 0) || !(size2 > size1)) return NaN;
  return Math.pow(value2 / value1, 1 / Math.log10(size2 / size1));
}

/** Rounds for JSON output: keeps results.json readable without losing meaningful digits. */
export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value)) return value;
  const f = Math.pow(10, digits);
  return Math.round(value * f) / f;
}

/** Nanoseconds of the system-wide monotonic clock as milliseconds; comparable across processes on one machine. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
