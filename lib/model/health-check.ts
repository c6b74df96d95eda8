/** Timing shared by every health check. */
export interface HealthCheckOptions {
  /**
   * Seconds between checks (nerve's `check_interval`, HAProxy's `inter`). Fractions allowed.
   * @default 2
   */
  readonly intervalSeconds?: number;
  /**
   * Seconds a check may take before it counts as failed. At most `intervalSeconds`.
   * @default 1
   */
  readonly timeoutSeconds?: number;
  /**
   * Consecutive passing checks before an instance is up.
   * @default 3
   */
  readonly rise?: number;
  /**
   * Consecutive failing checks before an instance is down.
   * @default 2
   */
  readonly fall?: number;
}

/** Options of an HTTP health check. */
export interface HttpHealthCheckOptions extends HealthCheckOptions {
  /** Path requested with GET, e.g. `/health`. */
  readonly path: string;
  /**
   * Exact status the consumers' HAProxy expects. nerve passes any 2xx or 3xx, so only
   * 200-399 is allowed: outside it nerve and HAProxy would disagree about the instance.
   * @default - any 2xx or 3xx
   */
  readonly expectStatus?: number;
  /**
   * A word the response body must contain (nerve's `expect`, HAProxy's `http-check expect string`).
   * @default - the body is not checked
   */
  readonly expectBody?: string;
}

/** The kinds of health check. */
export enum HealthCheckType {
  /** GET a path and expect a 2xx/3xx answer. */
  HTTP = 'http',
  /** Open a TCP connection. */
  TCP = 'tcp',
}

/**
 * How an instance of a service is judged healthy: by nerve on the host that provides it, and by
 * HAProxy on every host that consumes it. Checked values are validated by the service that uses it.
 */
export class HealthCheck {
  /** An HTTP check: GET `path`, healthy on 2xx/3xx (and the expected status and body, if given). */
  public static http(options: HttpHealthCheckOptions): HealthCheck {
    return new HealthCheck(HealthCheckType.HTTP, options, options.path, options.expectStatus, options.expectBody);
  }

  /** A TCP check: healthy when the port accepts a connection. */
  public static tcp(options: HealthCheckOptions = {}): HealthCheck {
    return new HealthCheck(HealthCheckType.TCP, options);
  }

  public readonly type: HealthCheckType;
  public readonly intervalSeconds: number;
  public readonly timeoutSeconds: number;
  public readonly rise: number;
  public readonly fall: number;
  /** The HTTP path, for HTTP checks. */
  public readonly path?: string;
  public readonly expectStatus?: number;
  public readonly expectBody?: string;

  private constructor(type: HealthCheckType, options: HealthCheckOptions, path?: string, expectStatus?: number, expectBody?: string) {
    this.type = type;
    // Defaults are the article's: checked every 2 s, up after 3 passes, down after 2 failures.
    this.intervalSeconds = options.intervalSeconds ?? 2;
    this.timeoutSeconds = options.timeoutSeconds ?? 1;
    this.rise = options.rise ?? 3;
    this.fall = options.fall ?? 2;
    this.path = path;
    this.expectStatus = expectStatus;
    this.expectBody = expectBody;
  }
}
