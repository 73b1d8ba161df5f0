/** One or more events failed validation; nothing of the call was enqueued. */
export class InvalidEventsError extends Error {
  override name = 'InvalidEventsError';
  constructor(readonly problems: { index: number; eventId?: string; errors: string[] }[]) {
    super(
      `${problems.length} invalid event(s): ${problems
        .slice(0, 5)
        .map((p) => `#${p.index}${p.eventId ? ` (${p.eventId})` : ''}: ${p.errors.join(', ')}`)
        .join('; ')}${problems.length > 5 ? '; …' : ''}`,
    );
  }
}

/** The producer was closed; it accepts no more events. */
export class ProducerClosedError extends Error {
  override name = 'ProducerClosedError';
  constructor() {
    super('the producer is closed');
  }
}
