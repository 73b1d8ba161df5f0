// Issued client tokens. expireAll() is O(1): it raises a generation floor instead of
// touching every token.
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
  issued = 0;

  constructor(private readonly ttlSec: number) {}

  issue(now = Date.now()): { token: string; expiresIn: number } {
    const token = `clt.${randomBytes(20).toString('hex')}`;
    this.tokens.set(token, { expiresAt: now + this.ttlSec * 1000, generation: this.generation });
    this.issued++;
    this.prune(now);
    return { token, expiresIn: this.ttlSec };
  }

  check(token: string | undefined, now = Date.now()): TokenCheck {
    if (!token) return 'wrong';
    const t = this.tokens.get(token);
    if (!t) return 'wrong';
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
