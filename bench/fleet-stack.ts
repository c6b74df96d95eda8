/**
 * The stacks the synth benchmark synthesizes.
 *
 * - `buildFleetStack`: a fleet written with this library: a 5-member ZooKeeper ensemble, up to 200
 *   services, and every other host an app host whose sidecar provides 1 service and consumes 5.
 * - `buildBareStack`: plain cdktf, the floor: one `null_resource` per host with the same triggers,
 *   SSH connection and provisioners, carrying documents of exactly the sizes ours produced.
 */
import { provider as nullProvider, resource as nullResource } from '@cdktf/provider-null';
import { App, TerraformStack, TerraformVariable } from 'cdktf';
import { createHash } from 'crypto';
import { HaproxySidecar, HealthCheck, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';

export const ENSEMBLE_MEMBERS = 5;
export const MAX_SERVICES = 200;
export const CONSUMED_PER_HOST = 5;
export const STACK_NAME = 'fleet';

/** What a fleet of `hosts` hosts holds. */
export function fleetShape(hosts: number): { appHosts: number; services: number } {
  if (!Number.isInteger(hosts) || hosts < ENSEMBLE_MEMBERS + 1) throw new Error(`a fleet needs more than ${ENSEMBLE_MEMBERS} hosts, got ${hosts}`);
  const appHosts = hosts - ENSEMBLE_MEMBERS;
  return { appHosts, services: Math.min(MAX_SERVICES, appHosts) };
}

/** An address on the private network for app host i (10.21.0.1 ...), 250 hosts per /24. */
function appAddress(i: number): string {
  return `10.${21 + Math.floor(i / 62_500)}.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`;
}

/** Our fleet: ensemble, services, and one sidecar per app host. Services are created before the hosts, as a user would. */
export function buildFleetStack(app: App, hosts: number): TerraformStack {
  const { appHosts, services: serviceCount } = fleetShape(hosts);
  const stack = new TerraformStack(app, STACK_NAME);
  const members = Array.from({ length: ENSEMBLE_MEMBERS }, (_, i) => new VdsNode(stack, `zk${i + 1}`, {
    privateAddress: `10.20.0.${11 + i}`,
    memoryMiB: 4096,
    disks: [
      { name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i + 1}-data` },
      { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i + 1}-txlog` },
    ],
  }));
  const ensemble = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });

  const services = Array.from({ length: serviceCount }, (_, k) => new SmartStackService(stack, `svc${k}`, {
    ensemble,
    port: 10000 + k,
    localPort: 20000 + k,
    healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: 3, fall: 2 }),
  }));

  for (let i = 0; i < appHosts; i++) {
    const host = new VdsNode(stack, `app${i}`, { privateAddress: appAddress(i), memoryMiB: 2048 });
    const consumes = new Set<SmartStackService>();
    for (let j = 1; j <= CONSUMED_PER_HOST; j++) consumes.add(services[(i + j) % serviceCount]);
    new HaproxySidecar(host, 'sidecar', { provides: [services[i % serviceCount]], consumes: [...consumes] });
  }
  return stack;
}

/** Sizes, in characters as they stand in the Terraform JSON, of one host's two documents. */
export interface HostDocumentSizes {
  readonly userData: number;
  readonly applyScript: number;
}

/** Deterministic text of a given length, distinct per host, cheap to make. */
function filler(length: number, seed: string): string {
  const unit = `# ${seed} filler line of the bare baseline document\n`;
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The bare baseline: per host one null_resource shaped like VdsNode's, with documents of the given sizes. */
export function buildBareStack(app: App, sizes: HostDocumentSizes[]): TerraformStack {
  const stack = new TerraformStack(app, STACK_NAME);
  new nullProvider.NullProvider(stack, 'null');
  const key = new TerraformVariable(stack, 'ssh_private_key', { type: 'string', sensitive: true });
  sizes.forEach((size, i) => {
    const userData = filler(size.userData, `host${i} user-data`);
    const applyScript = filler(size.applyScript, `host${i} apply`);
    const staging = `/tmp/bare-host${i}`;
    new nullResource.Resource(stack, `host${i}`, {
      triggers: { cloud_init_sha256: sha256Hex(userData), apply_script_sha256: sha256Hex(applyScript) },
      connection: { type: 'ssh', host: i < ENSEMBLE_MEMBERS ? `10.20.0.${11 + i}` : appAddress(i - ENSEMBLE_MEMBERS), port: 22, user: 'root', privateKey: key.stringValue },
      provisioners: [
        { type: 'remote-exec', inline: [`rm -rf ${staging} && mkdir -m 0700 ${staging}`] },
        { type: 'file', content: userData, destination: `${staging}/user-data` },
        { type: 'file', content: applyScript, destination: `${staging}/apply.sh` },
        { type: 'remote-exec', inline: [`sh ${staging}/apply.sh`] },
      ],
    });
  });
  return stack;
}

/** The document sizes of every host in a synthesized stack, from its `file` provisioners. */
export function documentSizes(stackJson: unknown): HostDocumentSizes[] {
  const resources = (stackJson as { resource?: { null_resource?: Record<string, { provisioner?: Array<{ file?: { content?: string; destination?: string } }> }> } })
    .resource?.null_resource ?? {};
  return Object.keys(resources).sort().flatMap((name) => {
    const files = (resources[name].provisioner ?? []).map((p) => p.file).filter((f): f is { content?: string; destination?: string } => f !== undefined);
    const sizeOf = (suffix: string) => files.find((f) => f.destination?.endsWith(suffix))?.content?.length;
    const userData = sizeOf('/user-data');
    // Host deliveries only: the ensemble's ACL bootstrap has no counterpart in the baseline.
    return userData === undefined ? [] : [{ userData, applyScript: sizeOf('/apply.sh') ?? 0 }];
  });
}
