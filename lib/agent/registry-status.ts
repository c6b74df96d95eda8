import { ZK_NO_AUTH, ZK_NO_NODE, ZkError, ZkSession, ZkSessionOptions } from './zk-session';
import { decodeChildName, decodeRegistration } from '../schema/registration-codec';
import { ZookeeperCredentials } from '../schema/zookeeper-credentials';

/** One child of a service path, as synapse would see it. */
export interface RegisteredInstance {
  readonly node: string;
  readonly valid: boolean;
  readonly name?: string;
  readonly host?: string;
  readonly port?: number;
  readonly weight?: number;
  /** Why synapse would skip it. */
  readonly reason?: string;
}

export interface RegisteredService {
  readonly name: string;
  readonly path: string;
  readonly instances: RegisteredInstance[];
  /** Why the service's registrations could not be listed (no read permission). */
  readonly error?: string;
}

/** One ZooKeeper member, as its four-letter words describe it. */
export interface MemberStatus {
  readonly hostname: string;
  readonly address: string;
  /** leader, follower, or '' when the member does not serve. */
  readonly mode: string;
}

/** What ZooKeeper says is registered under a base path (`/services` by default). */
export interface RegistryStatus {
  readonly zk: string;
  readonly base: string;
  readonly reachable: boolean;
  readonly services: RegisteredService[];
  /** Why `base` itself could not be listed (no read permission). */
  readonly error?: string;
}

/**
 * Reads every service under `base` and decodes its children the way synapse does; with
 * `credentials`, as that identity. A path it may not read is reported, not fatal.
 */
export async function registryStatus(
  connectString: string,
  base: string,
  options: Omit<ZkSessionOptions, 'log'> = {},
  timeoutMs = 10000,
  credentials?: ZookeeperCredentials,
): Promise<RegistryStatus> {
  const session = new ZkSession(connectString, options);
  if (credentials) session.addCredentials(credentials);
  const as = credentials ? `as ${credentials.user}` : 'unauthenticated (see --auth-file)';
  try {
    if (!(await session.start(timeoutMs))) return { zk: connectString, base, reachable: false, services: [] };
    let names: string[];
    try {
      names = (await session.getChildren(base).catch(noNodeAsEmpty)).sort();
    } catch (e) {
      if ((e as ZkError).code !== ZK_NO_AUTH) throw e;
      return { zk: connectString, base, reachable: true, services: [], error: `no permission to list ${base} ${as}` };
    }
    const services: RegisteredService[] = [];
    for (const name of names) {
      const path = `${base}/${name}`;
      let children: string[];
      try {
        children = (await session.getChildren(path).catch(noNodeAsEmpty)).sort();
      } catch (e) {
        if ((e as ZkError).code !== ZK_NO_AUTH) throw e;
        services.push({ name, path, instances: [], error: `no permission to list ${path} ${as}` });
        continue;
      }
      const instances: RegisteredInstance[] = [];
      for (const node of children) {
        let decoded = decodeChildName(node);
        if (!decoded) {
          const data = await session.getData(`${path}/${node}`).catch((e: ZkError) => {
            if (e.code === ZK_NO_NODE) return undefined;
            if (e.code === ZK_NO_AUTH) return null;
            return Promise.reject(e);
          });
          if (data === undefined) continue;
          if (data === null) {
            instances.push({ node, valid: false, reason: `no permission to read it ${as}` });
            continue;
          }
          decoded = decodeRegistration(data.data);
        }
        instances.push(decoded.ok
          ? { node, valid: true, name: decoded.registration.name, host: decoded.registration.host, port: decoded.registration.port, weight: decoded.registration.weight }
          : { node, valid: false, reason: decoded.reason });
      }
      services.push({ name, path, instances });
    }
    return { zk: connectString, base, reachable: true, services };
  } finally {
    await session.close();
  }
}

/** A plain-text table of the status. */
export function renderStatus(status: RegistryStatus): string {
  if (!status.reachable) return `zookeeper ${status.zk}: unreachable\n`;
  if (status.error !== undefined) return `zookeeper ${status.zk}, ${status.base}: ${status.error}\n`;
  const lines = [`zookeeper ${status.zk}, ${status.base}: ${status.services.length} service(s)`];
  for (const s of status.services) {
    if (s.error !== undefined) {
      lines.push(`${s.name}  ${s.error}`);
      continue;
    }
    const valid = s.instances.filter((i) => i.valid).length;
    lines.push(`${s.name}  ${valid} instance(s)${s.instances.length > valid ? `, ${s.instances.length - valid} invalid` : ''}`);
    for (const i of s.instances) {
      lines.push(i.valid
        ? `  ${i.host}:${i.port}  ${i.name || '-'}${i.weight !== undefined ? `  weight ${i.weight}` : ''}  ${i.node}`
        : `  invalid  ${JSON.stringify(i.node.slice(0, 60))}  ${i.reason}`);
    }
  }
  return lines.join('\n') + '\n';
}

function noNodeAsEmpty(e: ZkError): string[] {
  if (e.code === ZK_NO_NODE) return [];
  throw e;
}
