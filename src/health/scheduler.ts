// One timer for any number of deadlines: entries sit in a binary min-heap by due time and a single
// Node timer is armed for the earliest. Rescheduling or cancelling a key leaves its old heap entry
// behind as stale (recognised by its sequence number and skipped when it surfaces), so both are
// O(log n) without searching the heap.

interface Slot {
  due: number;
  seq: number;
  key: string;
}

export class DeadlineQueue {
  private readonly heap: Slot[] = [];
  /** The live entry per key: its sequence number and callback. */
  private readonly live = new Map<string, { seq: number; fn: () => void }>();
  private seq = 0;
  private timer?: NodeJS.Timeout;
  private armedFor = Infinity;
  private closed = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** Runs fn at (or soon after) atMs; replaces what key had scheduled. */
  schedule(key: string, atMs: number, fn: () => void): void {
    if (this.closed) return;
    const seq = ++this.seq;
    this.live.set(key, { seq, fn });
    this.push({ due: atMs, seq, key });
    if (atMs < this.armedFor) this.arm();
  }

  cancel(key: string): void {
    this.live.delete(key);
    // The heap entry goes stale; once nothing is live the timer is not needed either.
    if (this.live.size === 0) this.disarm();
  }

  has(key: string): boolean {
    return this.live.has(key);
  }

  /** Entries scheduled. */
  get size(): number {
    return this.live.size;
  }

  close(): void {
    this.closed = true;
    this.live.clear();
    this.heap.length = 0;
    this.disarm();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    if (this.live.size === 0) this.heap.length = 0;
  }

  private arm(): void {
    this.dropStale();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    const top = this.heap[0];
    if (!top) return;
    this.armedFor = top.due;
    this.timer = setTimeout(() => this.fire(), Math.max(0, top.due - this.now()));
    // The queue must not keep a process alive by itself (the daemon has its listeners for that).
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.now();
    const due: (() => void)[] = [];
    for (;;) {
      this.dropStale();
      const top = this.heap[0];
      if (!top || top.due > now) break;
      this.pop();
      const entry = this.live.get(top.key)!;
      this.live.delete(top.key);
      due.push(entry.fn);
    }
    for (const fn of due) {
      try {
        fn();
      } catch {
        // A callback's failure is its own; the others still run.
      }
    }
    if (!this.closed && !this.timer) this.arm();
  }

  private dropStale(): void {
    while (this.heap.length > 0 && this.live.get(this.heap[0].key)?.seq !== this.heap[0].seq) this.pop();
  }

  private push(s: Slot): void {
    const h = this.heap;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].due <= s.due) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = s;
  }

  private pop(): Slot | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || !last) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r].due < h[l].due ? r : l;
      if (h[c].due >= last.due) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = last;
    return top;
  }
}
