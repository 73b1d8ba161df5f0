// The package's public surface: the producer SDK, the event schema, the Douyin
// client and its errors. Everything else is internal.

export * from './douyin/index.js'; // the client, its errors (DouyinError, kinds, codes) and schemas
export {
  EVENT_LIMITS,
  type UsageEvent,
  type UsageEventInput,
  usageEventSchema,
  validateEvent,
} from './events/schema.js';
export { InvalidEventsError, ProducerClosedError } from './producer/errors.js';
export { createProducer, type Producer, type ProducerOptions } from './producer/producer.js';
