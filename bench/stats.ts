// Small statistics helpers for the bench: medians with their spread, percentiles.

/** A figure measured several times: the median and the lowest and highest run. */
export interface Sample {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function sample(runs: number[]): Sample {
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs };
}

/** Nearest-rank percentile of already collected values (p in 0..100). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** 12345 → "12.3k", 1234567 → "1.23M", small numbers as they are. */
export function si(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toPrecision(3)}k`;
  if (abs >= 100) return value.toFixed(0);
  return value.toPrecision(3);
}

/** "median (min–max)" with a relative spread when it is large enough to matter. */
export function show(s: Sample, unit = ''): string {
  if (s.runs.length === 1) return `${si(s.median)}${unit}`;
  return `${si(s.median)}${unit} (${si(s.min)}–${si(s.max)})`;
}

export function ratio(ours: number, theirs: number): string {
  if (!Number.isFinite(ours) || !Number.isFinite(theirs) || theirs === 0) return '–';
  return `${(ours / theirs).toFixed(2)}×`;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
