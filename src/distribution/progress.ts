// docker's JSON progress messages, shaped exactly as dockerd's stream formatter writes them so that
// the docker CLI draws its per-layer bars: key order status, progressDetail, progress, id, aux;
// zero counters omitted; the bar text as jsonmessage.JSONProgress.String() renders it at the
// daemon's (non-terminal) width.

export type ProgressSink = (msg: object) => void;

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** Go's %.4g: four significant digits, trailing zeros dropped. */
function fourSignificant(x: number): string {
  if (x === 0) return '0';
  let s = x.toPrecision(4);
  if (s.includes('e')) {
    const [mant, exp] = s.split('e');
    const m = mant.includes('.') ? mant.replace(/0+$/, '').replace(/\.$/, '') : mant;
    const e = Number(exp);
    return `${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s;
}

/** docker's units.HumanSize: decimal units, four significant digits ("2.217MB", "500B"). */
export function humanSize(bytes: number): string {
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < DECIMAL_UNITS.length - 1) {
    size /= 1000;
    i++;
  }
  return `${fourSignificant(size)}${DECIMAL_UNITS[i]}`;
}

/** The "progress" text of a message: "[==>      ]  1.2MB/3.4MB". */
export function progressText(current: number, total: number): string {
  if (current <= 0 && total <= 0) return '';
  if (total <= 0) return humanSize(current).padStart(8);
  const percentage = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2));
  const bar = `[${'='.repeat(percentage)}>${' '.repeat(Math.max(0, 50 - percentage))}] `;
  const numbers = current > total ? humanSize(current).padStart(8) : `${humanSize(current).padStart(8)}/${humanSize(total)}`;
  return bar + numbers;
}

/** Writes progress messages; remembers whether any was written (errors then go in-stream). */
export class ProgressWriter {
  private sent = false;

  constructor(private readonly sink: ProgressSink) {}

  get started(): boolean {
    return this.sent;
  }

  private send(msg: object): void {
    this.sent = true;
    this.sink(msg);
  }

  /** A plain status line: {"status": "...", "id": "..."} (id omitted when empty). */
  message(id: string | undefined, status: string): void {
    this.send(id ? { status, id } : { status });
  }

  /** A per-item status without counters: {"status","progressDetail":{},"id"}. */
  update(id: string, status: string): void {
    this.send({ status, progressDetail: {}, id });
  }

  /** A per-item status with byte counters and the drawn bar. */
  progress(id: string, status: string, current: number, total: number): void {
    const detail: { current?: number; total?: number } = {};
    if (current > 0) detail.current = current;
    if (total > 0) detail.total = total;
    const text = progressText(current, total);
    this.send(text ? { status, progressDetail: detail, progress: text, id } : { status, progressDetail: detail, id });
  }

  aux(aux: object): void {
    this.send({ progressDetail: {}, aux });
  }

  error(message: string): void {
    this.send({ errorDetail: { message }, error: message });
  }
}

/**
 * Rate-limits byte progress as docker's progress reader does: an update after every 1% (at most
 * 512 kB) of the total, no more often than every 100 ms, and always the last one.
 */
export class ProgressThrottle {
  private lastBytes = 0;
  private lastTime = 0;
  private readonly step: number;

  constructor(private readonly total: number, private readonly emit: (current: number) => void) {
    this.step = total > 0 ? Math.min(512 * 1024, Math.max(1, Math.floor(total / 100))) : 512 * 1024;
  }

  tick(current: number): void {
    const now = Date.now();
    if (current - this.lastBytes >= this.step && now - this.lastTime >= 100) {
      this.lastBytes = current;
      this.lastTime = now;
      this.emit(current);
    }
  }

  finish(current: number): void {
    if (current !== this.lastBytes || this.lastTime === 0) this.emit(current);
    this.lastBytes = current;
  }
}
