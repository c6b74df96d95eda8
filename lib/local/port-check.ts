import { spawnSync } from 'child_process';
import { createServer } from 'net';
import { MeshPort } from './mesh-description';

/** A port the mesh needs that something else holds, and what holds it. */
export interface PortInUse extends MeshPort {
  /** e.g. `held by pid 4242 (node)`, from ss; or why that is not known. */
  readonly holder: string;
}

/**
 * The ports of `ports` that cannot be listened on now. Checked before anything starts, so that a
 * process left from an earlier run is reported instead of silently answering in the new one.
 */
export async function portsInUse(ports: readonly MeshPort[]): Promise<PortInUse[]> {
  const taken: PortInUse[] = [];
  for (const p of ports) {
    const error = await tryListen(p.address, p.port);
    if (error === undefined) continue;
    taken.push({ ...p, holder: error === 'EADDRINUSE' ? holderOf(p.address, p.port) : `cannot listen there (${error})` });
  }
  return taken;
}

function tryListen(address: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

function holderOf(address: string, port: number): string {
  const ss = spawnSync('ss', ['-ltnpH', `( sport = :${port} )`], { encoding: 'utf8', timeout: 5000 });
  if (ss.status !== 0) return 'in use (ss, from the Debian package iproute2, would name the process)';
  // Java listens on IPv6 sockets: 127.0.0.5 shows as [::ffff:127.0.0.5].
  const local = [`${address}:${port}`, `[::ffff:${address}]:${port}`, `*:${port}`, `0.0.0.0:${port}`, `[::]:${port}`];
  const line = ss.stdout.split('\n').find((l) => local.some((a) => l.split(/\s+/).includes(a)));
  const users = [...(line ?? '').matchAll(/\("([^"]+)",pid=(\d+)/g)].map((m) => `pid ${m[2]} (${m[1]})`);
  return users.length > 0 ? `held by ${[...new Set(users)].join(', ')}` : 'in use (ss names no process: one of another user, or of another network namespace)';
}
