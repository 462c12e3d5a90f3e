// `redis-token-lifecycle tail`: prints lifecycle events as they happen, optionally
// replaying the journal from a point in the past first. The bin file only calls
// `main()`; everything here is testable in-process.
//
// tail is a reader: it never sweeps (the sweep trims the journal to a retention tail
// cannot know: a default lifecycle cut a store's 10001-entry journal to 6304) and never
// changes a setting. It needs no notify-keyspace-events letter: the scripts that write the
// journal publish on the prefix's wake channel. Only --group writes: its consumer group's state.
//
// --since hand-over: the live lifecycle is started first and its events are held
// back; then the journal is read with XRANGE from the --since point up to each
// bucket's end as it is after start() (which is at or past where the lifecycle
// began reading); then the held-back events are printed, skipping those the
// replay already printed (stream id <= the replay's end in their bucket). Every
// entry is in the replay, the live feed or both, and each is printed once.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RECORD_KEYS, sinkWriter, writeLine, type AuditStream } from '../audit/audit.js';
import { ConfigError } from '../errors.js';
import type { StreamEntry } from '../events/journal.js';
import { compareIds, streamInfo } from '../redis/streams.js';
import { KeySchema } from '../redis/keys.js';
import { checkLayout } from '../redis/layout.js';
import { TokenLifecycle, journalEvent, type GapEvent } from '../events/lifecycle.js';
import { Templates } from '../events/templates.js';
import type { TokenEvent } from '../types.js';

/** How often tail polls the journal (all it has when notifications are off). */
const POLL_MS = 250;

export interface CliIO {
  stdout: AuditStream & { isTTY?: boolean };
  stderr: { write(chunk: string): unknown };
  env: Record<string, string | undefined>;
  /** Ends `tail` like SIGINT does (for embedding and tests). */
  signal?: AbortSignal;
  /** Also end on SIGINT / SIGTERM of this process. @default true */
  handleSignals?: boolean;
}

export const USAGE = `Usage: redis-token-lifecycle tail --url redis://host:6379 [options]

Prints token lifecycle events (issued, expired, revoked) as the journal records them.
Ends cleanly on Ctrl-C (SIGINT) or SIGTERM. It only reads: it never sweeps or trims
the journal and never changes a setting (with --group it keeps its group's state).
An expiry is printed once a lifecycle of your application (or a store) journals it.

Options:
  --url <url>        Redis URL (default: $REDIS_URL)
  --prefix <prefix>  key prefix of the store (default: tok:)
  --buckets <n>      bucket count of the store (default: 16)
  --group <name>     read through a consumer group: each event goes to one member
  --consumer <name>  this member's name in the group (default: <host>-<pid>-<random>)
  --since <point>    first replay the journal from <point>, then continue live:
                       <bucket>:<stream id>  an event id: the events after it
                       <ms>-<seq>            a stream id, in every bucket (inclusive)
                       <ISO time> | <epoch ms>  events from that time on
                     (not with --group: a group resumes from its own position)
  --fields <a,b>     further claims to print (JSON output), e.g. iss,tenant
  --json             JSON lines even on a terminal (the default when stdout is not one)
  --configure        let tail merge the notify-keyspace-events letters it needs
                     (CONFIG SET); it needs none: the journal's writers wake it on
                     "<prefix>wake" (writers of older versions of this library do
                     not; their events come with the poll, every ${POLL_MS} ms)
  -h, --help         this text
  --version          the version of redis-token-lifecycle

JSON lines: {"time","type","reason"?,"jti","sub","client_id"?,"scope"?,"id",...fields}
Exit codes: 0 ended by a signal, 1 Redis or runtime error, 2 bad arguments.
`;

class UsageError extends Error {}

/** The package's version, from its package.json (lib/cli/cli.ts and dist/cli/cli.js both sit two levels below it). */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Where a replay starts in one bucket: `(id` exclusive or `id` inclusive, as XRANGE takes it. */
type Since = (bucket: number) => string;

/** Parses --since; throws UsageError. */
export function parseSince(value: string, buckets: number): Since {
  const event = /^(\d+):(\d+)(?:-(\d+))?$/.exec(value);
  if (event) {
    const bucket = Number(event[1]);
    if (bucket >= buckets) throw new UsageError(`--since ${value}: bucket ${bucket} does not exist (--buckets is ${buckets})`);
    const id = `${event[2]}-${event[3] ?? 0}`;
    // After that event in its bucket; in the others from the same millisecond on
    // (stream ids of different buckets are not ordered within a millisecond: rather twice than never).
    return (b) => (b === bucket ? `(${id}` : `${event[2]}-0`);
  }
  const stream = /^(\d{5,})-(\d+)$/.exec(value);
  if (stream) return () => `${stream[1]}-${stream[2]}`;
  if (/^\d+$/.test(value)) return () => `${value}-0`;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`--since ${value}: expected an event id (<bucket>:<stream id>), a stream id, an ISO time or epoch ms`);
  return () => `${ms}-0`;
}

