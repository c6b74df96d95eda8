import { ChildProcess, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { CommandResult, runBounded, runChecked, tail } from './bounded-command';
import { FleetHostContext, newHostAddress } from './fleet-host';
import { HostRecord, mountPointsUnder } from './fleet-state';
import { killRecorded, processRef, sleep, waitGone } from './owned-process';
import { shellQuote } from '../render/shell-word';
import { sshClientOptions, writeHostIdentity } from './host-identity';
import { writeOfflineAptSource } from './offline-apt';

/** A data disk of a VM: an NVMe controller with this serial, backed by a sparse file. */
export interface VmDiskSpec {
  /** The controller's serial (up to 20 characters): udev names the disk `/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_<serial>`. */
  readonly serial: string;
  /** @default 1024 */
  readonly sizeMiB?: number;
}

export interface VmHostSpec {
  /** The host name (a DNS label). */
  readonly name: string;
  /** A host number 2-254 in the fleet's /24, or a full address in it. */
  readonly address: number | string;
  /** @default none */
  readonly disks?: readonly VmDiskSpec[];
  /** @default 1536 */
  readonly memoryMiB?: number;
  /** @default 2 */
  readonly cpus?: number;
  /**
   * A NoCloud seed: the VM gets a `cidata` disk with this `user-data` (and a `meta-data` naming the
   * instance), which cloud-init reads at the first boot with the distribution's full module list.
   * Gzipped bytes are taken as they are (cloud-init unpacks them).
   * @default none: cloud-init finds no data source and stays off
   */
  readonly userData?: string | Buffer;
}

/** A data disk as attached. */
export interface VmDisk {
  readonly serial: string;
  /** The stable path inside the guest. */
  readonly path: string;
  /** The sparse file on this machine. */
  readonly file: string;
}

/** The kernel and initrd of the image, booted directly. */
export interface VmKernel {
  readonly vmlinuz: string;
  readonly initrd: string;
}

const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ROOT_DISK_MIB = 6144;
/** What the Debian package of QEMU's NVMe controller reports as its model; udev puts it in the by-id name. */
const NVME_MODEL = 'QEMU_NVMe_Ctrl';

/** The kernel the image holds (package `linux-image-cloud-amd64`), or undefined when it has none. */
export function imageKernel(rootfs: string): VmKernel | undefined {
  const boot = join(rootfs, 'boot');
  if (!existsSync(boot)) return undefined;
  const versions = readdirSync(boot).filter((f) => f.startsWith('vmlinuz-')).map((f) => f.slice('vmlinuz-'.length)).sort();
  const version = versions.find((v) => existsSync(join(boot, `initrd.img-${v}`)));
  return version === undefined ? undefined : { vmlinuz: join(boot, `vmlinuz-${version}`), initrd: join(boot, `initrd.img-${version}`) };
}

/** The by-id path of an NVMe disk with this serial, as udev names it in the guest. */
export function nvmeDiskPath(serial: string): string {
  return `/dev/disk/by-id/nvme-${NVME_MODEL}_${serial}`;
}

/**
 * One Debian host as a virtual machine: QEMU (KVM when /dev/kvm exists, TCG otherwise) booting the
 * image's own kernel and initrd, a root disk made from the image, data disks as NVMe controllers
 * with serials, a tap device on the fleet's bridge (no other network: never QEMU's user-mode one),
 * its serial console appended to `console.log`. Disks are opened with `cache=writethrough`, so a
 * killed QEMU is a power loss of the guest, not of this machine's page cache.
 */
export class VmHost {
  public static async create(context: FleetHostContext, kernel: VmKernel, spec: VmHostSpec, index: number): Promise<VmHost> {
    const address = newHostAddress(context, 'vm', spec.name, spec.address);
    const serials = new Set<string>();
    for (const disk of spec.disks ?? []) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$/.test(disk.serial)) throw new Error(`fleet: ${spec.name}.disks serial = ${JSON.stringify(disk.serial)}: expected up to 20 letters, digits, '.', '_' or '-'`);
      if (serials.has(disk.serial)) throw new Error(`fleet: ${spec.name}.disks serial = ${JSON.stringify(disk.serial)}: given twice`);
      const size = disk.sizeMiB ?? 1024;
      if (!Number.isInteger(size) || size < 16 || size > 1024 * 1024) throw new Error(`fleet: ${spec.name}.disks[${disk.serial}].sizeMiB = ${JSON.stringify(disk.sizeMiB)}: expected an integer 16-1048576`);
      serials.add(disk.serial);
    }
    const memoryMiB = spec.memoryMiB ?? 1536;
    if (!Number.isInteger(memoryMiB) || memoryMiB < 256) throw new Error(`fleet: ${spec.name}.memoryMiB = ${JSON.stringify(spec.memoryMiB)}: expected a whole number of MiB, at least 256`);
    const cpus = spec.cpus ?? 2;
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new Error(`fleet: ${spec.name}.cpus = ${JSON.stringify(spec.cpus)}: expected 1-16`);
    const vm = new VmHost(context, kernel, spec.name, address, `${context.machinePrefix}v${index}`, spec.disks ?? [], { memoryMiB, cpus, userData: spec.userData });
    await vm.prepare();
    await vm.boot();
    return vm;
  }

  /** The serial console, appended at each boot. */
  public readonly consoleLog: string;
  /** Seconds each boot took, until SSH answered and systemd had finished starting up. */
  public readonly bootSeconds: number[] = [];
  /** Whether QEMU runs with KVM (false: TCG, emulated). */
  public readonly kvm = existsSync('/dev/kvm');

  private readonly dir: string;
  private readonly record: HostRecord;
  private readonly mac: string;
  private hostKey = '';
  private qemu?: ChildProcess;
  private qemuExited?: Promise<void>;
  private detached: VmDiskSpec[] = [];

  private constructor(
    private readonly context: FleetHostContext,
    private readonly kernel: VmKernel,
    /** The host name. */
    public readonly name: string,
    /** Its address on the fleet's bridge. */
    public readonly address: string,
    /** Short name: it names the tap device `<machine>t`. */
    public readonly machine: string,
    private diskSpecs: readonly VmDiskSpec[],
    private readonly settings: { memoryMiB: number; cpus: number; userData?: string | Buffer },
  ) {
    this.dir = join(context.hostsDir, name);
    this.consoleLog = join(this.dir, 'console.log');
    this.record = context.state.host(name);
    const [, , c, d] = address.split('.').map(Number);
    // Locally administered, unique in the fleet: the address's last two octets.
    this.mac = `52:54:00:5c:${c.toString(16).padStart(2, '0')}:${d.toString(16).padStart(2, '0')}`;
  }

  /** `ssh-ed25519 AAAA…`, as VdsNode's `sshHostKey` takes it. */
  public get sshHostKey(): string {
    return this.hostKey;
  }

  /** The `known_hosts` line: `<address> ssh-ed25519 AAAA…`. */
  public get knownHostsLine(): string {
    return `${this.address} ${this.hostKey}`;
  }

  /** The data disks attached at the next (or current) boot. */
  public get disks(): VmDisk[] {
    return this.diskSpecs.map((d) => ({ serial: d.serial, path: nvmeDiskPath(d.serial), file: this.diskFile(d.serial) }));
  }

  /** True while QEMU runs. */
  public get running(): boolean {
    return this.qemu !== undefined && this.qemu.exitCode === null && this.qemu.signalCode === null;
  }

  /** The tap device on the fleet's bridge. */
  public get tap(): string {
    return `${this.machine}t`;
  }

  /** Runs a shell command on the VM over SSH as root (route checked first). A non-zero exit is returned. */
  public async ssh(command: string, options: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
    await this.context.network.assertRoute(this.address);
    return runBounded(['ssh', ...this.sshOptions(5), `root@${this.address}`, '--', command], {
      timeoutMs: options.timeoutMs ?? 60_000,
      input: options.input,
      env: { PATH: process.env.PATH ?? HOST_PATH, HOME: process.env.HOME ?? '/root' },
    });
  }

  /** Like {@link ssh}, but a non-zero exit throws, naming the host, the command and its output. */
  public async sshChecked(command: string, options: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.ssh(command, options);
    if (r.status !== 0) throw new Error(`${this.name}: ${command} ${r.timedOut ? 'timed out' : `exited ${r.status ?? r.signal}`}:\n${tail(r.output, 4000)}`);
    return r.stdout;
  }

  /** {@link ssh}: a VM has no namespaces to enter, so commands that run inside a container with `exec` run over SSH. */
  public async exec(command: string, options: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
    return this.ssh(command, options);
  }

  /** {@link sshChecked}, as `exec` is {@link ssh}. */
  public async execChecked(command: string, options: { timeoutMs?: number } = {}): Promise<string> {
    return this.sshChecked(command, options);
  }

  /** A file's content as the guest sees it. */
  public async readFile(path: string): Promise<string> {
    return this.sshChecked(`exec cat -- ${shellQuote(path)}`);
  }

  /** Power loss: SIGKILL to QEMU. What the guest had not written through to its disk files is gone. */
  public async kill(): Promise<void> {
    const qemu = this.record.qemu;
    if (!this.running || !qemu) throw new Error(`${this.name}: kill: the VM is not running`);
    killRecorded(qemu);
    await this.waitStopped(15_000, 'SIGKILL of QEMU');
    this.context.log(`${this.name}: powered off (SIGKILL to QEMU ${qemu.pid})`);
  }

  /** Clean shutdown (`systemctl poweroff` in the guest); bounded, then killed. */
  public async stop(timeoutMs = 90_000): Promise<void> {
    if (!this.running) return;
    await this.ssh('systemctl poweroff', { timeoutMs: 15_000 });
    try {
      await this.waitStopped(timeoutMs, 'poweroff');
    } catch {
      this.context.log(`${this.name}: did not power off within ${timeoutMs / 1000} s; killing it`);
      await this.kill();
    }
  }

  /** A reboot of the guest (`systemctl reboot`, QEMU keeps running); resolves once it is up again. */
  public async reboot(): Promise<void> {
    const started = Date.now();
    const bootId = (await this.sshChecked('cat /proc/sys/kernel/random/boot_id')).trim();
    await this.ssh('systemctl reboot', { timeoutMs: 15_000 });
    const deadline = started + this.context.bootTimeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name}: QEMU exited during the reboot:\n${tail(readFileSync(this.consoleLog, 'utf8'), 3000)}`);
      const r = await this.ssh('cat /proc/sys/kernel/random/boot_id', { timeoutMs: 8000 });
      if (r.status === 0 && r.stdout.trim() !== bootId) break;
      await sleep(500);
    }
    await this.waitBooted(started, deadline);
  }

  /** Takes a disk away from a stopped VM, as if pulled: the next boots have no such controller. Its file keeps the data. */
  public detachDisk(serial: string): void {
    if (this.running) throw new Error(`${this.name}: detachDisk(${JSON.stringify(serial)}): stop the VM first`);
    if (!this.diskSpecs.some((d) => d.serial === serial)) {
      throw new Error(`${this.name}: detachDisk: serial = ${JSON.stringify(serial)}: no such disk (disks: ${this.diskSpecs.map((d) => d.serial).join(', ') || 'none'})`);
    }
    this.detached.push(...this.diskSpecs.filter((d) => d.serial === serial));
    this.diskSpecs = this.diskSpecs.filter((d) => d.serial !== serial);
  }

  /** Puts a detached disk back, with its data, for the next boot. */
  public reattachDisk(serial: string): void {
    if (this.running) throw new Error(`${this.name}: reattachDisk(${JSON.stringify(serial)}): stop the VM first`);
    const disk = this.detached.find((d) => d.serial === serial);
    if (!disk) throw new Error(`${this.name}: reattachDisk: serial = ${JSON.stringify(serial)}: not a detached disk`);
    this.detached = this.detached.filter((d) => d !== disk);
    this.diskSpecs = [...this.diskSpecs, disk];
  }

  /** Boots QEMU on the same disks, address and tap (stopping it first if it runs). */
  public async restart(): Promise<void> {
    await this.stop();
    await this.boot();
  }

  /**
   * Starts QEMU and waits until SSH answers and systemd has started up (bounded). A guest that
   * booted but never answers is power-cycled once, with what this machine saw of it in the log.
   */
  public async boot(): Promise<void> {
    if (this.running) throw new Error(`${this.name}: boot: already running`);
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      const stderr = this.startQemu();
      try {
        await this.waitBooted(started, started + this.context.bootTimeoutMs);
        return;
      } catch (e) {
        const message = `${(e as Error).message}${stderr() ? `\nQEMU: ${stderr()}` : ''}`;
        if (attempt > 1 || !this.running) throw new Error(message);
        this.context.log(`${this.name}: no SSH after ${this.context.bootTimeoutMs / 1000} s; power-cycling it once. What this machine saw:\n${await this.networkView()}`);
        await this.kill();
      }
    }
  }

  /** Spawns QEMU and records it; returns what QEMU has written on stderr so far. */
  private startQemu(): () => string {
    const args = this.qemuArgs();
    const logFd = openSync(this.consoleLog, 'a');
    writeFileSync(logFd, `\n=== boot ${new Date().toISOString()}: qemu-system-x86_64 ${args.join(' ')}\n`);
    closeSync(logFd);
    const child = spawn('qemu-system-x86_64', args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: HOST_PATH, LANG: 'C.UTF-8' } });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    child.unref();
    this.qemu = child;
    this.qemuExited = new Promise((resolve) => child.once('exit', () => resolve()));
    const ref = child.pid === undefined ? undefined : processRef(child.pid);
    if (!ref) throw new Error(`${this.name}: QEMU did not start: ${stderr}`);
    this.context.state.update(() => {
      this.record.qemu = ref;
    });
    return () => stderr;
  }

  /** The VM's address as this machine sees it: neighbour entry, tap, bridge forwarding entry, and a ping. */
  private async networkView(): Promise<string> {
    const bridge = this.context.network.bridge;
    const commands = [
      ['ip', 'neigh', 'show', 'to', this.address, 'dev', bridge],
      ['ip', '-d', 'link', 'show', this.tap],
      ['bridge', 'fdb', 'show', 'br', bridge],
      ['ping', '-c', '2', '-W', '1', this.address],
    ];
    const out: string[] = [];
    for (const argv of commands) {
      const seen = await runBounded(argv, { timeoutMs: 10_000 }).then((r) => r.output.trim(), (e: Error) => `(${e.message})`);
      out.push(`$ ${argv.join(' ')}\n${seen}`);
    }
    return out.join('\n');
  }

  /** The root disk from the image with the host's identity, the data disk files, and the tap. */
  private async prepare(): Promise<void> {
    const root = join(this.dir, 'root');
    const upper = join(this.dir, 'upper');
    const work = join(this.dir, 'work');
    for (const d of [root, upper, work, join(this.dir, 'disks')]) mkdirSync(d, { recursive: true });
    this.context.state.update(() => {
      this.record.overlay = root;
    });
    await runChecked(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${this.context.imageRootfs},upperdir=${upper},workdir=${work}`, root], { timeoutMs: 30_000 });
    try {
      this.writeIdentity(root);
      const rootDisk = join(this.dir, 'disks', 'root.img');
      this.context.state.update(() => {
        this.record.diskFiles.push(rootDisk);
      });
      await runChecked(['truncate', '-s', `${ROOT_DISK_MIB}M`, rootDisk], { timeoutMs: 10_000 });
      const started = Date.now();
      await runChecked(['mkfs.ext4', '-q', '-F', '-L', 'fleetroot', '-d', root, rootDisk], { timeoutMs: 600_000 });
      this.context.log(`${this.name}: root disk made from the image in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      await runBounded(['umount', root], { timeoutMs: 30_000 });
    }
    if (mountPointsUnder(root).length === 0) {
      rmSync(upper, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      this.context.state.update(() => {
        this.record.overlay = undefined;
      });
    }
    for (const disk of this.diskSpecs) {
      const file = this.diskFile(disk.serial);
      this.context.state.update(() => {
        this.record.diskFiles.push(file);
      });
      await runChecked(['truncate', '-s', `${disk.sizeMiB ?? 1024}M`, file], { timeoutMs: 10_000 });
    }
    if (this.settings.userData !== undefined) await this.writeSeed();
    this.context.state.update(() => {
      this.record.tap = this.tap;
    });
    await runChecked(['ip', 'tuntap', 'add', 'dev', this.tap, 'mode', 'tap'], { timeoutMs: 10_000 });
    await runChecked(['ip', 'link', 'set', this.tap, 'master', this.context.network.bridge], { timeoutMs: 10_000 });
    await runChecked(['ip', 'link', 'set', this.tap, 'up'], { timeoutMs: 10_000 });
  }

  /** Host name, machine id, static address by MAC, SSH host key and root's key: what a VDS image brings. */
  private writeIdentity(root: string): void {
    writeFileSync(join(root, 'etc/fstab'), '# Made by the fleet harness.\n/dev/vda / ext4 defaults,noatime 0 1\n');
    mkdirSync(join(root, 'etc/systemd/network'), { recursive: true });
    // Static address, no gateway, no DNS: the VM reaches nothing but the fleet's /24.
    writeFileSync(
      join(root, 'etc/systemd/network/50-fleet-vm.network'),
      `[Match]\nMACAddress=${this.mac}\n\n[Network]\nAddress=${this.address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`,
    );
    // The provider's network configuration is the image's, as on a VDS whose image sets it: never cloud-init's fallback (DHCP).
    mkdirSync(join(root, 'etc/cloud/cloud.cfg.d'), { recursive: true });
    writeFileSync(join(root, 'etc/cloud/cloud.cfg.d/20-fleet-network.cfg'), '# Made by the fleet harness.\nnetwork: {config: disabled}\n');
    writeOfflineAptSource(root);
    this.hostKey = writeHostIdentity(root, this.name, this.address, this.context);
  }

  /** The NoCloud seed as a VFAT disk labelled `cidata`, as cloud-init looks for it. */
  private async writeSeed(): Promise<void> {
    const seedDir = join(this.dir, 'seed');
    mkdirSync(seedDir, { recursive: true });
    writeFileSync(join(seedDir, 'user-data'), this.settings.userData!);
    writeFileSync(join(seedDir, 'meta-data'), `instance-id: fleet-${this.name}-${randomBytes(4).toString('hex')}\nlocal-hostname: ${this.name}\n`);
    const image = join(this.dir, 'disks', 'cidata.img');
    this.context.state.update(() => {
      this.record.diskFiles.push(image);
    });
    await runChecked(['mkfs.vfat', '-C', '-n', 'CIDATA', image, '2048'], { timeoutMs: 30_000 });
    await runChecked(['mcopy', '-i', image, join(seedDir, 'user-data'), join(seedDir, 'meta-data'), '::'], { timeoutMs: 30_000 });
  }

  private qemuArgs(): string[] {
    const drive = (file: string, id: string) => `file=${file},if=none,id=${id},format=raw,cache=writethrough,aio=threads`;
    const seed = join(this.dir, 'disks', 'cidata.img');
    return [
      '-name', this.machine,
      '-machine', `q35,accel=${this.kvm ? 'kvm' : 'tcg'}`,
      '-cpu', this.kvm ? 'host' : 'max',
      '-smp', String(this.settings.cpus),
      '-m', String(this.settings.memoryMiB),
      '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
      '-kernel', this.kernel.vmlinuz,
      '-initrd', this.kernel.initrd,
      '-append', 'root=/dev/vda rw console=ttyS0 panic=-1',
      '-chardev', `file,id=console,path=${this.consoleLog},append=on`,
      '-serial', 'chardev:console',
      '-drive', drive(join(this.dir, 'disks', 'root.img'), 'root'),
      '-device', 'virtio-blk-pci,drive=root',
      ...this.diskSpecs.flatMap((d, i) => ['-drive', drive(this.diskFile(d.serial), `data${i}`), '-device', `nvme,drive=data${i},serial=${d.serial}`]),
      ...(existsSync(seed) ? ['-drive', `file=${seed},if=none,id=seed,format=raw,readonly=on`, '-device', 'virtio-blk-pci,drive=seed'] : []),
      '-netdev', `tap,id=net0,ifname=${this.tap},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=net0,mac=${this.mac}`,
    ];
  }

  private diskFile(serial: string): string {
    return join(this.dir, 'disks', `${serial}.img`);
  }

  private async waitBooted(started: number, deadline: number): Promise<void> {
    await this.context.network.assertRoute(this.address);
    let last = '';
    let lastFlush = Date.now();
    for (;;) {
      if (!this.running) throw new Error(`${this.name}: QEMU exited while booting:\n${tail(readFileSync(this.consoleLog, 'utf8'), 3000)}`);
      const r = await runBounded(['ssh', ...this.sshOptions(3), `root@${this.address}`, 'true'], {
        timeoutMs: 8000,
        env: { PATH: process.env.PATH ?? HOST_PATH, HOME: process.env.HOME ?? '/root' },
      });
      if (r.status === 0) break;
      last = r.output.trim();
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: SSH on ${this.address} did not answer within ${this.context.bootTimeoutMs / 1000} s (last: ${last});\nconsole:\n${tail(readFileSync(this.consoleLog, 'utf8'), 3000)}`);
      }
      // A neighbour entry left from while the VM was down can outlive its return: ask again, now and then.
      if (last.includes('No route to host') || Date.now() - lastFlush > 15_000) {
        await runBounded(['ip', 'neigh', 'flush', 'to', this.address, 'dev', this.context.network.bridge], { timeoutMs: 5000 });
        lastFlush = Date.now();
      }
      await sleep(500);
    }
    const left = Math.max(1, Math.round((deadline - Date.now()) / 1000));
    const state = await this.ssh(`timeout ${left} systemctl is-system-running --wait`, { timeoutMs: (left + 5) * 1000 });
    const seconds = (Date.now() - started) / 1000;
    this.bootSeconds.push(seconds);
    const failed = state.stdout.trim() === 'running' ? '' : (await this.ssh('systemctl --failed --no-legend --plain | cut -d" " -f1 | xargs')).stdout.trim();
    this.context.log(`${this.name}: VM ${this.address} booted in ${seconds.toFixed(1)} s (${this.kvm ? 'KVM' : 'TCG'}; systemd: ${state.stdout.trim() || 'no answer'}${failed ? `; failed: ${failed}` : ''})`);
  }

  private sshOptions(connectTimeoutSeconds: number): string[] {
    return sshClientOptions(this.context, connectTimeoutSeconds);
  }

  private async waitStopped(timeoutMs: number, after: string): Promise<void> {
    const exited = this.qemuExited ?? Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const late = await Promise.race([exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) throw new Error(`${this.name}: QEMU still running ${timeoutMs / 1000} s after ${after}`);
    const qemu = this.record.qemu;
    if (qemu && !(await waitGone(qemu, 5000))) throw new Error(`${this.name}: QEMU ${qemu.pid} still there after it exited`);
    this.context.state.update(() => {
      this.record.qemu = undefined;
    });
  }
}

