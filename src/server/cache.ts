// A tiny time-to-live cache: every open dashboard polls every ~2 s, and several
// operators looking at once should cost the database one query, not one each.

export class TtlCache<T> {
  private readonly entries = new Map<string, { at: number; value: Promise<T> }>();

  constructor(private readonly ttlMs: number) {}

  get(key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const value = load();
    this.entries.set(key, { at: now, value });
    // A failure is not cached: the next request tries again.
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }
}

/**
 * One value shared by every caller: at most one load runs at a time, and its outcome
 * (a rejection too) is kept for ttlMs after it settled. For probes: fifty scrapes at
 * once, or a load balancer probing every 100 ms, still cost one check per ttlMs, and
 * a failing check is not retried by every probe either.
 */
export class SharedResult<T> {
  private current: Promise<T> | undefined;
  private settledAt: number | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly load: () => Promise<T>,
  ) {}

  get(): Promise<T> {
    const fresh = this.settledAt === undefined || Date.now() - this.settledAt < this.ttlMs;
    if (this.current && fresh) return this.current;
    const p = this.load();
    this.current = p;
    this.settledAt = undefined;
    const settled = () => {
      if (this.current === p) this.settledAt = Date.now();
    };
    p.then(settled, settled);
    return p;
  }
}
