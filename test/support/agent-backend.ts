/**
 * A service instance for agent tests: an HTTP server on a loopback address whose `/health`
 * can be turned bad, which counts the other requests it serves and can die abruptly.
 */
import { createServer, Server } from 'http';
import { AddressInfo, Socket } from 'net';

export interface TestBackend {
  readonly host: string;
  readonly port: number;
  /** Requests served other than `/health`. */
  readonly served: number;
  /** When the first passing `/health` answer was sent, and the first other request arrived (ms epoch). */
  readonly firstHealthyAt?: number;
  readonly firstRequestAt?: number;
  /** Makes `/health` answer 503 (false) or 200 (true). */
  setHealthy(healthy: boolean): void;
  /** Closes the listener and every open connection at once, as a crash would. */
  kill(): Promise<void>;
}

/** Starts a backend on host (a 127.x address) and port (0 for any free one). */
export async function startBackend(host: string, port = 0, healthy = true): Promise<TestBackend> {
  let isHealthy = healthy;
  let served = 0;
  let firstHealthyAt: number | undefined;
  let firstRequestAt: number | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (req.url === '/health') {
      if (isHealthy && firstHealthyAt === undefined) firstHealthyAt = Date.now();
      res.writeHead(isHealthy ? 200 : 503, { 'Content-Type': 'text/plain' }).end(isHealthy ? 'ok\n' : 'unhealthy\n');
      return;
    }
    served += 1;
    if (firstRequestAt === undefined) firstRequestAt = Date.now();
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`${host}:${(server.address() as AddressInfo).port}\n`);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  return {
    host,
    port: actualPort,
    get served() {
      return served;
    },
    get firstHealthyAt() {
      return firstHealthyAt;
    },
    get firstRequestAt() {
      return firstRequestAt;
    },
    setHealthy(h) {
      isHealthy = h;
    },
    kill() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        sockets.forEach((s) => s.destroy());
      });
    },
  };
}
