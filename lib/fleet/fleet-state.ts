import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { runBounded } from './bounded-command';
import { removeHostCgroups } from './host-cgroup';
import { containerInitOf, isAlive, killRecorded, processRef, ProcessRef, waitGone } from './owned-process';

/** Where every run records what it made, so a later run can undo a run that was killed. */
export const DEFAULT_STATE_DIR = '/var/lib/cdktf-smartstack/fleet/runs';

/** What the harness made for one host. Each field is recorded before the thing it names is made. */
export interface HostRecord {
  readonly name: string;
  /** The overlay mount point (the host's root directory). */
  overlay?: string;
  /** The systemd-nspawn process, and the container's init (PID 1 of its PID namespace). */
  nspawn?: ProcessRef;
  init?: ProcessRef;
  /** Sparse disk files; the loop devices bound to them are found with `losetup -j`. */
  diskFiles: string[];
  /** The host's own cgroup directories (see host-cgroup.ts). */
  cgroups?: string[];
  /** A VM's QEMU process, and its tap device on the fleet's bridge. */
  qemu?: ProcessRef;
  tap?: string;
}

export interface RunRecord {
  readonly version: 1;
  readonly runId: string;
  /** The process that made it all; while it lives, nobody else touches the run. */
  readonly owner: ProcessRef;
  readonly workDir: string;
  readonly createdAt: string;
  bridge?: { readonly name: string; readonly mac: string };
  hosts: HostRecord[];
}

/**
 * The record of the current run, written (atomically) both in the run's work directory and in the
 * well-known state directory after every change.
 */
export class FleetState {
  public static create(runId: string, workDir: string, stateDir: string = DEFAULT_STATE_DIR): FleetState {
    mkdirSync(stateDir, { recursive: true });
    const record: RunRecord = { version: 1, runId, owner: processRef(process.pid)!, workDir, createdAt: new Date().toISOString(), hosts: [] };
    const state = new FleetState(record, join(stateDir, `${runId}.json`));
    state.save();
    return state;
  }

  private constructor(public readonly record: RunRecord, private readonly path: string) {}

  /** Applies a change to the record and writes it before returning. */
  public update(change: (record: RunRecord) => void): void {
    change(this.record);
    this.save();
  }

  public host(name: string): HostRecord {
    let host = this.record.hosts.find((h) => h.name === name);
    if (!host) {
      host = { name, diskFiles: [] };
      this.record.hosts.push(host);
      this.save();
    }
    return host;
  }

  /** Undoes everything this run made and forgets the run. */
  public async cleanup(log: (line: string) => void): Promise<void> {
    await cleanupRun(this.record, log);
    rmSync(this.path, { force: true });
  }

  private save(): void {
    const text = `${JSON.stringify(this.record, null, 2)}\n`;
    for (const path of [this.path, join(this.record.workDir, 'fleet-state.json')]) {
      if (!existsSync(join(path, '..'))) continue;
      writeFileSync(`${path}.new`, text);
      renameSync(`${path}.new`, path);
    }
  }
}

/**
 * Cleans every run recorded in `stateDir` whose owner process is gone (killed, crashed, or a session
 * that ended). Runs whose owner still lives are left alone: they may be another test's fleet.
 * Returns the run ids cleaned.
 */
export async function cleanupEarlierRuns(stateDir: string = DEFAULT_STATE_DIR, log: (line: string) => void): Promise<string[]> {
  if (!existsSync(stateDir)) return [];
  const cleaned: string[] = [];
  for (const file of readdirSync(stateDir).filter((f) => f.endsWith('.json'))) {
    let record: RunRecord;
    try {
      record = JSON.parse(readFileSync(join(stateDir, file), 'utf8')) as RunRecord;
    } catch {
      continue; // written by a newer harness, or half-written: an atomic rename makes the latter impossible
    }
    if (record.version !== 1 || isAlive(record.owner)) continue;
    log(`cleaning run ${record.runId}, left by process ${record.owner.pid} (${record.createdAt})`);
    await cleanupRun(record, log);
    rmSync(join(stateDir, file), { force: true });
    cleaned.push(record.runId);
  }
  return cleaned;
}

