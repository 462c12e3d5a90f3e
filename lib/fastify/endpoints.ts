// The standard endpoints as a Fastify plugin: RFC 7662 introspection, RFC 7009
// revocation, the JWKS and the RFC 6749 token endpoint (refresh token grant), each at a
// path of the app's choosing (or left out).
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ConfigError } from '../errors.js';
import {
  callerOf,
  checkStore,
  endpointConfig,
  ENDPOINT_DEFAULTS,
  formObject,
  introspect,
  jwksMaxAge,
  readForm,
  revokeFor,
  tokenParam,
  type Caller,
  type JwksSource,
  type TokenIntrospector,
  type TokenRevoker,
} from '../http/endpoints.js';
import { InvalidRequestError } from '../http/errors.js';
import { checkFormHeaders } from '../http/form.js';
import type { AuthorizedClient } from '../http/oauth.js';
import { errorAnswer, refreshGrant, tokenClientOf, TOKEN_HEADERS, type TokenRefresher } from '../http/token-endpoint.js';

export type { AuthorizedClient, IntrospectionResponse } from '../http/oauth.js';
export type { RefreshedTokens, TokenEndpointResponse, TokenRefresher } from '../http/token-endpoint.js';

/**
 * What {@link tokenEndpoints} needs of the store: a `TokenStore` fits. `refresh` is
 * needed only when the token endpoint is served (`paths.token`).
 */
export type EndpointStore = TokenIntrospector & TokenRevoker & JwksSource & Partial<TokenRefresher>;

/**
 * Authenticates the caller of introspection, revocation or the token endpoint (RFC 7662
 * §2.1, RFC 7009 §2.1 and RFC 6749 §2.3 require it). It runs after the body is parsed:
 * `request.body` holds the form parameters (`client_id`/`client_secret` for
 * `client_secret_post`) as a null-prototype object.
 *
 * - `{ clientId }` (a non-empty string): the authenticated client. Revocation then
 *   revokes only tokens whose `client_id` claim is that client's.
 * - `true`: allowed without naming a client; for introspection only. Revocation and the
 *   token endpoint refuse it as a server misconfiguration (a `ConfigError`, to
 *   Fastify's error handler: 500).
 * - Anything else: 401; with `Authorization: Basic …` in the request, RFC 6749 §5.2
 *   `invalid_client` and `WWW-Authenticate: Basic realm="…"`, otherwise a `Bearer`
 *   challenge. The token endpoint always answers `invalid_client`, with a Basic
 *   challenge unless the request used another scheme.
 *
 * Throwing an `AuthHttpError` answers with it; a `StoreUnavailableError`, 503; anything
 * else goes to the app's error handler.
 */
export type AuthorizeCaller = (request: FastifyRequest) => boolean | AuthorizedClient | Promise<boolean | AuthorizedClient>;

/** Options of {@link tokenEndpoints}. */
export interface TokenEndpointsOptions {
  /** Usually the `TokenStore`. Only the methods of the endpoints served are needed. */
  store: EndpointStore;
  /**
   * Who may call the form endpoints: see {@link AuthorizeCaller}. Required; `false`
   * allows unauthenticated calls (demos, endpoints protected by other means, or public
   * clients of the token endpoint, whose `client_id` parameter is then checked).
   */
  authorize: AuthorizeCaller | false;
  /**
   * The realm named in the `WWW-Authenticate` challenge of a 401.
   * @default 'api'
   */
  realm?: string;
  /**
   * Largest request body read, in bytes; a larger one is answered 400 `invalid_request`.
   * @default 65536
   */
  limit?: number;
  /**
   * Where each endpoint is served; `false` leaves it out. Paths are joined to the
   * `prefix` the plugin is registered with, as for any Fastify route. The token endpoint
   * is served only when `token` names its path (conventionally `'/oauth/token'`): an app
   * that registered the plugin before it existed does not get a new grant endpoint.
   * @default { introspection: '/oauth/introspect', revocation: '/oauth/revoke', jwks: '/.well-known/jwks.json', token: false }
   */
  paths?: {
    introspection?: string | false;
    revocation?: string | false;
    jwks?: string | false;
    /** The RFC 6749 token endpoint (refresh token grant). @default false */
    token?: string | false;
  };
  /**
   * `max-age` of the JWKS's `Cache-Control: public, max-age=…`, in seconds.
   * @default 300
   */
  jwksMaxAge?: number;
}

/** Defaults of {@link TokenEndpointsOptions}. */
export const TOKEN_ENDPOINTS_DEFAULTS = {
  /** @default 'api' */
  realm: ENDPOINT_DEFAULTS.realm,
  /** @default 65536 */
  limit: ENDPOINT_DEFAULTS.limit,
  paths: {
    /** @default '/oauth/introspect' */
    introspection: '/oauth/introspect',
    /** @default '/oauth/revoke' */
    revocation: '/oauth/revoke',
    /** @default '/.well-known/jwks.json' */
    jwks: '/.well-known/jwks.json',
  },
  /** @default 300 */
  jwksMaxAge: 300,
} as const;

