import { ChildProcess, spawn, spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { CommandResult, runBounded, runChecked, tail } from './bounded-command';
import { FleetNetwork } from './fleet-network';
import { FleetState, HostRecord, loopDevicesOf } from './fleet-state';
import { hostCgroupDirs, makeHostCgroups } from './host-cgroup';
import { containerInitOf, killRecorded, processRef, ProcessRef, sleep, waitGone } from './owned-process';
import { shellQuote } from '../render/shell-word';
import { sshClientOptions, writeHostIdentity } from './host-identity';
import { writeOfflineAptSource } from './offline-apt';

/** A data disk: a sparse file on a loop device, seen inside the host as `/dev/disk/by-id/<id>`. */
export interface FleetDiskSpec {
  /** The by-id name, as udev names a KVM guest's disk, e.g. `virtio-zk1-data`. */
  readonly id: string;
  /** @default 1024 */
  readonly sizeMiB?: number;
}

export interface FleetHostSpec {
  /** The host name (a DNS label); also names its directory and its record. */
  readonly name: string;
  /** Its address: a host number 2-254 in the fleet's /24, or a full address in it. */
  readonly address: number | string;
  /** @default none */
  readonly disks?: readonly FleetDiskSpec[];
  /**
   * A NoCloud seed (`/var/lib/cloud/seed/nocloud`) with this `user-data`, which cloud-init reads at
   * the first boot with the distribution's full module list.
   * @default none: cloud-init finds no data source and stays off
   */
  readonly userData?: string;
}

/** A disk as attached. */
export interface FleetDisk {
  readonly id: string;
  /** `/dev/disk/by-id/<id>` inside the host. */
  readonly path: string;
  /** The sparse file on this machine. */
  readonly file: string;
  /** The loop device it is bound to (`/dev/loopN`, the same name inside the host). */
  readonly loopDevice: string;
}

/** What a host needs from its fleet. */
export interface FleetHostContext {
  readonly state: FleetState;
  readonly network: FleetNetwork;
  readonly imageRootfs: string;
  readonly hostsDir: string;
  readonly machinePrefix: string;
  /** Root's authorized key (the run's public key) and the private key's file, for SSH. */
  readonly sshPublicKey: string;
  readonly sshPrivateKeyPath: string;
  readonly knownHostsPath: string;
  readonly bootTimeoutMs: number;
  readonly log: (line: string) => void;
}

const SYSTEMD_POWEROFF_SIGNAL = 38;
const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Checks a new host's name (a DNS label the fleet has not used) and its address (in the fleet's
 * /24: a host number or a full address); returns the address. `kind` names it in messages.
 */
export function newHostAddress(context: FleetHostContext, kind: 'host' | 'vm', name: string, address: number | string): string {
  if (!/^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/.test(name)) {
    throw new Error(`fleet: ${kind} name = ${JSON.stringify(name)}: expected a DNS label of lower-case letters, digits and '-' (up to 32 characters)`);
  }
  if (context.state.record.hosts.some((h) => h.name === name)) throw new Error(`fleet: ${kind} name = ${JSON.stringify(name)}: the fleet already has a host of that name`);
  const full = typeof address === 'number' ? context.network.hostAddress(address) : address;
  context.network.assertHostAddress(full, `${name}.address`);
  return full;
}

/**
 * One Debian host: a systemd container (`systemd-nspawn --boot`) on an overlay of the fleet's image,
 * with a static address on the fleet's bridge, SSH for root with the run's key, its own SSH host key,
 * and its data disks. Stopped, killed and restarted hosts keep their overlay, address and disks.
 */
