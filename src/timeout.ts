// Bounds a promise in time without leaving an unhandled rejection behind.

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} took longer than ${ms} ms`)), ms);
  });
  p.catch(() => {}); // the loser of the race may still reject later
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
