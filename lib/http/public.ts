// What both framework subpaths (express, fastify) export from the framework-free core:
// bearer extraction, the authenticated request's shape, and the HTTP error classes.
export { extractBearer, MAX_AUTHORIZATION_LENGTH } from './bearer.js';
export {
  BEARER_AUTH_DEFAULTS,
  type AuthInfo,
  type BearerAuthOptions,
  type ClaimsPredicate,
  type RequireClaimsOptions,
  type TokenVerifier,
  type VerifiedToken,
} from './bearer-auth.js';
export {
  AuthHttpError,
  InsufficientScopeError,
  InvalidClientError,
  InvalidRequestError,
  InvalidTokenError,
  ServiceUnavailableError,
  UnauthorizedError,
  oauthErrorBody,
  type AuthHttpErrorInit,
  type AuthHttpErrorOptions,
  type BearerErrorCode,
  type OAuthErrorCode,
} from './errors.js';
