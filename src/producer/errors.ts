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

/**
 * The events reached the Redis primary, but fewer replicas than asked for
 * (REDIS_WAIT_REPLICAS, or the producer's `waitReplicas`) confirmed them in time, or
 * the connection changed between the write and the check: a failover could still
 * lose them. Send them again (same eventIds): they are charged once however often
 * they are sent.
 */
export class NotReplicatedError extends Error {
  override name = 'NotReplicatedError';
  constructor(
    readonly wanted: number,
    readonly confirmed: number,
    reason?: string,
  ) {
    super(
      reason ??
        `the events were written to Redis but confirmed by ${confirmed} of ${wanted} replica(s) in time; send them again (same eventIds)`,
    );
  }
}