export class FleetHost {
  /** Makes the host's overlay, identity and disks (recorded before each is made) and boots it. */
  public static async create(context: FleetHostContext, spec: FleetHostSpec, index: number): Promise<FleetHost> {
    const address = newHostAddress(context, 'host', spec.name, spec.address);
    const ids = new Set<string>();
    for (const disk of spec.disks ?? []) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/.test(disk.id)) throw new Error(`fleet: ${spec.name}.disks id = ${JSON.stringify(disk.id)}: expected a /dev/disk/by-id name (letters, digits, '.', '_', ':', '-')`);
      if (ids.has(disk.id)) throw new Error(`fleet: ${spec.name}.disks id = ${JSON.stringify(disk.id)}: given twice`);
      const size = disk.sizeMiB ?? 1024;
      if (!Number.isInteger(size) || size < 16 || size > 1024 * 1024) throw new Error(`fleet: ${spec.name}.disks[${disk.id}].sizeMiB = ${JSON.stringify(disk.sizeMiB)}: expected an integer 16-1048576`);
      ids.add(disk.id);
    }
    const host = new FleetHost(context, spec.name, address, `${context.machinePrefix}h${index}`, spec.disks ?? []);
    host.prepare(spec.userData);
    await host.boot();
    return host;
  }

  /** The host's root directory on this machine (the overlay). */
  public readonly rootDir: string;
  /** systemd-nspawn's output (the container's console) for this host. */
  public readonly consoleLog: string;
  /** Seconds each boot took, until SSH answered and systemd had finished starting up. */
  public readonly bootSeconds: number[] = [];

  private readonly dir: string;
  private readonly record: HostRecord;
  private hostKey = '';
  private attached: FleetDisk[] = [];
  private nspawn?: ChildProcess;
  private nspawnExited?: Promise<void>;

  private constructor(
    private readonly context: FleetHostContext,
    /** The host name. */
    public readonly name: string,
    /** Its address on the fleet's bridge. */
    public readonly address: string,
    /** The container's machine name (short: it names the bridge port `vb-<machine>`). */
    public readonly machine: string,
    private diskSpecs: readonly FleetDiskSpec[],
  ) {
    this.dir = join(context.hostsDir, name);
    this.rootDir = join(this.dir, 'root');
    this.consoleLog = join(this.dir, 'console.log');
    this.record = context.state.host(name);
  }

  /** `ssh-ed25519 AAAA…` — the host's public host key, as VdsNode's `sshHostKey` takes it. */
  public get sshHostKey(): string {
    return this.hostKey;
  }

  /** The `known_hosts` line: `<address> ssh-ed25519 AAAA…`. */
  public get knownHostsLine(): string {
    return `${this.address} ${this.hostKey}`;
  }

  /** The disks as attached now. */
  public get disks(): readonly FleetDisk[] {
    return this.attached;
  }

  /** True while the container runs. */
  public get running(): boolean {
    return this.nspawn !== undefined && this.nspawn.exitCode === null && this.nspawn.signalCode === null;
  }

  /** PID (on this machine) of the container's init, PID 1 inside; undefined when it is not running. */
  public get initPid(): number | undefined {
    return this.running ? this.record.init?.pid : undefined;
  }

  /**
   * Runs a shell command on the host over SSH as root, the way Terraform reaches it (after checking the
   * route goes via the fleet's bridge). A non-zero exit is returned, not thrown.
   */
  public async ssh(command: string, options: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
    await this.context.network.assertRoute(this.address);
    return runBounded(['ssh', ...this.sshOptions(5), `root@${this.address}`, '--', command], {
      timeoutMs: options.timeoutMs ?? 60_000,
      input: options.input,
      env: { PATH: process.env.PATH ?? HOST_PATH, HOME: process.env.HOME ?? '/root' },
    });
  }

  /**
   * Runs a shell command inside the host without the network: `nsenter` into its init's namespaces
   * (mount, UTS, IPC, network, PID, cgroup, root). Works while SSH is down. A non-zero exit is returned.
   * The command is not under the host's systemd: start anything that must keep running with
   * `systemd-run --unit=NAME …` inside it.
   */
  public async exec(command: string, options: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
    const init = this.requireRunning('exec');
    const namespaces = ['--mount', '--uts', '--ipc', '--net', '--pid', '--cgroup', '--root', '--wd'];
    return runBounded(['nsenter', `--target=${init.pid}`, ...namespaces, '--', '/bin/sh', '-c', command], {
      timeoutMs: options.timeoutMs ?? 60_000,
      input: options.input,
      env: { PATH: HOST_PATH, HOME: '/root', LANG: 'C.UTF-8' },
    });
  }

  /** Like {@link exec}, but a non-zero exit throws, naming the host, the command and its output. */
  public async execChecked(command: string, options: { timeoutMs?: number; input?: string } = {}): Promise<string> {
    const r = await this.exec(command, options);
    if (r.status !== 0) throw new Error(`${this.name}: ${command} ${r.timedOut ? 'timed out' : `exited ${r.status ?? r.signal}`}:\n${tail(r.output, 4000)}`);
    return r.stdout;
  }

  /** A file's content as the host sees it (its own mounts included); throws when it cannot be read. */
  public async readFile(path: string): Promise<string> {
    const r = await this.exec(`exec cat -- ${shellQuote(path)}`);
    if (r.status !== 0) throw new Error(`${this.name}: cannot read ${path}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Abrupt death: SIGKILL to the container's init (killing systemd-nspawn would leave the container running). */
  public async kill(): Promise<void> {
    const init = this.requireRunning('kill');
    killRecorded(init);
    await this.waitStopped(15_000, 'SIGKILL of its init');
    this.context.log(`${this.name}: killed (SIGKILL to init ${init.pid})`);
  }

  /** Clean shutdown (systemd's poweroff, SIGRTMIN+4 to init); bounded, then killed. */
  public async stop(timeoutMs = 60_000): Promise<void> {
    if (!this.running) return;
    const init = this.requireRunning('stop');
    // systemd powers off on SIGRTMIN+4: 38 on Linux (glibc's SIGRTMIN is 34); Node has no name for it.
    killRecorded(init, SYSTEMD_POWEROFF_SIGNAL);
    try {
      await this.waitStopped(timeoutMs, 'poweroff');
    } catch {
      this.context.log(`${this.name}: did not power off within ${timeoutMs / 1000} s; killing it`);
      await this.kill();
    }
  }

  /**
   * Takes a disk away from a stopped host, as if it had been pulled: from its next boot the host has no
   * such device (no bind, no by-id link). The disk file keeps its data until the fleet is destroyed.
   */
  public detachDisk(id: string): void {
    if (this.running) throw new Error(`${this.name}: detachDisk(${JSON.stringify(id)}): stop the host first`);
    if (!this.diskSpecs.some((d) => d.id === id)) {
      throw new Error(`${this.name}: detachDisk: id = ${JSON.stringify(id)}: no such disk (disks: ${this.diskSpecs.map((d) => d.id).join(', ') || 'none'})`);
    }
    this.diskSpecs = this.diskSpecs.filter((d) => d.id !== id);
    this.attached = this.attached.filter((d) => d.id !== id);
  }

  /** Boots the host again on the same overlay, address and disks (stopping it first if it runs). */
  public async restart(): Promise<void> {
    await this.stop();
    await this.boot();
  }

  /** Boots the container and waits until SSH answers and systemd has started up (bounded). */
  public async boot(): Promise<void> {
    if (this.running) throw new Error(`${this.name}: boot: already running`);
    const started = Date.now();
    await this.attachDisks();
    const args = [
      `--directory=${this.rootDir}`,
      '--boot',
      '--register=no', // there is no system bus to register with
      '--keep-unit',
      `--machine=${this.machine}`,
      `--hostname=${this.name}`,
      `--network-bridge=${this.context.network.bridge}`,
      '--resolv-conf=off',
      '--timezone=off',
      '--link-journal=no',
      ...this.attached.map((d) => `--bind=${d.loopDevice}`),
    ];
    const cgroups = hostCgroupDirs(this.machine);
    this.context.state.update(() => {
      this.record.cgroups = cgroups;
    });
    makeHostCgroups(cgroups);
    const logFd = openSync(this.consoleLog, 'a');
    writeFileSync(logFd, `\n=== boot ${new Date().toISOString()}: systemd-nspawn ${args.join(' ')} (cgroups ${cgroups.join(', ')})\n`);
    // The shell moves itself into the host's own cgroups, then becomes systemd-nspawn (same PID).
    const enter = 'for dir in $FLEET_CGROUPS; do echo $$ >"$dir/cgroup.procs" || exit 97; done; exec systemd-nspawn "$@"';
    const child = spawn('sh', ['-c', enter, 'sh', ...args], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { PATH: HOST_PATH, LANG: 'C.UTF-8', FLEET_CGROUPS: cgroups.join(' ') },
    });
    closeSync(logFd);
    child.unref();
    this.nspawn = child;
    this.nspawnExited = new Promise((resolve) => child.once('exit', () => resolve()));
    const nspawnRef = child.pid === undefined ? undefined : processRef(child.pid);
    if (!nspawnRef) throw new Error(`${this.name}: systemd-nspawn did not start:\n${tail(readFileSync(this.consoleLog, 'utf8'), 3000)}`);
    this.context.state.update(() => {
      this.record.nspawn = nspawnRef;
      this.record.init = undefined;
    });
    const init = await this.findInit(nspawnRef.pid, started + this.context.bootTimeoutMs);
    this.context.state.update(() => {
      this.record.init = init;
    });
    await this.waitForSsh(started + this.context.bootTimeoutMs);
    const left = Math.max(1, Math.round((started + this.context.bootTimeoutMs - Date.now()) / 1000));
    const state = await this.exec(`timeout ${left} systemctl is-system-running --wait`, { timeoutMs: (left + 5) * 1000 });
    const seconds = (Date.now() - started) / 1000;
    this.bootSeconds.push(seconds);
    const failed = state.stdout.trim() === 'running' ? '' : (await this.exec('systemctl --failed --no-legend --plain | cut -d" " -f1 | xargs')).stdout.trim();
    this.context.log(`${this.name}: ${this.address} booted in ${seconds.toFixed(1)} s (systemd: ${state.stdout.trim() || 'no answer'}${failed ? `; failed: ${failed}` : ''})`);
  }

  /** The overlay on the image, the host's identity files, its disk files, and a NoCloud seed when given. */
  private prepare(userData?: string): void {
    const upper = join(this.dir, 'upper');
    const work = join(this.dir, 'work');
    for (const d of [upper, work, this.rootDir, join(this.dir, 'disks')]) mkdirSync(d, { recursive: true });
    this.context.state.update(() => {
      this.record.overlay = this.rootDir;
    });
    // Synchronous on purpose: the mount is recorded above, then made before anything else can interrupt.
    mountOverlay(this.context.imageRootfs, upper, work, this.rootDir);
    const root = this.rootDir;
    mkdirSync(join(root, 'etc/systemd/network'), { recursive: true });
    // Static address, no gateway, no DNS: the host reaches nothing but the fleet's /24.
    writeFileSync(
      join(root, 'etc/systemd/network/50-fleet-host0.network'),
      `[Match]\nName=host0\n\n[Network]\nAddress=${this.address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`,
    );
    this.hostKey = writeHostIdentity(root, this.name, this.address, this.context);
    if (userData !== undefined) {
      const seed = join(root, 'var/lib/cloud/seed/nocloud');
      mkdirSync(seed, { recursive: true, mode: 0o700 });
      writeFileSync(join(seed, 'user-data'), userData, { mode: 0o600 });
      writeFileSync(join(seed, 'meta-data'), `instance-id: fleet-${this.name}-${randomBytes(4).toString('hex')}\nlocal-hostname: ${this.name}\n`);
      // The container's network is the harness's; apt finds an empty local source (see writeOfflineAptSource).
      mkdirSync(join(root, 'etc/cloud/cloud.cfg.d'), { recursive: true });
      writeFileSync(join(root, 'etc/cloud/cloud.cfg.d/20-fleet-network.cfg'), '# Made by the fleet harness.\nnetwork: {config: disabled}\n');
      writeOfflineAptSource(root);
    }
    for (const disk of this.diskSpecs) {
      const file = this.diskFile(disk.id);
      this.context.state.update(() => {
        this.record.diskFiles.push(file);
      });
      const fd = openSync(file, 'w');
      closeSync(fd);
      runSync(['truncate', '-s', `${disk.sizeMiB ?? 1024}M`, file]);
    }
  }

  /** Binds each disk file to a loop device (reusing the one still bound) and writes the by-id links. */
  private async attachDisks(): Promise<void> {
    const attached: FleetDisk[] = [];
    for (const disk of this.diskSpecs) {
      const file = this.diskFile(disk.id);
      let loopDevice = (await loopDevicesOf(file))[0];
      if (!loopDevice) loopDevice = (await runChecked(['losetup', '--find', '--show', file], { timeoutMs: 10_000 })).stdout.trim();
      attached.push({ id: disk.id, path: `/dev/disk/by-id/${disk.id}`, file, loopDevice });
    }
    this.attached = attached;
    // udev makes these links on a VM; in the container systemd-tmpfiles does at boot. A node bound at the
    // by-id path itself would not do: cloud-init looks for /sys/block/<name> and drops the mount.
    const lines = attached.map((d) => `L+ ${d.path} - - - - ../../${d.loopDevice.replace('/dev/', '')}`);
    writeFileSync(join(this.rootDir, 'etc/tmpfiles.d/fleet-disks.conf'), `# Made by the fleet harness at each boot.\n${lines.join('\n')}\n`);
  }

  private diskFile(id: string): string {
    return join(this.dir, 'disks', `${id}.img`);
  }

  /** The container's init: the child of systemd-nspawn that is PID 1 of its own PID namespace. */
  private async findInit(nspawnPid: number, deadline: number): Promise<ProcessRef> {
    while (Date.now() < deadline && this.running) {
      const init = containerInitOf(nspawnPid);
      if (init) return init;
      await sleep(50);
    }
    throw new Error(`${this.name}: the container's init did not start:\n${tail(readFileSync(this.consoleLog, 'utf8'), 3000)}`);
  }

  private async waitForSsh(deadline: number): Promise<void> {
    await this.context.network.assertRoute(this.address);
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name}: the container stopped while booting:\n${tail(readFileSync(this.consoleLog, 'utf8'), 3000)}`);
      const r = await runBounded(['ssh', ...this.sshOptions(2), `root@${this.address}`, 'true'], {
        timeoutMs: 5000,
        env: { PATH: process.env.PATH ?? HOST_PATH, HOME: process.env.HOME ?? '/root' },
      });
      if (r.status === 0) return;
      last = r.output.trim();
      // A neighbour entry left FAILED while the host was down can outlive its return: ask again.
      if (last.includes('No route to host')) await runBounded(['ip', 'neigh', 'flush', 'to', this.address, 'dev', this.context.network.bridge], { timeoutMs: 5000 });
      await sleep(200);
    }
    // What the host itself says about its network, read without it.
    const inside = await this.exec('ip -o addr; ip -o link; networkctl list --no-pager; systemctl --failed --no-pager; journalctl -b -u systemd-networkd --no-pager | tail -n 20', { timeoutMs: 15_000 })
      .then((r) => r.output.trim(), (e: Error) => `(cannot look inside: ${e.message})`);
    throw new Error(
      `${this.name}: SSH on ${this.address} did not answer within ${this.context.bootTimeoutMs / 1000} s (last: ${last});\n` +
        `inside the host:\n${tail(inside, 3000)}\nconsole:\n${tail(readFileSync(this.consoleLog, 'utf8'), 3000)}`,
    );
  }

  private sshOptions(connectTimeoutSeconds: number): string[] {
    return sshClientOptions(this.context, connectTimeoutSeconds);
  }

  private requireRunning(what: string): ProcessRef {
    const init = this.record.init;
    if (!this.running || !init) throw new Error(`${this.name}: ${what}: the host is not running`);
    return init;
  }

  private async waitStopped(timeoutMs: number, after: string): Promise<void> {
    const exited = this.nspawnExited ?? Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const late = await Promise.race([exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) throw new Error(`${this.name}: still running ${timeoutMs / 1000} s after ${after}`);
    const init = this.record.init;
    if (init && !(await waitGone(init, 5000))) throw new Error(`${this.name}: init ${init.pid} still there after systemd-nspawn exited`);
    this.context.state.update(() => {
      this.record.nspawn = undefined;
      this.record.init = undefined;
    });
  }
}

function mountOverlay(lower: string, upper: string, work: string, target: string): void {
  const r = runSync(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, target]);
  if (r.status !== 0) throw new Error(`fleet: mounting the overlay on ${target} failed: ${r.output}`);
}

function runSync(argv: string[]): { status: number | null; output: string } {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

