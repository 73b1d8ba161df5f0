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

/**
 * Admission control refused these events (the user has not the uses left, or the
 * balance is unknown under METER_ADMISSION_UNKNOWN=reject); they were not enqueued.
 * The call's other events were.
 */
export class InsufficientUsesError extends Error {
  override name = 'InsufficientUsesError';
  constructor(readonly refused: { eventId: string; reason: string }[]) {
    super(
      `${refused.length} event(s) refused by admission control: ${refused
        .slice(0, 5)
        .map((r) => `${r.eventId}: ${r.reason}`)
        .join('; ')}${refused.length > 5 ? '; …' : ''}`,
    );
  }
}
