// A small levelled logger writing logfmt-style lines to stderr, as dockerd does
// (time="..." level=info msg="...").

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, fatal: 50 };

export const LOG_LEVELS = Object.keys(ORDER) as LogLevel[];

export class Logger {
  constructor(
    public level: LogLevel = 'info',
    private readonly out: (line: string) => void = (l) => process.stderr.write(l),
  ) {}

  private log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[this.level]) return;
    let line = `time="${new Date().toISOString()}" level=${level} msg=${JSON.stringify(msg)}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue;
        line += ` ${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`;
      }
    }
    this.out(line + '\n');
  }

  debug(msg: string, fields?: Record<string, unknown>): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: Record<string, unknown>): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: Record<string, unknown>): void { this.log('error', msg, fields); }
}

/** A logger that drops everything; for tests and library use. */
export const silentLogger = new Logger('fatal', () => {});