/** Stops the recorded hosts, unmounts their overlays, frees their loop devices, removes the bridge and the work directory. */
async function cleanupRun(record: RunRecord, log: (line: string) => void): Promise<void> {
  const problems: string[] = [];
  for (const host of record.hosts) {
    // Killed between starting systemd-nspawn and recording its init: find the init now, while nspawn
    // is still its parent (killing nspawn alone leaves the container running).
    const init = host.init ?? (host.nspawn && isAlive(host.nspawn) ? containerInitOf(host.nspawn.pid) : undefined);
    for (const proc of [init, host.nspawn, host.qemu]) {
      if (proc && killRecorded(proc)) {
        log(`  ${host.name}: killed process ${proc.pid}`);
        if (!(await waitGone(proc, 10_000))) problems.push(`${host.name}: process ${proc.pid} did not exit after SIGKILL`);
      }
    }
  }
  for (const host of record.hosts) {
    if (host.overlay && mountPointsUnder(host.overlay).length > 0) {
      await unmountAll(host.overlay, problems);
      log(`  ${host.name}: unmounted ${host.overlay}`);
    }
    for (const file of host.diskFiles) {
      for (const device of await loopDevicesOf(file)) {
        const r = await runBounded(['losetup', '-d', device], { timeoutMs: 10_000 });
        if (r.status === 0) log(`  ${host.name}: detached ${device} (${file})`);
        else problems.push(`losetup -d ${device}: ${r.output.trim()}`);
      }
    }
  }
  for (const host of record.hosts) {
    // Only a tap device: a link of the recorded name that is anything else is left alone.
    if (host.tap && existsSync(`/sys/class/net/${host.tap}/tun_flags`)) {
      const r = await runBounded(['ip', 'link', 'del', host.tap], { timeoutMs: 10_000 });
      if (r.status === 0) log(`  ${host.name}: removed tap ${host.tap}`);
      else problems.push(`ip link del ${host.tap}: ${r.output.trim()}`);
    }
    const left = removeHostCgroups(host.cgroups ?? []);
    if (left.length > 0) problems.push(`${host.name}: cgroups still in use: ${left.join(', ')}`);
  }
  if (record.bridge) {
    const mac = linkMac(record.bridge.name);
    if (mac !== undefined && mac === record.bridge.mac) {
      const r = await runBounded(['ip', 'link', 'del', record.bridge.name], { timeoutMs: 10_000 });
      if (r.status === 0) log(`  removed bridge ${record.bridge.name}`);
      else problems.push(`ip link del ${record.bridge.name}: ${r.output.trim()}`);
    } else if (mac !== undefined) {
      problems.push(`bridge ${record.bridge.name} has MAC ${mac}, not the recorded ${record.bridge.mac}: left alone`);
    }
  }
  if (existsSync(record.workDir)) {
    const mounts = mountPointsUnder(record.workDir);
    if (mounts.length > 0) problems.push(`${record.workDir} still has mounts (${mounts.join(', ')}): not removed`);
    // Only a directory that holds this run's record is the run's work directory.
    else if (existsSync(join(record.workDir, 'fleet-state.json'))) rmSync(record.workDir, { recursive: true, force: true });
    else problems.push(`${record.workDir} holds no fleet-state.json: not removed`);
  }
  if (problems.length > 0) throw new Error(`cleaning fleet run ${record.runId} left:\n  ${problems.join('\n  ')}`);
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
export function mountPointsUnder(dir: string): string[] {
  const prefix = dir.replace(/\/$/, '');
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\([0-7]{3})/g, (_s, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((m) => m === prefix || m.startsWith(`${prefix}/`))
    .sort((a, b) => b.length - a.length);
}

async function unmountAll(dir: string, problems: string[]): Promise<void> {
  for (const mount of mountPointsUnder(dir)) {
    let r = await runBounded(['umount', mount], { timeoutMs: 10_000 });
    if (r.status !== 0) r = await runBounded(['umount', '--lazy', mount], { timeoutMs: 10_000 });
    if (r.status !== 0) problems.push(`umount ${mount}: ${r.output.trim()}`);
  }
}

/** The loop devices bound to a file (`losetup -j`). */
export async function loopDevicesOf(file: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  const r = await runBounded(['losetup', '-j', file], { timeoutMs: 10_000 });
  return r.stdout.split('\n').map((line) => /^(\/dev\/loop\d+):/.exec(line)?.[1]).filter((d): d is string => d !== undefined);
}

/** A network link's MAC address, or undefined when there is no such link. */
export function linkMac(name: string): string | undefined {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) return undefined;
  try {
    return readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
