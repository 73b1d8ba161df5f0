// The package's public surface: the producer SDK, the event schema, the Douyin
// client and its errors. Everything else is internal.

export {
  DOUYIN_CODES,
  DouyinError,
  DouyinRequestError,
  ERROR_KINDS,
  type ErrorKind,
} from './douyin/errors.js';
export * from './douyin/index.js';
export {
  EVENT_LIMITS,
  type UsageEvent,
  type UsageEventInput,
  usageEventSchema,
  validateEvent,
} from './events/schema.js';
export { InvalidEventsError, ProducerClosedError } from './producer/errors.js';
export { createProducer, type Producer, type ProducerOptions } from './producer/producer.js';
