export { TokenStore, storeDefaults } from './tokens/store.js';
export type { TokenStoreOptions, IssueOptions, IssuedToken, TokenInfo, TokenClaims, KeyInput, VerifyKeyInput, RedisClient, TokenCacheOptions } from './tokens/store.js';
export { TokenLifecycle, lifecycleDefaults } from './events/lifecycle.js';
export type { TokenLifecycleOptions, StartOptions, TokenEvent, TokenEventType, RevokeReason, LifecycleEvents, GapEvent } from './events/lifecycle.js';
export type { Retention } from './redis/layout.js';
export { RedisTokenError, TokenError, StoreUnavailableError, ConfigError, DeadLetterError } from './errors.js';
export type { ErrorCode, TokenErrorCode } from './errors.js';
export { auditLog, auditRecord, type AuditLogOptions, type AuditLog, type AuditRecord, type AuditSink, type AuditStream, type AuditLogger, type AuditSource } from './audit/audit.js';
