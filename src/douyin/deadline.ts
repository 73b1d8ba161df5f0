// One AbortSignal per call that fires on the call's deadline or when the caller's
// signal fires. Built by hand rather than with AbortSignal.any so that a long-lived
// caller signal (a worker's shutdown signal) keeps no reference to finished calls.

export interface CallDeadline {
  signal: AbortSignal;
  /** Removes the timer and the listener on the caller's signal; call it when the call ends. */
  dispose(): void;
}

export function callDeadline(timeoutMs: number, caller?: AbortSignal): CallDeadline {
  const ac = new AbortController();
  const onCallerAbort = () => ac.abort(caller?.reason);
  const timer = setTimeout(
    () => ac.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')),
    timeoutMs,
  );
  if (caller?.aborted) onCallerAbort();
  else caller?.addEventListener('abort', onCallerAbort, { once: true });
  return {
    signal: ac.signal,
    dispose: () => {
      clearTimeout(timer);
      caller?.removeEventListener('abort', onCallerAbort);
    },
  };
}