/** `<bucket>:<stream id>` → [bucket, stream id], or undefined for other ids. */
function splitId(id: string): [number, string] | undefined {
  const colon = id.indexOf(':');
  if (colon < 0) return undefined;
  return [Number(id.slice(0, colon)), id.slice(colon + 1)];
}

const PAGE = 500;

/**
 * Reads every bucket's journal from `since` up to `end[b]` and yields the events
 * in time order (merged over buckets by stream id), one page per bucket at a time.
 */
async function* replay(redis: Redis, keys: KeySchema, since: Since, end: string[], stopped: () => boolean): AsyncGenerator<TokenEvent> {
  const pages: StreamEntry[][] = [];
  const from: (string | undefined)[] = [];
  const templates = new Templates(redis, keys);
  const lookup = (b: number, id: string) => templates.get(b, id);
  const fill = async (b: number) => {
    if (from[b] === undefined || pages[b]!.length > 0) return;
    const entries = (await redis.xrange(keys.log(b), from[b]!, end[b]!, 'COUNT', PAGE)) as StreamEntry[];
    await templates.load(b, entries);
    pages[b] = entries;
    from[b] = entries.length < PAGE ? undefined : `(${entries.at(-1)![0]}`;
  };
  for (let b = 0; b < keys.buckets; b++) {
    pages[b] = [];
    from[b] = end[b] === '0-0' ? undefined : since(b);
  }
  await Promise.all(pages.map((_, b) => fill(b)));
  while (!stopped()) {
    let next = -1;
    for (let b = 0; b < keys.buckets; b++) {
      const head = pages[b]![0];
      if (head && (next < 0 || compareIds(head[0], pages[next]![0]![0]) < 0)) next = b;
    }
    if (next < 0) return;
    const [id, fields] = pages[next]!.shift()!;
    yield journalEvent(next, id, fields, lookup);
    await fill(next);
  }
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** The one-line form for a terminal: time, type, reason, sub, jti. */
export function readable(event: TokenEvent): string {
  const time = Number.isFinite(event.at) ? new Date(event.at).toISOString() : '?';
  const id = event.sid === undefined ? event.jti : `sid ${event.sid}${event.jti ? ` jti ${event.jti}` : ''}`;
  return `${time}  ${pad(event.type, 7)}  ${pad(event.reason ?? '', 9)}  ${pad(event.sub, 16)}  ${id}\n`;
}

function option<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`--${err.option}: ${err.message.replace(/^Invalid option "[^"]+": /, '')}`);
    throw err;
  }
}

/**
 * The CLI. `argv` without node and script (`process.argv.slice(2)`).
 * Resolves with the exit code: 0 after SIGINT / SIGTERM (or `io.signal`), 1 when Redis
 * fails, 2 for bad arguments.
 */
export async function main(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv, io);
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof TypeError)) throw err;
    io.stderr.write(`redis-token-lifecycle: ${err.message}\nRun "redis-token-lifecycle --help" for usage.\n`);
    return 2;
  }
  if (args === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  if (args === 'version') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  return tail(args, io);
}

