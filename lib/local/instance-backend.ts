import { createServer, Server } from 'http';

/**
 * A stand-in for a provided service on the local mesh: answers the service's own health check
 * (its path, with the status and the word the checks expect) and names its instance otherwise.
 */
export interface InstanceBackendOptions {
  readonly address: string;
  readonly port: number;
  readonly service: string;
  readonly instance: string;
  /**
   * The health check's path.
   * @default '/health'
   */
  readonly checkPath?: string;
  /**
   * The status the check expects.
   * @default 200
   */
  readonly checkStatus?: number;
  /**
   * A word the check's body must contain.
   * @default 'ok'
   */
  readonly checkBody?: string;
}

export function startInstanceBackend(options: InstanceBackendOptions): Promise<Server> {
  const body = `${options.service} ${options.instance}\n`;
  const checkPath = options.checkPath ?? '/health';
  const server = createServer((request, response) => {
    response.setHeader('x-smartstack-instance', options.instance);
    response.setHeader('content-type', 'text/plain');
    if (request.url === checkPath) {
      response.statusCode = options.checkStatus ?? 200;
      response.end(`${options.checkBody ?? 'ok'}\n`);
      return;
    }
    response.end(body);
  });
  server.keepAliveTimeout = 65000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => resolve(server));
  });
}

/**
 * `node instance-backend.js ADDRESS PORT SERVICE INSTANCE [CHECK_PATH [CHECK_STATUS [CHECK_BODY]]]`:
 * runs one backend until signalled (an empty argument takes the default).
 */
if (require.main === module) {
  const [address, port, service, instance, checkPath, checkStatus, checkBody] = process.argv.slice(2);
  startInstanceBackend({
    address,
    port: Number(port),
    service,
    instance,
    checkPath: checkPath || undefined,
    checkStatus: checkStatus ? Number(checkStatus) : undefined,
    checkBody: checkBody || undefined,
  }).then(
    () => process.stdout.write(`${service} ${instance} listening on ${address}:${port}, answering its check at ${checkPath || '/health'}\n`),
    (e: Error) => {
      process.stderr.write(`${service} ${instance}: cannot listen on ${address}:${port}: ${e.message}\n`);
      process.exit(1);
    },
  );
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
}
