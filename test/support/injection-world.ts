/**
 * One host that is everything at once — ZooKeeper member, provider and consumer of a service, with a
 * sidecar — so a single value put into any construct property reaches every file it can reach:
 * zoo.cfg, java.env, units, nftables, haproxy.cfg, nerve/synapse JSON, the apply and ACL scripts,
 * the #cloud-config document and the synthesized Terraform JSON. Used by the injection property tests.
 */
import { TerraformStack, Testing } from 'cdktf';
import {
  AgentRuntime, CloudConfig, HaproxySidecar, HealthCheck, HttpHealthCheckOptions, SmartStackService, SmartStackServiceProps,
  VdsNode, VdsNodeProps, ZookeeperEnsemble, ZookeeperEnsembleProps,
} from '../../lib';

export interface WorldInput {
  readonly ensembleId?: string;
  readonly host?: Partial<VdsNodeProps>;
  readonly ensemble?: Partial<ZookeeperEnsembleProps>;
  readonly service?: Partial<SmartStackServiceProps>;
  readonly check?: Partial<HttpHealthCheckOptions>;
  readonly runtime?: () => AgentRuntime;
  /** Additions to the host's document and readiness checks, after every role. */
  readonly extra?: (host: VdsNode, cc: CloudConfig) => void;
}

export interface World {
  /** The #cloud-config document. */
  readonly userData: string;
  readonly applyScript: string;
  /** The synthesized Terraform JSON (text). */
  readonly terraformJson: string;
}

export function buildWorld(input: WorldInput = {}): World {
  const stack = new TerraformStack(Testing.app(), 'fuzz');
  const host = new VdsNode(stack, 'app1', {
    privateAddress: '10.10.0.11',
    memoryMiB: 4096,
    disks: [
      { name: 'zk-data', device: '/dev/disk/by-id/virtio-data' },
      { name: 'zk-txlog', device: '/dev/disk/by-id/virtio-txlog' },
    ],
    ...input.host,
  });
  const ensemble = new ZookeeperEnsemble(stack, input.ensembleId ?? 'zk', {
    members: [host],
    allowDevelopmentSize: true,
    dataDisk: 'zk-data',
    txnLogDisk: 'zk-txlog',
    ...input.ensemble,
  });
  const service = new SmartStackService(stack, 'user-service', {
    ensemble,
    port: 8080,
    localPort: 3210,
    healthCheck: HealthCheck.http({ path: '/health', ...input.check }),
    labels: { az: 'oslo-1' },
    defaultServers: [{ name: 'fallback', host: '10.10.0.99', port: 8080 }],
    ...input.service,
  });
  new HaproxySidecar(host, 'sidecar', { provides: [service], consumes: [service], runtime: input.runtime?.() });
  input.extra?.(host, host.cloudConfig);
  return { userData: host.renderUserData(), applyScript: host.renderApplyScript(), terraformJson: Testing.synth(stack) };
}