// Every method, so that the endpoints answer 405 with `Allow` themselves rather than
// leave it to Fastify's 404.
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

const FORM = 'application/x-www-form-urlencoded';

// RFC 6749 §5.1: answers about tokens must not be cached, errors included.
const NO_STORE: Readonly<Record<string, string>> = { 'Cache-Control': 'no-store' };

function path(value: unknown, name: string, fallback: string | false): string | false {
  const chosen = value ?? fallback;
  if (chosen !== false && (typeof chosen !== 'string' || !chosen.startsWith('/'))) {
    throw new ConfigError(`paths.${name}`, 'a path starting with "/", or false to leave the endpoint out');
  }
  return chosen;
}

const plugin: FastifyPluginAsync<TokenEndpointsOptions> = async (fastify, options) => {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'an object');
  const paths = options.paths ?? {};
  if (typeof paths !== 'object' || paths === null) throw new ConfigError('paths', 'an object');
  const defaults = TOKEN_ENDPOINTS_DEFAULTS.paths;
  const at = {
    introspection: path(paths.introspection, 'introspection', defaults.introspection),
    revocation: path(paths.revocation, 'revocation', defaults.revocation),
    jwks: path(paths.jwks, 'jwks', defaults.jwks),
    token: path(paths.token, 'token', false),
  };
  const { store } = options;
  if (at.introspection !== false) checkStore(store, ['verify'], 'an object with a verify(token) method');
  if (at.revocation !== false) checkStore(store, ['verify', 'revoke'], 'an object with verify(token) and revoke(token) methods');
  if (at.jwks !== false) checkStore(store, ['publicJwks'], 'an object with a publicJwks() method');
  if (at.token !== false) checkStore(store, ['refresh'], 'an object with a refresh(refreshToken, options) method');
  const config = endpointConfig<AuthorizeCaller>(options);
  const maxAge = jwksMaxAge(options.jwksMaxAge);
  const { realm, authorize } = config;

  // On the app itself (fastify-plugin lifts the encapsulation), so that every request
  // object has `auth` from the start and bearerAuth does not change its shape.
  if (!fastify.hasRequestDecorator('auth')) fastify.decorateRequest('auth', undefined);

  // fastify-plugin lifts the encapsulation, and with it the `prefix` the plugin was
  // registered with: the scopes below take it over.
  const prefix = (options as { prefix?: string }).prefix;

  // The form endpoints in a scope of their own: its body parser and error handler stay
  // out of the app's routes.
  await fastify.register(async (scope) => {
    const forms = new WeakMap<FastifyRequest, Map<string, string>>();
    scope.removeAllContentTypeParsers();
    // One parser for every content type, so that a JSON or multipart body is our 400
    // rather than Fastify's 415; strict (form.ts): repeated parameter, bad encoding, a
    // charset other than UTF-8, a body over `limit` → 400. Only POST bodies are read:
    // another method gets 405 whatever it sent.
    scope.addContentTypeParser('*', (request, payload, done) => {
      if (request.method !== 'POST') {
        done(null);
        return;
      }
      readForm(payload, request.headers, config).then((params) => {
        forms.set(request, params);
        done(null, formObject(params));
      }, (err: Error) => done(err));
    });
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const answer = errorAnswer(error) ?? errorAnswer(mediaTypeError(error, realm));
      // Anything else is a bug (or a ConfigError): the app's error handler has it.
      if (answer === undefined) throw error;
      // RFC 6749 §5.1: answers about tokens must not be cached, errors included (also
      // those of the body parser, before the route's handler set them).
      const { answerHeaders } = request.routeOptions.config as { answerHeaders?: Readonly<Record<string, string>> };
      reply.code(answer.status).headers(answer.headers).headers(answerHeaders ?? NO_STORE).send(answer.body);
    });

    type Action = (params: ReadonlyMap<string, string>, reply: FastifyReply, caller: Caller) => Promise<void>;
    const endpoint = (action: Action, headers: Readonly<Record<string, string>> = NO_STORE, who = callerOf) =>
      async (request: FastifyRequest, reply: FastifyReply) => {
        if (request.method !== 'POST') {
          return reply.code(405).header('Allow', 'POST').send({ error: 'method_not_allowed' });
        }
        reply.headers(headers);
        // No body parsed: a POST with neither a content type nor a body.
        const params = forms.get(request) ?? noForm(request, realm);
        const caller = await who(authorize && (() => authorize(request)), request.headers.authorization, realm);
        await action(params, reply, caller);
        return reply;
      };

    if (at.introspection !== false) {
      scope.route({
        method: METHODS, url: at.introspection,
        handler: endpoint(async (params, reply) => {
          reply.code(200).send(await introspect(store, tokenParam(params, realm), realm));
        }),
      });
    }
    if (at.revocation !== false) {
      scope.route({
        method: METHODS, url: at.revocation,
        handler: endpoint(async (params, reply, caller) => {
          await revokeFor(store, tokenParam(params, realm), caller, realm);
          reply.code(200).send();
        }),
      });
    }
    if (at.token !== false) {
      const refresher = store as TokenRefresher;
      scope.route({
        method: METHODS, url: at.token,
        config: { answerHeaders: TOKEN_HEADERS },
        handler: endpoint(async (params, reply, caller) => {
          reply.code(200).send(await refreshGrant(refresher, params, caller, realm));
        }, TOKEN_HEADERS, tokenClientOf),
      });
    }
  }, { prefix });

  if (at.jwks !== false) {
    const url = at.jwks;
    await fastify.register(async (scope) => {
      // Bodies are not read here: a POST gets its 405 whatever it carries.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
      scope.route({
        method: METHODS, url,
        handler: async (request, reply) => {
          if (request.method !== 'GET' && request.method !== 'HEAD') {
            return reply.code(405).header('Allow', 'GET, HEAD').send({ error: 'method_not_allowed' });
          }
          const set = await store.publicJwks();
          return reply.code(200).header('Cache-Control', `public, max-age=${maxAge}`).send({ keys: set.keys });
        },
      });
    }, { prefix });
  }
};

