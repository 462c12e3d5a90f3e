// Strict `application/x-www-form-urlencoded` request bodies for the OAuth endpoints
// (RFC 6749 §3.1, RFC 7009, RFC 7662), on plain Node requests: any framework's glue
// can use it.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { InvalidRequestError } from './errors.js';

const FORM = 'application/x-www-form-urlencoded';

/** Makes the 400 for what is wrong with the body (the caller's realm goes in its challenge). */
export type Bad = (description: string, cause?: unknown) => InvalidRequestError;

/** A form body in UTF-8 with no content encoding, or a 400. */
export function checkFormHeaders(headers: IncomingHttpHeaders, bad: Bad): void {
  const type = headers['content-type'];
  const [media, ...attributes] = (typeof type === 'string' ? type : '').split(';').map((part) => part.trim().toLowerCase());
  if (media !== FORM) throw bad(`content type must be ${FORM}`);
  for (const attribute of attributes) {
    if (attribute.startsWith('charset=') && !/^charset="?utf-8"?$/.test(attribute)) throw bad('charset must be utf-8');
  }
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') throw bad('content encoding not supported');
}

/**
 * Reads a request body of at most `limit` bytes. Past the limit the rest is read and
 * dropped (the stream flows with no listener) and `tooLarge` is called, so the caller
 * can make the connection close instead of being reused.
 *
 * `req` is a Node request, or a stream standing for its body (Fastify hands its body
 * parsers one, after any `preParsing` hook): then `headers` gives its `Content-Length`.
 */
export function readBody(
  req: Readable & { headers?: IncomingHttpHeaders },
  limit: number,
  bad: Bad,
  tooLarge: () => void = () => {},
  headers: IncomingHttpHeaders | undefined = req.headers,
): Promise<Buffer> {
  const declared = Number(headers?.['content-length']);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onError);
    };
    const refuse = () => {
      cleanup();
      req.resume();
      tooLarge();
      reject(bad('request body too large'));
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      size += buffer.length;
      if (size > limit) {
        refuse();
        return;
      }
      chunks.push(buffer);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err?: unknown) => {
      cleanup();
      reject(bad('request body could not be read', err));
    };
    if (declared > limit) {
      refuse();
      return;
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onError);
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Strict `application/x-www-form-urlencoded`: UTF-8, valid percent-escapes, each
 * parameter at most once (RFC 6749 §3.1). URLSearchParams would accept `%zz` and bad
 * UTF-8 silently, and keep the last of repeated parameters.
 */
export function parseForm(raw: Buffer, bad: Bad): Map<string, string> {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch (cause) {
    throw bad('request body is not valid UTF-8', cause);
  }
  const params = new Map<string, string>();
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent((eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, ' '));
      value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1).replace(/\+/g, ' '));
    } catch (cause) {
      throw bad('request body is not valid form encoding', cause);
    }
    if (params.has(name)) throw bad('a parameter is repeated');
    params.set(name, value);
  }
  return params;
}
