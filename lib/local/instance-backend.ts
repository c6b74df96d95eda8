import { createServer, Server } from 'http';

/** A stand-in for a provided service on the local mesh: answers its health check and names itself. */
export interface InstanceBackendOptions {
  readonly address: string;
  readonly port: number;
  readonly service: string;
  readonly instance: string;
}

export function startInstanceBackend(options: InstanceBackendOptions): Promise<Server> {
  const body = `${options.service} ${options.instance}\n`;
  const server = createServer((request, response) => {
    response.setHeader('x-smartstack-instance', options.instance);
    response.setHeader('content-type', 'text/plain');
    response.end(request.url === '/health' ? 'ok\n' : body);
  });
  server.keepAliveTimeout = 65000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => resolve(server));
  });
}

/** `node instance-backend.js ADDRESS PORT SERVICE INSTANCE`: runs one backend until signalled. */
if (require.main === module) {
  const [address, port, service, instance] = process.argv.slice(2);
  startInstanceBackend({ address, port: Number(port), service, instance }).then(
    () => process.stdout.write(`${service} ${instance} listening on ${address}:${port}\n`),
    (e: Error) => {
      process.stderr.write(`${service} ${instance}: cannot listen on ${address}:${port}: ${e.message}\n`);
      process.exit(1);
    },
  );
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
}
