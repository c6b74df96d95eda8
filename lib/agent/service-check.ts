import { ClientRequest, IncomingMessage, request as httpRequest } from 'http';
import { request as httpsRequest } from 'https';
import { connect } from 'net';
import { LoadedNerveCheck } from './nerve-config-loader';

/** One probe's outcome. */
export interface ProbeResult {
  readonly ok: boolean;
  /** Why it failed, for the log. */
  readonly reason?: string;
}

const MAX_BODY_BYTES = 64 * 1024;

/**
 * One health check with rise/fall: it turns up after `rise` passes in a row and down after
 * `fall` failures in a row, and starts down, so nothing is registered before it has passed.
 */
export class ServiceCheck {
  private passes = 0;
  private failures = 0;
  private isUp = false;
  private last: ProbeResult = { ok: false, reason: 'not run yet' };

  public constructor(public readonly check: LoadedNerveCheck) {}

  public get up(): boolean {
    return this.isUp;
  }

  public get lastResult(): ProbeResult {
    return this.last;
  }

  /** Probes once and applies rise/fall; returns the probe's result. */
  public async run(): Promise<ProbeResult> {
    const result = await probe(this.check);
    this.last = result;
    if (result.ok) {
      this.passes += 1;
      this.failures = 0;
      if (!this.isUp && this.passes >= this.check.rise) this.isUp = true;
    } else {
      this.failures += 1;
      this.passes = 0;
      if (this.isUp && this.failures >= this.check.fall) this.isUp = false;
    }
    return result;
  }
}

/**
 * Runs a check once: HTTP(S) passes on 200–399 (and a body containing `expect`, if set); TCP on
 * connect; redis on `+PONG` to PING.
 */
export function probe(check: LoadedNerveCheck): Promise<ProbeResult> {
  if (check.type === 'http') return probeHttp(check);
  return check.type === 'redis' ? probeRedis(check) : probeTcp(check);
}

function probeHttp(check: LoadedNerveCheck): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    // Upstream's phases, each with its own limit: connect (open_timeout), TLS (ssl_timeout), answer (read_timeout).
    const phase = (ms: number, what: string): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish({ ok: false, reason: `${what} within ${ms} ms` }), ms);
    };
    const options = { host: check.host, port: check.port, path: check.uri, method: 'GET', headers: check.headers, agent: false };
    const onResponse = (res: IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      });
      res.on('error', (e) => finish({ ok: false, reason: e.message }));
      res.on('end', () => {
        if (status < 200 || status > 399) return finish({ ok: false, reason: `status ${status}` });
        // A substring, as HAProxy's `http-check expect string` reads the same setting on the consumers.
        if (check.expect !== undefined && !Buffer.concat(chunks).toString('utf8').includes(check.expect)) {
          return finish({ ok: false, reason: 'unexpected response body' });
        }
        finish({ ok: true });
      });
    };
    // As upstream (VERIFY_NONE): the check asks whether the service answers, not who it is.
    const req: ClientRequest = check.ssl
      ? httpsRequest({ ...options, rejectUnauthorized: false }, onResponse)
      : httpRequest(options, onResponse);
    phase(check.openTimeoutMs, 'no connection');
    req.on('socket', (socket) => {
      socket.once('connect', () => phase(check.ssl ? check.sslTimeoutMs : check.readTimeoutMs, check.ssl ? 'no TLS handshake' : 'no answer'));
      socket.once('secureConnect', () => phase(check.readTimeoutMs, 'no answer'));
    });
    req.on('error', (e) => finish({ ok: false, reason: e.message }));
    req.end();
  });
}

function probeTcp(check: LoadedNerveCheck): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: check.host, port: check.port });
    const finish = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: `no connection within ${check.timeoutMs} ms` }), check.timeoutMs);
    socket.once('connect', () => finish({ ok: true }));
    socket.once('error', (e) => finish({ ok: false, reason: e.message }));
  });
}

/** Upstream's redis check: PING answered with PONG (a proxy in front of a dead redis fails it too). */
function probeRedis(check: LoadedNerveCheck): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: check.host, port: check.port });
    let answer = '';
    const finish = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: `no PONG within ${check.timeoutMs} ms` }), check.timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (!answer.includes('\r\n')) return;
      finish(answer.startsWith('+PONG\r\n') ? { ok: true } : { ok: false, reason: `redis answered ${JSON.stringify(answer.slice(0, 80))}` });
    });
    socket.once('error', (e) => finish({ ok: false, reason: e.message }));
    socket.once('end', () => finish({ ok: false, reason: 'redis closed the connection' }));
  });
}
