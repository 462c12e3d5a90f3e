export { TokenStore, storeDefaults } from './store.js';
export type { TokenStoreOptions, IssueOptions, IssuedToken, TokenInfo, TokenClaims, KeyInput, VerifyKeyInput, RedisClient, TokenCacheOptions } from './store.js';
export { TokenLifecycle, lifecycleDefaults } from './lifecycle.js';
export type { TokenLifecycleOptions, StartOptions, TokenEvent, TokenEventType, RevokeReason, LifecycleEvents, GapEvent } from './lifecycle.js';
export type { Retention } from './layout.js';
export { RedisTokenError, TokenError, StoreUnavailableError, ConfigError, DeadLetterError } from './errors.js';
export type { ErrorCode, TokenErrorCode } from './errors.js';
export { auditLog, auditRecord, type AuditLogOptions, type AuditLog, type AuditRecord, type AuditSink, type AuditStream, type AuditLogger, type AuditSource } from './audit.js';
