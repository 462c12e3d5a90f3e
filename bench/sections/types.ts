/** What a run measures, scaled down by `--quick`. */
export interface Config {
  quick: boolean;
  /** Repetitions of every throughput figure (the median and spread are reported). */
  runs: number;
  /** Operations per throughput run. */
  ops: number;
  /** Seconds of each autocannon run. */
  httpSeconds: number;
  /** Tokens issued for the end-to-end event rate. */
  events: number;
  /** Resident TTL keys for the expiry lag. */
  expiryResident: number[];
  /** Short-lived tokens whose expiry lag is measured. */
  expiryTokens: number;
  /** Longest wait for Redis' own expiry, ms. */
  expiryCap: number;
  /** Tokens issued at once to measure memory (the worst case). */
  memoryTokens: number;
  /** Live tokens of the steady-state memory figure. */
  memorySteady: number;
}

/** One line of the table. */
export interface Row {
  label: string;
  ours: string;
  /** jwt-redis on node-redis v4, the client its README documents. */
  jwtRedis?: string;
  /** jwt-redis on ioredis through a 4-line adapter (the figure of earlier runs). */
  jwtRedisIoredis?: string;
  other?: string;
  vsJwtRedis?: string;
  vsJwtRedisIoredis?: string;
  vsOther?: string;
  note?: string;
  /** For the goal check; `met: undefined` when this run cannot judge it (say why in `text`). */
  goal?: { text: string; met: boolean | undefined };
}
