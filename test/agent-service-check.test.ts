import { ServiceCheck } from '../lib/agent/service-check';
import { LoadedNerveCheck } from '../lib/agent/nerve-config-loader';
import { startBackend, TestBackend } from './support/agent-backend';
import { freePort } from './support/haproxy-process';

describe('ServiceCheck', () => {
  let backend: TestBackend;
  beforeAll(async () => {
    backend = await startBackend('127.0.0.1');
  });
  afterAll(() => backend.kill());

  const http = (extra: Partial<LoadedNerveCheck> = {}): LoadedNerveCheck => ({
    type: 'http', name: 'h', host: backend.host, port: backend.port, uri: '/health', timeoutMs: 1000, rise: 2, fall: 3, headers: {},
    ssl: false, openTimeoutMs: 1000, readTimeoutMs: 1000, sslTimeoutMs: 1000, ...extra,
  });

  test('starts down, goes up after rise passes and down after fall failures', async () => {
    const check = new ServiceCheck(http());
    await check.run();
    expect(check.up).toBe(false);
    await check.run();
    expect(check.up).toBe(true);
    backend.setHealthy(false);
    await check.run();
    await check.run();
    expect(check.up).toBe(true);
    expect(check.lastResult).toEqual({ ok: false, reason: 'status 503' });
    await check.run();
    expect(check.up).toBe(false);
    backend.setHealthy(true);
  });

  test('expect passes when the body contains the text, as HAProxy reads it', async () => {
    expect((await new ServiceCheck(http({ expect: 'ok' })).run()).ok).toBe(true);
    expect((await new ServiceCheck(http({ expect: 'fine' })).run())).toEqual({ ok: false, reason: 'unexpected response body' });
  });

  test('tcp checks pass on connect and fail on refusal', async () => {
    const tcp = (port: number): LoadedNerveCheck => ({ ...http(), type: 'tcp', port, uri: '' });
    expect((await new ServiceCheck(tcp(backend.port)).run()).ok).toBe(true);
    expect((await new ServiceCheck(tcp(await freePort())).run()).ok).toBe(false);
  });
});

describe('redis checks (upstream: PING answered with PONG)', () => {
  test('pass on +PONG, fail on anything else', async () => {
    const { createServer } = await import('net');
    const start = (answer: string): Promise<{ port: number; close: () => void }> => new Promise((resolve) => {
      const server = createServer((socket) => socket.once('data', () => socket.end(answer)));
      server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, close: () => server.close() }));
    });
    const [good, bad] = await Promise.all([start('+PONG\r\n'), start('-NOAUTH Authentication required.\r\n')]);
    try {
      const redis = (port: number): LoadedNerveCheck => ({
        type: 'redis', name: 'r', host: '127.0.0.1', port, uri: '', timeoutMs: 1000, rise: 1, fall: 1, headers: {},
        ssl: false, openTimeoutMs: 1000, readTimeoutMs: 1000, sslTimeoutMs: 1000,
      });
      expect(await new ServiceCheck(redis(good.port)).run()).toEqual({ ok: true });
      expect(await new ServiceCheck(redis(bad.port)).run()).toEqual({ ok: false, reason: 'redis answered "-NOAUTH Authentication required.\\r\\n"' });
    } finally {
      good.close();
      bad.close();
    }
  });
});
