export { TokenStore, storeDefaults } from './tokens/store.js';
export type { TokenStoreOptions, IssueOptions, KeyInput, VerifyKeyInput, RedisClient, TokenCacheOptions } from './tokens/store.js';
export type { IssuedToken, TokenInfo, TokenClaims, TokenEvent, TokenEventType, RevokeReason } from './types.js';
export { TokenLifecycle, lifecycleDefaults } from './events/lifecycle.js';
export type { TokenLifecycleOptions, StartOptions, LifecycleEvents, GapEvent } from './events/lifecycle.js';
export type { Retention } from './redis/layout.js';
export { RedisTokenError, TokenError, StoreUnavailableError, ConfigError, DeadLetterError } from './errors.js';
export type { ErrorCode, TokenErrorCode } from './errors.js';
export { auditLog, auditRecord, type AuditLogOptions, type AuditLog, type AuditRecord, type AuditSink, type AuditStream, type AuditLogger, type AuditSource } from './audit/audit.js';
