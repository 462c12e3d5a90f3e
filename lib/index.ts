export { TokenStore, storeDefaults } from './store.js';
export type { TokenStoreOptions, IssueOptions, IssuedToken, TokenInfo, TokenClaims, KeyInput, VerifyKeyInput, RedisClient } from './store.js';
export { TokenLifecycle, lifecycleDefaults } from './lifecycle.js';
export type { TokenLifecycleOptions, TokenEvent, TokenEventType, RevokeReason, LifecycleEvents } from './lifecycle.js';
export { RedisTokenError, TokenError, StoreUnavailableError, ConfigError } from './errors.js';
export type { ErrorCode, TokenErrorCode } from './errors.js';
