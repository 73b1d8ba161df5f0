// The Douyin service-market client and everything public around it.
export {
  type CallOptions,
  createDouyinClientFromConfig,
  DOUYIN_PATHS,
  type DouyinCallEvent,
  type DouyinCallResult,
  type DouyinClientOptions,
  DouyinMarketClient,
  type DouyinMethod,
  douyinRateLimiter,
} from './client.js';
export {
  type EnvelopeResult,
  type HttpAnswer,
  type Interpreted,
  interpretAnswer,
  type ParsedEnvelope,
  parseEnvelope,
} from './envelope.js';
export * from './errors.js';
export { RateLimiter, type RateLimiterOptions, type Slot } from './rate-limiter.js';
export * from './schemas.js';
export {
  type CachedToken,
  parseCached,
  TokenProvider,
  type TokenProviderOptions,
  type TokenStatus,
} from './token.js';
export { CLIENT_TOKEN_PATH, type FetchedToken, fetchClientToken } from './token-endpoint.js';
export { HttpTransport, type TransportOptions, type TransportRequest, transportError } from './transport.js';