/** The 400 for a form endpoint's request without a body: it has no content type either. */
function noForm(request: FastifyRequest, realm: string): never {
  checkFormHeaders(request.headers, (description) => new InvalidRequestError(description, { realm }));
  throw new InvalidRequestError(`content type must be ${FORM}`, { realm });
}

/** Fastify's own content-type errors (a `Content-Type` it cannot parse) as our 400. */
function mediaTypeError(error: FastifyError, realm: string): InvalidRequestError | undefined {
  if (typeof error?.code !== 'string' || !error.code.startsWith('FST_ERR_CTP_')) return undefined;
  return new InvalidRequestError(error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? `content type must be ${FORM}` : 'request body could not be read', { realm });
}

/**
 * Fastify plugin with the standard endpoints of a `TokenStore`:
 *
 * - introspection (RFC 7662), `POST /oauth/introspect`, form body `token=…`;
 * - revocation (RFC 7009), `POST /oauth/revoke`, form body `token=…`: only a token
 *   issued to the calling client is revoked (§2.1), another client's is refused with 400
 *   `invalid_request`;
 * - the JWKS, `GET /.well-known/jwks.json`, `Cache-Control: public, max-age=300`;
 * - when `paths.token` names its path, the RFC 6749 token endpoint for the refresh token
 *   grant (§6), form body `grant_type=refresh_token&refresh_token=…` (and `scope`):
 *   200 with a new access token and a new refresh token (rotation), 400
 *   `invalid_grant` for a refresh token refused (used, expired, revoked, another
 *   client's, not one), `invalid_scope`, `unsupported_grant_type`, 401
 *   `invalid_client`. Revocation also takes refresh tokens, and ends their session.
 *
 * They answer as the Express handlers do (docs/express.md): `{ active: false }` for any
 * token that is not live, 400 `invalid_request` for a malformed request (not a strict
 * form body, `token` missing), 401 for a caller `authorize` refuses, 503 with
 * `Retry-After` when Redis is unreachable, 405 with `Allow` for another method, and
 * `Cache-Control: no-store` on every answer about a token. The form endpoints parse
 * their own body, in an encapsulated scope: the app's body parsers are not involved, and
 * the plugin's parser does not leak into the app.
 *
 * Registered with `fastify-plugin`, so it also declares `request.auth` on the app (for
 * `bearerAuth`).
 *
 * @throws {ConfigError} (when the app loads it) `authorize` is neither a function nor
 *   `false`; the store lacks a method an endpoint served needs (`refresh` for the token
 *   endpoint); bad `realm`, `limit`, `paths` or `jwksMaxAge`.
 *
 * @example
 * ```ts
 * await app.register(tokenEndpoints, { store, authorize: authenticateClient, paths: { token: '/oauth/token' } });
 * await app.register(tokenEndpoints, {
 *   store, authorize: false, paths: { introspection: '/introspect', revocation: false, jwks: false },
 * });
 * ```
 */
export const tokenEndpoints = fp(plugin, { fastify: '5.x', name: 'redis-token-lifecycle-endpoints' });

