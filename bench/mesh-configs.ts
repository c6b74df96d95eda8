/**
 * The agents' configuration files as the constructs render them for a small mesh (a 3-member
 * ensemble, one service, provider hosts and one consumer), and their mapping onto this machine:
 * ZooKeeper and instance addresses onto loopback, host paths onto a temp dir. Only addresses,
 * ports and paths change; every other line is what a real host of a stack with `acls: false` gets.
 */
import { App, TerraformStack } from 'cdktf';
import { AgentRuntime, HaproxySidecar, HealthCheck, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';
import { SynapseConfig } from '../lib/schema/synapse-config';

export const SERVICE = 'user-service';

export interface MeshOptions {
  /** Port on 127.0.0.1 where the consumer reaches the service. */
  readonly localPort: number;
  /** The consumer's stats/Prometheus port. */
  readonly statsPort: number;
  readonly healthCheck: HealthCheck;
  /** Provider host names. */
  readonly providers: string[];
  /** synapse's own metrics port. */
  readonly synapseMetricsPort?: number;
}

export interface MeshConfigs {
  /** The consumer's synapse.conf.json. */
  readonly synapseConfigJson: string;
  /** Each provider's nerve.conf.json, by host name. */
  readonly nerveConfigJson: Record<string, string>;
}

export function renderMeshConfigs(options: MeshOptions): MeshConfigs {
  const app = new App();
  const stack = new TerraformStack(app, 'bench-mesh');
  const members = [1, 2, 3].map((n) => new VdsNode(stack, `zk${n}`, {
    privateAddress: `10.30.0.${10 + n}`,
    memoryMiB: 4096,
    disks: [
      { name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${n}-data` },
      { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${n}-txlog` },
    ],
  }));
  // ACLs off: the files then name no credential that only Terraform can fill in, and the loopback
  // ensemble has no digests to check. Authentication is once per session, not on the measured path.
  const ensemble = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog', acls: false });
  const service = new SmartStackService(stack, SERVICE, { ensemble, port: 8080, localPort: options.localPort, healthCheck: options.healthCheck });
  const nerveConfigJson: Record<string, string> = {};
  options.providers.forEach((name, i) => {
    const host = new VdsNode(stack, name, { privateAddress: `10.30.0.${50 + i}`, memoryMiB: 2048 });
    const sidecar = new HaproxySidecar(host, 'sidecar', { provides: [service] });
    if (!sidecar.nerveConfigJson) throw new Error(`provider ${name} rendered no nerve.conf.json`);
    nerveConfigJson[name] = sidecar.nerveConfigJson;
  });
  const consumer = new VdsNode(stack, 'web1', { privateAddress: '10.30.0.30', memoryMiB: 2048 });
  const sidecar = new HaproxySidecar(consumer, 'sidecar', {
    consumes: [service],
    statsPort: options.statsPort,
    runtime: AgentRuntime.node(options.synapseMetricsPort !== undefined ? { synapseMetricsPort: options.synapseMetricsPort } : {}),
  });
  if (!sidecar.synapseConfigJson) throw new Error('the consuming sidecar rendered no synapse.conf.json');
  return { synapseConfigJson: sidecar.synapseConfigJson, nerveConfigJson };
}

/** Where the consumer's HAProxy files live on this machine. */
export interface LocalHaproxyPaths {
  readonly dir: string;
  readonly configPath: string;
  readonly adminSocket: string;
  readonly masterSocket: string;
  readonly stateFile: string;
}

/**
 * synapse.conf.json moved onto this machine: HAProxy's files into `paths`, ZooKeeper onto `zkHosts`
 * (when given). The admin socket stays with the invoking user (the `synapse` user does not exist here).
 */
export function localSynapseConfig(json: string, paths: LocalHaproxyPaths, zkHosts?: string[]): SynapseConfig {
  const config = JSON.parse(json) as SynapseConfig & { haproxy: { config_file_path?: string } };
  const h = config.haproxy ?? {};
  const mapPath = (text: string) => text
    .split(h.config_file_path ?? '\u0000').join(paths.configPath)
    .split(h.socket_file_path ?? '\u0000').join(paths.adminSocket)
    .split((h as { master_socket_file_path?: string }).master_socket_file_path ?? '\u0000').join(paths.masterSocket)
    .replace(/server-state-file \S+/, `server-state-file ${paths.stateFile}`)
    .replace(/\/run\/smartstack-haproxy/g, `${paths.dir}/run`)
    .replace(/\/var\/lib\/smartstack/g, `${paths.dir}/var`);
  const mapped = JSON.parse(mapPath(JSON.stringify(config))) as SynapseConfig;
  const global = (mapped.haproxy?.global ?? [])
    .map((l) => (l.startsWith('stats socket') ? l.replace(/ user \S+/, '').replace(/ group \S+/, '') : l))
    // Dropping privileges needs root; elsewhere HAProxy stays the invoking user.
    .filter((l) => process.getuid?.() === 0 || !/^(user|group) /.test(l));
  const services = Object.fromEntries(Object.entries(mapped.services).map(([name, s]) => [
    name,
    zkHosts ? { ...s, discovery: { ...s.discovery, hosts: [...zkHosts] } } : s,
  ]));
  return { ...mapped, services, haproxy: { ...mapped.haproxy, global } };
}

/** nerve.conf.json moved onto this machine: the instance at host:port, ZooKeeper at zkHosts. */
export function localNerveConfig(json: string, instance: { host: string; port: number }, zkHosts: string[], metricsPort?: number): string {
  const config = JSON.parse(json) as { services: Record<string, { host: string; port: number; zk_hosts: string[] }>; metrics_port?: number };
  for (const s of Object.values(config.services)) {
    s.host = instance.host;
    s.port = instance.port;
    s.zk_hosts = [...zkHosts];
  }
  if (metricsPort !== undefined) config.metrics_port = metricsPort;
  else delete config.metrics_port;
  return `${JSON.stringify(config, null, 2)}\n`;
}
