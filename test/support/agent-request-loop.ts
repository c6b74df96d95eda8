/**
 * A client calling a service through the sidecar's local port, as an application would:
 * sequential GETs, bounded in count and time, every failure recorded.
 */
import { request } from 'http';

export interface RequestLoopResult {
  readonly sent: number;
  readonly ok: number;
  readonly failures: { readonly at: number; readonly error: string }[];
  /** Which backend answered, by its reply line, and how often. */
  readonly answeredBy: { [backend: string]: number };
}

export interface RequestLoop {
  /** Stops after the request in flight and returns the result. */
  stop(): Promise<RequestLoopResult>;
  /** Waits until the loop ends by itself (count or time bound) and returns the result. */
  finished(): Promise<RequestLoopResult>;
  /** The result so far. */
  snapshot(): RequestLoopResult;
}

export interface RequestLoopOptions {
  readonly maxRequests?: number;
  readonly maxDurationMs?: number;
  /** Pause between requests. Default 10 ms. */
  readonly pauseMs?: number;
  readonly timeoutMs?: number;
}

/** Starts GETs to http://host:port/ until stopped, `maxRequests` (default 20000) or `maxDurationMs` (default 120 s). */
export function startRequestLoop(host: string, port: number, options: RequestLoopOptions = {}): RequestLoop {
  const maxRequests = options.maxRequests ?? 20000;
  const deadline = Date.now() + (options.maxDurationMs ?? 120000);
  const pause = options.pauseMs ?? 10;
  const timeoutMs = options.timeoutMs ?? 5000;
  let stopped = false;
  let sent = 0;
  let ok = 0;
  const failures: { at: number; error: string }[] = [];
  const answeredBy: { [backend: string]: number } = {};

  const once = (): Promise<void> => new Promise((resolve) => {
    const req = request({ host, port, path: '/', method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        if (res.statusCode === 200) {
          ok += 1;
          const who = body.trim();
          answeredBy[who] = (answeredBy[who] ?? 0) + 1;
        } else {
          failures.push({ at: Date.now(), error: `status ${res.statusCode}: ${body.slice(0, 100)}` });
        }
        resolve();
      });
      res.on('error', (e) => {
        failures.push({ at: Date.now(), error: e.message });
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => {
      failures.push({ at: Date.now(), error: e.message });
      resolve();
    });
    req.end();
  });

  const snapshot = (): RequestLoopResult => ({ sent, ok, failures: [...failures], answeredBy: { ...answeredBy } });
  const done = (async () => {
    while (!stopped && sent < maxRequests && Date.now() < deadline) {
      sent += 1;
      await once();
      await new Promise((r) => setTimeout(r, pause));
    }
  })();

  return {
    snapshot,
    async finished() {
      await done;
      return snapshot();
    },
    async stop() {
      stopped = true;
      await done;
      return snapshot();
    },
  };
}
