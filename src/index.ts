// The package's public surface: the producer SDK (and its balance client), the
// event schema, the Douyin client and its errors. Everything else is internal.

export * from './douyin/index.js'; // the client, its errors (DouyinError, kinds, codes) and schemas
export {
  EVENT_LIMITS,
  type UsageEvent,
  type UsageEventInput,
  usageEventSchema,
  validateEvent,
} from './events/schema.js';
export {
  type BalanceClient,
  type BalanceClientOptions,
  BalanceRequestError,
  createBalanceClient,
  type UserBalance,
} from './producer/balance-client.js';
export { InsufficientUsesError, InvalidEventsError, ProducerClosedError } from './producer/errors.js';
export { createProducer, type Producer, type ProducerOptions } from './producer/producer.js';
