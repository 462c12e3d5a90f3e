// Session options, their defaults and checks.
import { ConfigError } from '../errors.js';
import { checkClaims } from '../tokens/options.js';
import type { SessionDevice, SessionOptions } from '../types.js';

export const sessionDefaults = { idleTimeout: 1_209_600, lifetime: 2_592_000, refreshGrace: 2000, maxSessions: 100 } as const;

export interface SessionSettings {
  idleMs: number;
  lifetimeMs: number;
  graceMs: number;
  maxSessions: number;
}

function whole(option: string, value: unknown, min: number, max: number): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) throw new ConfigError(option, `a whole number from ${min} to ${max}`);
  return value as number;
}

export function sessionSettings(options: unknown): SessionSettings {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) throw new ConfigError('sessions', 'an object');
  const o = options as SessionOptions;
  const lifetime = whole('sessions.lifetime', o.lifetime ?? sessionDefaults.lifetime, 1, 10 * 365 * 86400);
  const idle = whole('sessions.idleTimeout', o.idleTimeout ?? Math.min(sessionDefaults.idleTimeout, lifetime), 1, lifetime);
  return {
    idleMs: idle * 1000,
    lifetimeMs: lifetime * 1000,
    graceMs: whole('sessions.refreshGrace', o.refreshGrace ?? sessionDefaults.refreshGrace, 1, 10_000),
    maxSessions: whole('sessions.maxSessions', o.maxSessions ?? sessionDefaults.maxSessions, 1, 10_000),
  };
}

const DEVICE_LIMITS: Record<keyof SessionDevice, number> = { userAgent: 512, ip: 64, label: 128 };

/** The device as stored (JSON), '' for none; strings only, each bounded. */
export function deviceJson(device: unknown): string {
  if (device === undefined) return '';
  if (typeof device !== 'object' || device === null || Array.isArray(device)) throw new ConfigError('device', 'an object { userAgent?, ip?, label? }');
  const out: SessionDevice = {};
  for (const [name, value] of Object.entries(device)) {
    const max = DEVICE_LIMITS[name as keyof SessionDevice];
    if (max === undefined) throw new ConfigError(`device.${name}`, 'one of userAgent, ip, label');
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new ConfigError(`device.${name}`, 'a string');
    checkClaims(`device.${name}`, value);
    out[name as keyof SessionDevice] = value.slice(0, max);
  }
  return Object.keys(out).length === 0 ? '' : JSON.stringify(out);
}
