import { spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { DebianImage, DebianImageOptions, ensureDebianImage } from './debian-image';
import { FleetHost, FleetHostSpec } from './fleet-host';
import { FleetNetwork } from './fleet-network';
import { cleanupEarlierRuns, DEFAULT_STATE_DIR, FleetState } from './fleet-state';
import { imageKernel, VmHost, VmHostSpec } from './vm-host';

export interface FleetOptions {
  /**
   * The run's directory (overlays, disks, keys, logs, its state file). It must not exist or be empty;
   * it is removed when the fleet is destroyed.
   * @default a new directory under /var/tmp
   */
  readonly workDir?: string;
  /** Where runs record what they made. @default DEFAULT_STATE_DIR */
  readonly stateDir?: string;
  /** The image the hosts boot. @default the fleet image of Debian 12 */
  readonly image?: DebianImageOptions;
  /** The third octet of the fleet's 198.18.N.0/24. @default a free one */
  readonly subnet?: number;
  /** Bound of one host's boot, until SSH answers. @default 90 s */
  readonly bootTimeoutMs?: number;
  /** Bound of one VM's boot, until SSH answers and systemd is up. @default 300 s (TCG is slow) */
  readonly vmBootTimeoutMs?: number;
  /** Progress lines. @default stderr, prefixed `fleet: ` */
  readonly log?: (line: string) => void;
}

/** Seconds measured by a fleet, for the report. */
export interface FleetTimings {
  readonly imageSeconds: number;
  readonly imageBuilt: boolean;
  /** Each host's boots, in order. */
  readonly bootSeconds: Record<string, number[]>;
}

/**
 * Real Debian 12 hosts on this machine for tests: systemd containers on a bridge of the run's own,
 * in 198.18.0.0/15, reachable over SSH with a key made for the run. Needs root, systemd-nspawn,
 * debootstrap (see {@link fleetPrerequisites}). Everything made is recorded before it is made, so
 * `destroy()` — or the next run, when this one is killed — undoes exactly that.
 */
export class Fleet {
  /** Cleans what killed earlier runs left, gets the image, makes the bridge and the run's SSH key. */
  public static async create(options: FleetOptions = {}): Promise<Fleet> {
    const log = options.log ?? ((line: string) => process.stderr.write(`fleet: ${line}\n`));
    const missing = fleetPrerequisites();
    if (missing.length > 0) throw new Error(`fleet: this machine cannot run the fleet:\n  ${missing.join('\n  ')}`);
    const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
    await cleanupEarlierRuns(stateDir, log);
    const workDir = prepareWorkDir(options.workDir);
    const runId = randomBytes(4).toString('hex');
    const state = FleetState.create(runId, workDir, stateDir);
    try {
      const image = await ensureDebianImage({ log, ...options.image });
      const network = await FleetNetwork.create(state, { subnet: options.subnet });
      const keyPath = join(workDir, 'id_ed25519');
      const keygen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `fleet-${runId}`, '-f', keyPath], { encoding: 'utf8', timeout: 30_000 });
      if (keygen.status !== 0) throw new Error(`fleet: ssh-keygen failed: ${keygen.stderr}`);
      writeFileSync(join(workDir, 'known_hosts'), '');
      log(`run ${runId}: bridge ${network.bridge} ${network.gatewayAddress}/24 (MAC ${network.mac}), work dir ${workDir}`);
      return new Fleet(state, image, network, { workDir, keyPath, log, bootTimeoutMs: options.bootTimeoutMs ?? 90_000, vmBootTimeoutMs: options.vmBootTimeoutMs ?? 300_000 });
    } catch (e) {
      await state.cleanup(log);
      throw e;
    }
  }

  /** The run's directory. */
  public readonly workDir: string;
  /** The run's SSH private key (OpenSSH PEM), e.g. for `TF_VAR_ssh_private_key`. */
  public readonly sshPrivateKey: string;
  /** Its file, and the public key root accepts on every host. */
  public readonly sshPrivateKeyPath: string;
  public readonly sshPublicKey: string;
  /** `known_hosts` of every host made so far (address and host key). */
  public readonly knownHostsPath: string;

  private readonly hostsByName = new Map<string, FleetHost>();
  private readonly vmsByName = new Map<string, VmHost>();
  private readonly log: (line: string) => void;
  private readonly bootTimeoutMs: number;
  private readonly vmBootTimeoutMs: number;
  private destroyed = false;
  /** Numbers the hosts' machine names, never reused within a run. */
  private nextIndex = 1;

  private constructor(
    private readonly state: FleetState,
    /** The image the hosts boot. */
    public readonly image: DebianImage,
    /** The bridge and the fleet's /24. */
    public readonly network: FleetNetwork,
    settings: { workDir: string; keyPath: string; log: (line: string) => void; bootTimeoutMs: number; vmBootTimeoutMs: number },
  ) {
    this.workDir = settings.workDir;
    this.sshPrivateKeyPath = settings.keyPath;
    this.sshPrivateKey = readFileSync(settings.keyPath, 'utf8');
    this.sshPublicKey = readFileSync(`${settings.keyPath}.pub`, 'utf8').trim();
    this.knownHostsPath = join(settings.workDir, 'known_hosts');
    this.log = settings.log;
    this.bootTimeoutMs = settings.bootTimeoutMs;
    this.vmBootTimeoutMs = settings.vmBootTimeoutMs;
  }

  /** The run's id (names its bridge and its record). */
  public get runId(): string {
    return this.state.record.runId;
  }

  /** Host number `n` (2-254) of the fleet's /24, e.g. for a stack's `privateAddress` before the host exists. */
  public address(n: number): string {
    return this.network.hostAddress(n);
  }

  /** Makes and boots one host; resolves once SSH answers. */
  public async addHost(spec: FleetHostSpec): Promise<FleetHost> {
    return (await this.addHosts([spec]))[0];
  }

  /** Makes the hosts one after another (each records its overlay and disks), then boots them all at once. */
  public async addHosts(specs: readonly FleetHostSpec[]): Promise<FleetHost[]> {
    if (this.destroyed) throw new Error('fleet: addHosts: the fleet was destroyed');
    const names = specs.map((s) => s.name);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i || this.hostsByName.has(n));
    if (duplicate !== undefined) throw new Error(`fleet: host name = ${JSON.stringify(duplicate)}: given twice`);
    const hosts = await Promise.all(
      specs.map((spec) => FleetHost.create(this.hostContext(), spec, this.nextIndex++)),
    );
    hosts.forEach((h) => this.hostsByName.set(h.name, h));
    return hosts;
  }

  /**
   * Makes and boots one VM on the fleet's bridge (QEMU; needs the package qemu-system-x86, and the
   * image's kernel); resolves once SSH answers and systemd is up.
   */
  public async addVm(spec: VmHostSpec): Promise<VmHost> {
    if (this.destroyed) throw new Error('fleet: addVm: the fleet was destroyed');
    if (this.hostsByName.has(spec.name) || this.vmsByName.has(spec.name)) throw new Error(`fleet: host name = ${JSON.stringify(spec.name)}: given twice`);
    const kernel = imageKernel(this.image.rootfs);
    if (!kernel) throw new Error(`fleet: addVm(${spec.name}): the image ${this.image.key} has no kernel and initrd in /boot (its packages need linux-image-cloud-amd64, as FLEET_IMAGE_PACKAGES has)`);
    if (spawnSync('sh', ['-c', 'command -v qemu-system-x86_64 && command -v mkfs.ext4'], { stdio: 'ignore' }).status !== 0) {
      throw new Error(`fleet: addVm(${spec.name}): qemu-system-x86_64 or mkfs.ext4 is not on the PATH (Debian packages 'qemu-system-x86' and 'e2fsprogs'; 'dosfstools' and 'mtools' for a user-data seed)`);
    }
    const vm = await VmHost.create({ ...this.hostContext(), bootTimeoutMs: this.vmBootTimeoutMs }, kernel, spec, this.nextIndex++);
    this.vmsByName.set(vm.name, vm);
    return vm;
  }

  /** The VM of that name; throws when there is none. */
  public vm(name: string): VmHost {
    const vm = this.vmsByName.get(name);
    if (!vm) throw new Error(`fleet: no VM named ${JSON.stringify(name)} (VMs: ${[...this.vmsByName.keys()].join(', ') || 'none'})`);
    return vm;
  }

  /** The host of that name; throws when there is none. */
  public host(name: string): FleetHost {
    const host = this.hostsByName.get(name);
    if (!host) throw new Error(`fleet: no host named ${JSON.stringify(name)} (hosts: ${[...this.hostsByName.keys()].join(', ') || 'none'})`);
    return host;
  }

  /** The containers. */
  public get hosts(): FleetHost[] {
    return [...this.hostsByName.values()];
  }

  /** The VMs. */
  public get vms(): VmHost[] {
    return [...this.vmsByName.values()];
  }

  public get timings(): FleetTimings {
    return {
      imageSeconds: this.image.buildSeconds,
      imageBuilt: this.image.built,
      bootSeconds: Object.fromEntries([...this.hosts, ...this.vmsByName.values()].map((h) => [h.name, [...h.bootSeconds]])),
    };
  }

  /**
   * Kills every host, unmounts the overlays, frees the loop devices, removes the bridge and the work
   * directory — what the run recorded, nothing found by name. Safe to call twice.
   */
  public async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const started = Date.now();
    await this.state.cleanup(this.log);
    this.log(`run ${this.runId}: cleaned up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  private hostContext() {
    return {
      state: this.state,
      network: this.network,
      imageRootfs: this.image.rootfs,
      hostsDir: join(this.workDir, 'hosts'),
      machinePrefix: `fl${this.runId.slice(0, 6)}`,
      sshPublicKey: this.sshPublicKey,
      sshPrivateKeyPath: this.sshPrivateKeyPath,
      knownHostsPath: this.knownHostsPath,
      bootTimeoutMs: this.bootTimeoutMs,
      log: this.log,
    };
  }
}

function prepareWorkDir(workDir: string | undefined): string {
  if (workDir === undefined) {
    mkdirSync('/var/tmp', { recursive: true });
    return mkdtempSync('/var/tmp/cdktf-smartstack-fleet-');
  }
  if (existsSync(workDir) && readdirSync(workDir).length > 0) {
    throw new Error(`fleet: workDir = ${JSON.stringify(workDir)}: must not exist or be empty (the fleet removes it when done)`);
  }
  mkdirSync(workDir, { recursive: true });
  return workDir;
}

/**
 * What this machine lacks to run a fleet, one sentence each (empty when it has everything): root,
 * systemd-nspawn, debootstrap, overlayfs, loop devices and the tools the harness calls.
 */
export function fleetPrerequisites(): string[] {
  const missing: string[] = [];
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (uid !== 0) missing.push(`not root (uid ${uid}): the fleet mounts overlays, binds loop devices, makes a bridge and boots containers`);
  if (process.platform !== 'linux') missing.push(`not Linux (${process.platform})`);
  const programs: Array<[string, string]> = [
    ['systemd-nspawn', 'systemd-container'],
    ['debootstrap', 'debootstrap'],
    ['ssh', 'openssh-client'],
    ['ssh-keygen', 'openssh-client'],
    ['nsenter', 'util-linux'],
    ['unshare', 'util-linux'],
    ['losetup', 'mount'],
    ['ip', 'iproute2'],
  ];
  for (const [program, pkg] of programs) {
    if (spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status !== 0) missing.push(`${program} is not on the PATH (Debian package '${pkg}')`);
  }
  const filesystems = existsSync('/proc/filesystems') ? readFileSync('/proc/filesystems', 'utf8') : '';
  if (!/\boverlay\b/.test(filesystems) && !existsSync('/sys/module/overlay')) missing.push('the kernel has no overlay filesystem (modprobe overlay)');
  if (!existsSync('/dev/loop-control')) missing.push('no /dev/loop-control: the kernel has no loop devices (modprobe loop)');
  return missing;
}
