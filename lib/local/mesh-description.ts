import { HAPROXY_BOOTSTRAP, NERVE_CONFIG, SYNAPSE_CONFIG, ZOO_CFG } from '../cloud-init/host-paths';
import { LoopbackHost } from './loopback-host';

/**
 * What a laid-out mesh is, read from the hosts' own files: each host's address and roles, each
 * service with its providers, consumers' endpoints and health check. `smartstack local` shows it,
 * starts the backends from it, and checks its ports before anything starts.
 */

/** The check a provider's nerve runs and a consumer's HAProxy repeats. */
export interface MeshCheck {
  readonly type: 'http' | 'tcp';
  /** HTTP: the path asked for. */
  readonly path?: string;
  /** HTTP: the status the consumers' HAProxy expects (nerve takes any 2xx or 3xx). */
  readonly expectStatus?: number;
  /** HTTP: a word the body must contain. */
  readonly expectBody?: string;
}

export interface MeshProvider {
  readonly hostname: string;
  readonly address: string;
  readonly port: number;
}

export interface MeshConsumer {
  readonly hostname: string;
  /** The address and port the consumer's applications call. */
  readonly address: string;
  readonly localPort: number;
}

export interface MeshService {
  readonly name: string;
  readonly discoveryPath: string;
  readonly check?: MeshCheck;
  readonly providers: MeshProvider[];
  readonly consumers: MeshConsumer[];
}

export interface MeshHost {
  readonly hostname: string;
  readonly address: string;
  /** The address it has in the synthesized stack. */
  readonly privateAddress: string;
  /** `zookeeper member`, `provides user-service`, `consumes user-service`. */
  readonly roles: string[];
}

/** A port something of the mesh will listen on. */
export interface MeshPort {
  readonly address: string;
  readonly port: number;
  /** Who, e.g. `app1's backend for user-service`. */
  readonly owner: string;
}

export interface MeshDescription {
  readonly hosts: MeshHost[];
  readonly services: MeshService[];
  readonly ports: MeshPort[];
}

interface NerveFile {
  readonly services: { [name: string]: { host: string; port: number | string; zk_path: string; checks?: Array<{ type: string; uri?: string; expect?: string }> } };
}

interface SynapseFile {
  readonly services: { [name: string]: { discovery: { path: string }; haproxy: { port?: number | string; bind_address?: string; backend?: string[]; listen?: string[] } } };
}

/** What describeMesh reads of a host: its names and the files its document writes. */
export type DescribedHost = Pick<LoopbackHost, 'hostname' | 'address' | 'privateAddress' | 'files'>;

export function describeMesh(hosts: readonly DescribedHost[]): MeshDescription {
  const services = new Map<string, { name: string; discoveryPath: string; check?: MeshCheck; expectStatus?: number; providers: MeshProvider[]; consumers: MeshConsumer[] }>();
  const service = (name: string, discoveryPath: string) => {
    let s = services.get(name);
    if (!s) services.set(name, (s = { name, discoveryPath, providers: [], consumers: [] }));
    return s;
  };
  const ports: MeshPort[] = [];
  const described = hosts.map((host): MeshHost => {
    const roles: string[] = [];
    const zooCfg = host.files.get(ZOO_CFG);
    if (zooCfg) {
      roles.push('zookeeper member');
      const clientPort = Number(/^clientPort=(\d+)$/m.exec(zooCfg)?.[1] ?? 2181);
      ports.push({ address: host.address, port: clientPort, owner: `${host.hostname}'s ZooKeeper client port` });
      // This member's own quorum and election ports, from its server.N line.
      const own = [...zooCfg.matchAll(/^server\.\d+=([^:\s]+):(\d+):(\d+)/gm)].find((m) => m[1] === host.address);
      if (own) {
        ports.push({ address: host.address, port: Number(own[2]), owner: `${host.hostname}'s ZooKeeper quorum port` });
        ports.push({ address: host.address, port: Number(own[3]), owner: `${host.hostname}'s ZooKeeper election port` });
      }
    }
    const nerve = host.files.get(NERVE_CONFIG);
    if (nerve) {
      for (const [name, s] of Object.entries((JSON.parse(nerve) as NerveFile).services)) {
        roles.push(`provides ${name}`);
        const entry = service(name, s.zk_path);
        entry.providers.push({ hostname: host.hostname, address: s.host, port: Number(s.port) });
        const check = (s.checks ?? [])[0];
        if (check && !entry.check) entry.check = check.type === 'http' ? { type: 'http', path: check.uri ?? '/', expectBody: check.expect } : { type: 'tcp' };
        ports.push({ address: s.host, port: Number(s.port), owner: `${host.hostname}'s backend for ${name}` });
      }
    }
    const synapse = host.files.get(SYNAPSE_CONFIG);
    if (synapse) {
      for (const [name, s] of Object.entries((JSON.parse(synapse) as SynapseFile).services)) {
        roles.push(`consumes ${name}`);
        const entry = service(name, s.discovery.path);
        const address = s.haproxy.bind_address ?? host.address;
        entry.consumers.push({ hostname: host.hostname, address, localPort: Number(s.haproxy.port) });
        ports.push({ address, port: Number(s.haproxy.port), owner: `${host.hostname}'s HAProxy for ${name}` });
        // The status the consumers' HAProxy checks for, which nerve's config does not carry.
        const status = /^http-check expect status (\d+)$/m.exec([...(s.haproxy.backend ?? []), ...(s.haproxy.listen ?? [])].join('\n'));
        if (status) entry.expectStatus = Number(status[1]);
      }
      const stats = /^listen haproxy-stats\n\s*bind ([\d.]+):(\d+)/m.exec(host.files.get(HAPROXY_BOOTSTRAP) ?? '');
      if (stats) ports.push({ address: stats[1], port: Number(stats[2]), owner: `${host.hostname}'s HAProxy stats` });
    }
    return { hostname: host.hostname, address: host.address, privateAddress: host.privateAddress, roles };
  });
  return {
    hosts: described,
    services: [...services.values()]
      .map((s) => ({ name: s.name, discoveryPath: s.discoveryPath, providers: s.providers, consumers: s.consumers, check: withStatus(s.check, s.expectStatus) }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    ports,
  };
}

function withStatus(check: MeshCheck | undefined, expectStatus: number | undefined): MeshCheck | undefined {
  if (!check || check.type !== 'http' || expectStatus === undefined) return check;
  return { ...check, expectStatus };
}
