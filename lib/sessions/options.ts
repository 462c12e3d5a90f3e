// Session options, their defaults and checks.
import { ConfigError } from '../errors.js';
import { checkClaims } from '../tokens/options.js';
import type { SessionDevice, SessionOptions } from '../types.js';
import { DEVICE_FIELDS } from './session-info.js';

export const sessionDefaults = { idleTimeout: 1_209_600, lifetime: 2_592_000, refreshGrace: 2000, maxSessions: 100, slideOnVerify: false } as const;

export interface SessionSettings {
  idleMs: number;
  lifetimeMs: number;
  graceMs: number;
  maxSessions: number;
  /** 0: verify does not slide the idle deadline; else at most once per this many ms per session. */
  slideEveryMs: number;
}

function whole(option: string, value: unknown, min: number, max: number): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) throw new ConfigError(option, `a whole number from ${min} to ${max}`);
  return value as number;
}

function slide(value: unknown): boolean {
  if (value !== undefined && typeof value !== 'boolean') throw new ConfigError('sessions.slideOnVerify', 'a boolean');
  return value === true;
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
    slideEveryMs: slide(o.slideOnVerify) ? Math.max(1000, Math.floor(idle * 10)) : 0,
  };
}

const DEVICE_LIMITS = [512, 64, 128];

/**
 * The device as stored: a JSON array [userAgent, ip, label] (trailing absent ones left
 * out, others null), '' for none; strings only, each bounded. An array, not an object:
 * every session and its `session_started` entry hold it, and the names cost 24 bytes.
 */
export function deviceJson(device: unknown): string {
  if (device === undefined) return '';
  if (typeof device !== 'object' || device === null || Array.isArray(device)) throw new ConfigError('device', 'an object { userAgent?, ip?, label? }');
  const out: (string | null)[] = [null, null, null];
  for (const [name, value] of Object.entries(device)) {
    const at = DEVICE_FIELDS.indexOf(name as keyof SessionDevice);
    if (at < 0) throw new ConfigError(`device.${name}`, 'one of userAgent, ip, label');
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new ConfigError(`device.${name}`, 'a string');
    checkClaims(`device.${name}`, value);
    out[at] = value.slice(0, DEVICE_LIMITS[at]);
  }
  while (out.length > 0 && out.at(-1) === null) out.pop();
  return out.length === 0 ? '' : JSON.stringify(out);
}
