// Timestamps within the last `spanMs`, in a growable ring buffer: adding one and
// evicting the expired ones is amortised O(1) per call.
export class SlidingWindow {
  private buf = new Float64Array(1024);
  private head = 0;
  private size = 0;

  constructor(private readonly spanMs = 1000) {}

  /** Entries within (now - span, now]. */
  count(now: number): number {
    const edge = now - this.spanMs;
    while (this.size > 0 && this.buf[this.head]! <= edge) {
      this.head = (this.head + 1) % this.buf.length;
      this.size--;
    }
    return this.size;
  }

  /** Records `now` and returns the count within the window including it. */
  add(now: number): number {
    this.count(now);
    if (this.size === this.buf.length) this.grow();
    this.buf[(this.head + this.size) % this.buf.length] = now;
    this.size++;
    return this.size;
  }

  clear(): void {
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const next = new Float64Array(this.buf.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.buf[(this.head + i) % this.buf.length]!;
    this.buf = next;
    this.head = 0;
  }
}
