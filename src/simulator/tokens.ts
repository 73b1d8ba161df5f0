// Issued client tokens, rotated as on the platform: a new token leaves the previous
// one valid for at most the overlap, and every older one dies at once (at most the
// latest two are valid). expireAll() is O(1): it raises a generation floor instead
// of touching every token.
import { randomBytes } from 'node:crypto';

export type TokenCheck = 'ok' | 'wrong' | 'expired';

interface Issued {
  expiresAt: number;
  generation: number;
}

export class TokenStore {
  private tokens = new Map<string, Issued>();
  private generation = 0;
  private validFrom = 0;
  /** The latest token and the one before it: the only ones that can still be valid. */
  private latest: Issued | undefined;
  private previous: Issued | undefined;
  issued = 0;

  /** `overlapSec()` is read at each issue, so a running simulator can change it. */
  constructor(
    private readonly ttlSec: number,
    private readonly overlapSec: () => number,
  ) {}

  issue(now = Date.now()): { token: string; expiresIn: number } {
    const token = `clt.${randomBytes(20).toString('hex')}`;
    // The one before last dies now; the last one lives for the overlap at most.
    if (this.previous) this.previous.expiresAt = Math.min(this.previous.expiresAt, now);
    if (this.latest) this.latest.expiresAt = Math.min(this.latest.expiresAt, now + this.overlapSec() * 1000);
    const entry = { expiresAt: now + this.ttlSec * 1000, generation: this.generation };
    this.previous = this.latest;
    this.latest = entry;
    this.tokens.set(token, entry);
    this.issued++;
    this.prune(now);
    return { token, expiresIn: this.ttlSec };
  }

  check(token: string | undefined, now = Date.now()): TokenCheck {
    if (!token) return 'wrong';
    const t = this.tokens.get(token);
    if (!t) return 'wrong';
    // A superseded token answers "expired" too: the platform's code for it is not public.
    if (t.generation < this.validFrom || now >= t.expiresAt) return 'expired';
    return 'ok';
  }

  expireAll(): void {
    this.generation++;
    this.validFrom = this.generation;
  }

  resetCounter(): void {
    this.issued = 0;
  }

  // Tokens are issued rarely; dropping the oldest long-dead ones keeps the map small.
  // Expired tokens stay known for a day so they still answer "expired", not "wrong".
  private prune(now: number): void {
    if (this.tokens.size < 10_000) return;
    for (const [token, t] of this.tokens) {
      if (t.expiresAt + 86_400_000 > now) break;
      this.tokens.delete(token);
    }
  }
}
