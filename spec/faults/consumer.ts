// A consumer-group member in a process of its own, for fault case 3 (it gets
// SIGKILLed mid-handler). Prints one JSON line per handler completion to stdout:
//   {"kind":"ready"}                       started (subscribed, caught up)
//   {"kind":"handled","id",...}            a handler completed
//   {"kind":"start","id",...}              the marked event's handler started (and never ends)
// Options from the environment: REDIS_PORT, PREFIX, GROUP, CONSUMER, CLAIM_AFTER_MS, SLOW_SUB,
// SLOW_TYPE (the event type of SLOW_SUB whose handler never ends; default issued).
import { writeSync } from 'node:fs';
import { Redis } from 'ioredis';
import { TokenLifecycle } from '../../lib/index.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`consumer: ${name} is not set`);
  return value;
};

/** Synchronous, so every line printed is out before a SIGKILL can land. */
function out(line: Record<string, unknown>): void {
  writeSync(1, `${JSON.stringify(line)}\n`);
}

const redis = new Redis(Number(env('REDIS_PORT')), '127.0.0.1');
redis.on('error', () => {});
const lifecycle = new TokenLifecycle({
  redis,
  prefix: env('PREFIX'),
  group: env('GROUP'),
  consumer: env('CONSUMER'),
  claimAfterMs: Number(env('CLAIM_AFTER_MS')),
  pollInterval: 500,
});
const slowSub = env('SLOW_SUB');
const slowType = process.env.SLOW_TYPE ?? 'issued';
for (const type of ['issued', 'expired', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'] as const) {
  lifecycle.on(type, async (e) => {
    if (e.type === slowType && e.sub === slowSub) {
      out({ kind: 'start', id: e.id, type: e.type, jti: e.jti });
      await new Promise(() => {}); // a handler that never finishes: the process is killed in it
    }
    await new Promise((r) => setImmediate(r));
    out({ kind: 'handled', id: e.id, type: e.type, jti: e.jti, reason: e.reason });
  });
}
lifecycle.on('error', (err) => out({ kind: 'error', message: err.message }));
await lifecycle.start();
out({ kind: 'ready' });
