// Lua scripts: one file per atomic operation in ./scripts, loaded once, run with
// EVALSHA and sent as EVAL only when Redis answers NOSCRIPT (then it did not run,
// so sending it again is safe). Key count is in the file name (list-1.lua; issue-n.lua
// takes any).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;

const includePattern = /^-- @include (\w[\w-]*)$/gm;

function read(name: string): string {
  return readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');
}

/** A script's text with every `-- @include x` replaced by include/x.lua, each spliced in once. */
function expand(text: string, done = new Set<string>()): string {
  return text.replace(includePattern, (_, include: string) => {
    if (done.has(include)) return '';
    done.add(include);
    return expand(read(`include/${include}`), done);
  });
}

export class Script {
  readonly lua: string;
  readonly sha: string;
  readonly numberOfKeys: number;

  constructor(readonly name: string) {
    const keys = /-(\d+|n)$/.exec(name);
    if (!keys) throw new Error(`script ${name}: the file name must end with its key count, or n for any`);
    this.numberOfKeys = keys[1] === 'n' ? -1 : Number(keys[1]);
    this.lua = expand(read(name));
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }

  async run(redis: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    if (this.numberOfKeys >= 0 && keys.length !== this.numberOfKeys) throw new Error(`script ${this.name} takes ${this.numberOfKeys} keys`);
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

/** Every script, read and hashed once per process. */
export const scripts = {
  issue: new Script('issue-n'),
  revoke: new Script('revoke-n'),
  revokeAll: new Script('revoke-all-4'),
  list: new Script('list-1'),
  readClaims: new Script('read-claims-1'),
  reap: new Script('reap-1'),
  sweep: new Script('sweep-2'),
  recheck: new Script('recheck-2'),
  groupClaim: new Script('group-claim-2'),
  groupTake: new Script('group-take-1'),
  sessionStart: new Script('session-start-n'),
  sessionRefresh: new Script('session-refresh-n'),
  sessionEnd: new Script('session-end-2'),
  sessionsList: new Script('sessions-list-1'),
  sessionTouch: new Script('session-touch-1'),
};