function parse(argv: string[], io: CliIO) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      url: { type: 'string' },
      prefix: { type: 'string' },
      buckets: { type: 'string' },
      group: { type: 'string' },
      consumer: { type: 'string' },
      since: { type: 'string' },
      fields: { type: 'string' },
      json: { type: 'boolean' },
      configure: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.help || positionals[0] === 'help') return 'help' as const;
  if (values.version) return 'version' as const;
  if (positionals.length === 0) throw new UsageError('missing command (tail)');
  if (positionals[0] !== 'tail') throw new UsageError(`unknown command "${positionals[0]}" (expected tail)`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  const url = values.url ?? io.env.REDIS_URL;
  if (!url) throw new UsageError('--url is required (or set REDIS_URL)');
  if (!/^rediss?:\/\//.test(url)) throw new UsageError(`--url ${url}: expected redis://… or rediss://…`);
  if (values.buckets !== undefined && !/^\d+$/.test(values.buckets)) throw new UsageError(`--buckets ${values.buckets}: expected an integer from 1 to 1024`);
  const buckets = values.buckets === undefined ? undefined : Number(values.buckets);
  const { keys } = option(() => checkLayout({ prefix: values.prefix, buckets }));
  if (values.consumer !== undefined && values.group === undefined) throw new UsageError('--consumer needs --group');
  if (values.since !== undefined && values.group !== undefined) throw new UsageError('--since cannot be combined with --group: a group resumes from its own position');
  const since = values.since === undefined ? undefined : parseSince(values.since, keys.buckets);
  const fields = values.fields === undefined ? [] : values.fields.split(',').map((f) => f.trim()).filter(Boolean);
  const taken = fields.find((f) => RECORD_KEYS.has(f));
  if (taken) throw new UsageError(`--fields: "${taken}" is already printed (name further claims only)`);
  return {
    url, keys, group: values.group, consumer: values.consumer, since, fields,
    json: values.json === true || io.stdout.isTTY !== true, configure: values.configure === true,
  };
}

async function tail(args: Exclude<ReturnType<typeof parse>, 'help' | 'version'>, io: CliIO): Promise<number> {
  const { keys } = args;
  // lazyConnect: nothing is sent before the options are known to be valid.
  const redis = new Redis(args.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  let lifecycle: TokenLifecycle;
  try {
    lifecycle = new TokenLifecycle({
      redis, prefix: keys.prefix, buckets: keys.buckets, group: args.group, consumer: args.consumer, stopTimeout: 2000,
      // A reader: no sweep (it trims the journal to a retention tail cannot know), no CONFIG SET unless asked.
      sweep: false, configure: args.configure, pollInterval: POLL_MS,
    });
  } catch (err) {
    redis.disconnect();
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`redis-token-lifecycle: --${err.option}: ${err.message.replace(/^Invalid option "[^"]+": /, '')}\nRun "redis-token-lifecycle --help" for usage.\n`);
    return 2;
  }

  let ending: () => void = () => {};
  const ended = new Promise<void>((resolve) => { ending = resolve; });
  let stopped = false;
  const stop = () => { stopped = true; ending(); };
  const handleSignals = io.handleSignals ?? true;
  if (handleSignals) {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  if (io.signal?.aborted) stop();
  io.signal?.addEventListener('abort', stop, { once: true });

  let lastRedisError = '';
  redis.on('error', (err: Error) => {
    if (err.message !== lastRedisError) io.stderr.write(`redis-token-lifecycle: redis: ${err.message}\n`);
    lastRedisError = err.message;
  });
  const write = args.json ? sinkWriter(io.stdout, args.fields) : (event: TokenEvent) => writeLine(io.stdout, readable(event));
  // Live events: held back while a --since replay runs, then printed unless the replay printed them.
  let held: TokenEvent[] | undefined = args.since ? [] : undefined;
  const printedUpTo: (string | undefined)[] = [];
  const print = async (event: TokenEvent) => {
    const at = splitId(event.id);
    const upTo = at && printedUpTo[at[0]];
    if (at && upTo && compareIds(at[1], upTo) <= 0) return;
    await write(event);
  };
  const live = async (event: TokenEvent) => {
    if (held) held.push(event);
    else await print(event);
  };
  for (const type of ['issued', 'expired', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'] as const) lifecycle.on(type, live);
  let reported: unknown;
  lifecycle.on('error', (err) => {
    reported = err;
    io.stderr.write(`redis-token-lifecycle: ${err.message}\n`);
  });
  lifecycle.on('warning', (message) => {
    const hint = !args.configure && message.startsWith('notify-keyspace-events') ? ' (--configure sets them)' : '';
    io.stderr.write(`redis-token-lifecycle: warning: ${message}${hint}\n`);
  });
  lifecycle.on('gap', (gap: GapEvent) => {
    io.stderr.write(`redis-token-lifecycle: gap: ${gap.reason === 'trimmed' ? `${gap.lost} event(s) trimmed from the journal between ${gap.after} and ${gap.before}` : 'events may have been missed while disconnected'}\n`);
  });

  let code = 0;
  try {
    await Promise.race([redis.connect(), ended]);
    if (!stopped) await Promise.race([lifecycle.start(), ended]);
    if (!stopped && args.since) {
      // Each bucket's end now: at or past where the lifecycle started reading.
      const infos = await Promise.all(Array.from({ length: keys.buckets }, (_, b) => streamInfo(redis, keys.log(b))));
      const end = infos.map((info) => String(info?.['last-generated-id'] ?? '0-0'));
      infos.forEach((info, b) => {
        const first = String(info?.['recorded-first-entry-id'] ?? '0-0');
        const trimmed = Number(info?.['entries-added'] ?? 0) > Number(info?.length ?? 0);
        const start = args.since!(b).replace('(', '');
        if (trimmed && compareIds(start, first) < 0) {
          io.stderr.write(`redis-token-lifecycle: warning: bucket ${b}'s journal now starts at ${b}:${first}; earlier events were trimmed\n`);
        }
      });
      for await (const event of replay(redis, keys, args.since, end, () => stopped)) await write(event);
      end.forEach((id, b) => { printedUpTo[b] = id; });
      // Hand over: what the lifecycle delivered meanwhile, without what the replay printed.
      while (held && held.length > 0 && !stopped) {
        const batch = held;
        held = [];
        for (const event of batch) await print(event);
      }
      held = undefined;
    }
    if (!stopped) io.stderr.write(`redis-token-lifecycle: live: prefix ${keys.prefix}, ${keys.buckets} buckets${args.group ? `, group ${args.group}` : ''} (Ctrl-C to end)\n`);
    await ended;
  } catch (err) {
    if (!stopped) {
      // A failed start() was reported on `error` already.
      if (err !== reported) io.stderr.write(`redis-token-lifecycle: ${err instanceof Error ? err.message : String(err)}\n`);
      code = 1;
    }
  } finally {
    if (handleSignals) {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    io.signal?.removeEventListener('abort', stop);
    await lifecycle.stop().catch(() => {});
    // QUIT lets Redis finish what it was sent; while Redis is unreachable it would wait for retries: just disconnect.
    if (redis.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([redis.quit().catch(() => {}), new Promise((resolve) => { timer = setTimeout(resolve, 1000); })]);
      clearTimeout(timer);
    }
    redis.disconnect();
  }
  return code;
}
