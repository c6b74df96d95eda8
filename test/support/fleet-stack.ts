import { App, TerraformOutput, TerraformStack } from 'cdktf';
import { join } from 'path';
import { AgentRuntime, HaproxySidecar, HealthCheck, ServiceMode, SmartStackService, VdsNode, ZookeeperEnsemble } from '../../lib';
import { Fleet, FleetHostSpec, nvmeDiskPath } from '../../lib/fleet';

/**
 * The default example's topology — zk1-zk3 with a data and a transaction-log disk each, user-service
 * on app1 and app2, consumed on web1 at localhost:3210 — on a fleet's 198.18.x addresses, written
 * through the public API as a user would, with each host's SSH host key pinned.
 */
export const FLEET_HOSTS: readonly FleetHostSpec[] = [
  ...[1, 2, 3].map(fleetMemberHost),
  { name: 'app1', address: 55 },
  { name: 'app2', address: 56 },
  { name: 'web1', address: 30 },
];

/** ZooKeeper host zkN at .(10 + N), with a data and a transaction-log disk. */
export function fleetMemberHost(n: number): FleetHostSpec {
  return { name: `zk${n}`, address: 10 + n, disks: [{ id: `virtio-zk${n}-data`, sizeMiB: 512 }, { id: `virtio-zk${n}-txlog`, sizeMiB: 512 }] };
}

export interface FleetStackOptions {
  /** A change every sidecar host receives: the health check's `rise`. @default 3 */
  readonly rise?: number;
  /** The ensemble's members: zkN for each N. @default [1, 2, 3] */
  readonly members?: number[];
  /** Their ids, in the same order. @default N of zkN */
  readonly memberIds?: number[];
  /** Networks that may reach the members' client port besides the mesh's hosts. @default none */
  readonly clientNetworks?: string[];
  /**
   * Hosts booted from their user data instead of delivered over SSH (they need not exist yet): each
   * gets sensitive outputs `<name>_user_data` and `<name>_user_data_gzip_base64`, the document as
   * Terraform evaluates it. @default none
   */
  readonly fromUserData?: readonly string[];
  /** Hosts that are VMs, made before the synthesis or after it (booted from user data). @default the fleet's VMs */
  readonly vms?: readonly string[];
  /** More providers of user-service, booted from user data, fetching the agents from `packageUrl`. @default none */
  readonly userDataProviders?: ReadonlyArray<{ readonly name: string; readonly address: number; readonly packageUrl: string }>;
}

/** The fleet host number of each host of the topology. */
const HOST_NUMBERS: Record<string, number> = { zk1: 11, zk2: 12, zk3: 13, zk4: 14, zk5: 15, app1: 55, app2: 56, web1: 30 };

/** The NVMe serials of VM member zkN's disks (the fleet's VM gets these, the stack names their by-id paths). */
export function vmMemberSerials(n: number): { data: string; txlog: string } {
  return { data: `zk${n}-data`, txlog: `zk${n}-txlog` };
}

/** Synthesizes the topology for the fleet's hosts into `outdir`; returns the stack's folder. */
export function synthesizeFleetStack(fleet: Fleet, outdir: string, options: FleetStackOptions = {}): string {
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'fleet');
  // A member that is (or will be) a VM has NVMe disks.
  const isVm = (name: string) => fleet.vms.some((v) => v.name === name) || (options.vms ?? []).includes(name);
  const hostNumbers = { ...HOST_NUMBERS, ...Object.fromEntries((options.userDataProviders ?? []).map((p) => [p.name, p.address])) };
  const node = (name: string, memoryMiB: number, disks?: Array<{ name: string; device: string }>) => {
    const fromUserData = options.fromUserData?.includes(name) || (options.userDataProviders ?? []).some((p) => p.name === name);
    const host = fromUserData ? undefined : (fleet.vms.find((v) => v.name === name) ?? fleet.host(name));
    const vds = new VdsNode(stack, name, {
      privateAddress: host?.address ?? fleet.address(hostNumbers[name]),
      privateNetwork: fleet.network.cidr,
      sshHostKey: host?.sshHostKey,
      memoryMiB,
      disks,
      deliverOverSsh: !fromUserData,
    });
    if (fromUserData) {
      new TerraformOutput(stack, `${name}_user_data`, { value: vds.userData, sensitive: true });
      new TerraformOutput(stack, `${name}_user_data_gzip_base64`, { value: vds.userDataGzipBase64, sensitive: true });
    }
    return vds;
  };
  const numbers = options.members ?? [1, 2, 3];
  // A VM member's disks are NVMe controllers; a container's, loop devices with virtio-style links.
  const members = numbers.map((i) =>
    node(`zk${i}`, 1536, [
      { name: 'zk-data', device: isVm(`zk${i}`) ? nvmeDiskPath(vmMemberSerials(i).data) : `/dev/disk/by-id/virtio-zk${i}-data` },
      { name: 'zk-txlog', device: isVm(`zk${i}`) ? nvmeDiskPath(vmMemberSerials(i).txlog) : `/dev/disk/by-id/virtio-zk${i}-txlog` },
    ]),
  );
  const zk = new ZookeeperEnsemble(stack, 'zk', {
    members,
    memberIds: options.memberIds ?? numbers,
    dataDisk: 'zk-data',
    txnLogDisk: 'zk-txlog',
    clientNetworks: options.clientNetworks,
  });
  const users = new SmartStackService(stack, 'user-service', {
    ensemble: zk,
    port: 8080,
    localPort: 3210,
    mode: ServiceMode.HTTP,
    healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: options.rise ?? 3, fall: 2 }),
  });
  new HaproxySidecar(node('app1', 1024), 'sidecar', { provides: [users] });
  new HaproxySidecar(node('app2', 1024), 'sidecar', { provides: [users] });
  for (const p of options.userDataProviders ?? []) {
    new HaproxySidecar(node(p.name, 1024), 'sidecar', { provides: [users], runtime: AgentRuntime.node({ packageUrl: p.packageUrl }) });
  }
  new HaproxySidecar(node('web1', 1024), 'sidecar', { consumes: [users] });
  app.synth();
  return join(outdir, 'stacks', 'fleet');
}

/**
 * The application the stack expects on a provider: user-service on port 8080, a unit of its own
 * (so it comes back after a restart), answering /health and /whoami with the host's name.
 */
export function userServiceUnit(hostname: string): string {
  return [
    'set -e',
    'mkdir -p /srv/user-service',
    `printf 'ok\\n' > /srv/user-service/health`,
    `printf '${hostname}' > /srv/user-service/whoami`,
    `cat > /etc/systemd/system/user-service.service <<'EOF'`,
    '[Unit]',
    'Description=user-service (the application nerve checks)',
    '[Service]',
    'ExecStart=/usr/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory /srv/user-service',
    'Restart=always',
    '[Install]',
    'WantedBy=multi-user.target',
    'EOF',
    'systemctl daemon-reload',
    'systemctl enable --now user-service.service',
  ].join('\n');
}
