/** Log levels in increasing severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const SEVERITY: { [level in LogLevel]: number } = { debug: 10, info: 20, warn: 30, error: 40 };

/** A log record's extra fields. */
export type LogFields = { readonly [key: string]: unknown };

/**
 * JSON-lines logger: one object per line with `time`, `level`, `agent`, `msg` and the given
 * fields, so journald and log shippers parse it without patterns.
 */
export class Logger {
  public constructor(
    private readonly fields: LogFields,
    private readonly minLevel: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stdout.write(line),
  ) {}

  /** A logger that adds `fields` to every record. */
  public child(fields: LogFields): Logger {
    return new Logger({ ...this.fields, ...fields }, this.minLevel, this.write);
  }

  public debug(msg: string, fields: LogFields = {}): void {
    this.log('debug', msg, fields);
  }

  public info(msg: string, fields: LogFields = {}): void {
    this.log('info', msg, fields);
  }

  public warn(msg: string, fields: LogFields = {}): void {
    this.log('warn', msg, fields);
  }

  public error(msg: string, fields: LogFields = {}): void {
    this.log('error', msg, fields);
  }

  private log(level: LogLevel, msg: string, fields: LogFields): void {
    if (SEVERITY[level] < SEVERITY[this.minLevel]) return;
    const record: { [key: string]: unknown } = { time: new Date().toISOString(), level, ...this.fields, msg };
    for (const [key, value] of Object.entries(fields)) {
      record[key] = value instanceof Error ? value.message : value;
    }
    this.write(JSON.stringify(record) + '\n');
  }
}

/** True for a known level name. */
export function isLogLevel(value: string): value is LogLevel {
  return value in SEVERITY;
}
