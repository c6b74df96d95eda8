import { execFile } from 'child_process';
import { promises as fs } from 'fs';
import { dirname, join } from 'path';
import { HaproxyMaster, HaproxyRuntime } from './haproxy-runtime';
import { Logger } from './log';
import { HaproxyServerSlot, renderHaproxyConfig, serverStateFilePath } from '../render/haproxy-config';
import { LoadedSynapseConfig } from './synapse-config-loader';
import { SynapseConfig, SynapseServiceConfig } from '../schema/synapse-config';

/** Why a reload did not happen. */
export class ReloadError extends Error {
  public constructor(message: string, public readonly stage: 'disabled' | 'check' | 'write' | 'reload') {
    super(message);
    this.name = 'ReloadError';
  }
}

/**
 * Writes a new haproxy.cfg and reloads HAProxy, for the rare change the runtime socket cannot
 * make (a backend out of slots). Render → `haproxy -c` on a temp file → dump the run-time server
 * state to the server-state file → atomic rename → reload via the master CLI (or
 * `reload_command`). A config that fails the check never replaces the running one.
 */
export class HaproxyReloader {
  public constructor(
    private readonly config: LoadedSynapseConfig,
    private readonly runtime: HaproxyRuntime | undefined,
    private readonly master: HaproxyMaster | undefined,
    private readonly log: Logger,
    private readonly haproxyBinary = 'haproxy',
  ) {}

  /**
   * Reloads with `backends` in their slots; `slotCounts` sets each backend's number of slots
   * (at least what the config asks for).
   */
  public async reload(backends: { [service: string]: HaproxyServerSlot[] }, slotCounts: { [service: string]: number }): Promise<void> {
    const h = this.config.haproxy;
    const target = this.writableConfigPath();
    await this.writeChecked(target, this.render(backends, slotCounts), () => this.dumpServerState(backends));
    if (!h.doReloads) {
      this.log.warn('haproxy.cfg written; not reloading because haproxy.do_reloads is false', { path: target });
      return;
    }
    if (this.master) {
      const procs = await this.master.reload().catch((e: Error) => Promise.reject(new ReloadError(e.message, 'reload')));
      this.log.info('haproxy reloaded through the master CLI', { reloads: procs.reloads, worker: procs.workers[0]?.pid });
    } else if (h.reloadCommand !== undefined) {
      await run('/bin/sh', ['-c', h.reloadCommand]).catch((e: Error) => Promise.reject(new ReloadError(`reload_command failed: ${e.message}`, 'reload')));
      this.log.info('haproxy reloaded with reload_command');
    } else {
      throw new ReloadError('haproxy.cfg written but neither haproxy.master_socket_file_path nor haproxy.reload_command is set', 'reload');
    }
  }

  /**
   * Starts an HAProxy that is not running, as upstream's first loop does: writes the checked
   * config and runs `reload_command` (the master socket is gone with HAProxy).
   */
  public async start(backends: { [service: string]: HaproxyServerSlot[] }, slotCounts: { [service: string]: number }): Promise<void> {
    const h = this.config.haproxy;
    const target = this.writableConfigPath();
    await this.writeChecked(target, this.render(backends, slotCounts));
    if (h.reloadCommand === undefined) throw new ReloadError('haproxy is not running and haproxy.reload_command is not set', 'disabled');
    await run('/bin/sh', ['-c', h.reloadCommand]).catch((e: Error) => Promise.reject(new ReloadError(`reload_command failed: ${e.message}`, 'reload')));
    this.log.info('haproxy started with reload_command', { path: target });
  }

  /**
   * Keeps haproxy.cfg in step with the servers set at run time, without a reload, so that any later
   * reload or restart (systemd's, an apply's, a crash's) starts with them: HAProxy 2.6 does not take
   * a server's address from the server-state file. Returns 'reload' when the file differs in more
   * than its server lines, which only a reload can bring to HAProxy.
   */
  public async persist(backends: { [service: string]: HaproxyServerSlot[] }, slotCounts: { [service: string]: number }): Promise<'unchanged' | 'written' | 'reload'> {
    const h = this.config.haproxy;
    if (!h.doWrites || h.configFilePath === undefined) return 'unchanged';
    const text = this.render(backends, slotCounts);
    const current = await fs.readFile(h.configFilePath, 'utf8').catch(() => undefined);
    if (current === text) return 'unchanged';
    if (current === undefined || withoutServers(current) !== withoutServers(text)) return 'reload';
    await this.writeChecked(h.configFilePath, text);
    return 'written';
  }

  private render(backends: { [service: string]: HaproxyServerSlot[] }, slotCounts: { [service: string]: number }): string {
    return renderHaproxyConfig(withSlotCounts(this.config.config, slotCounts), backends);
  }

  private writableConfigPath(): string {
    const h = this.config.haproxy;
    if (!h.doWrites || h.configFilePath === undefined) {
      throw new ReloadError('a reload is needed but haproxy.do_writes is false or haproxy.config_file_path is not set', 'disabled');
    }
    return h.configFilePath;
  }

  /** Render → `haproxy -c` on a temp file → (before) → atomic rename. */
  private async writeChecked(target: string, text: string, before?: () => Promise<void>): Promise<void> {
    const temp = join(dirname(target), `.${process.pid}.haproxy.cfg.new`);
    await fs.writeFile(temp, text, { mode: 0o644 });
    try {
      await this.check(temp);
      if (before) await before();
      await fs.rename(temp, target);
    } catch (e) {
      await fs.rm(temp, { force: true });
      throw e;
    }
  }

  private async check(file: string): Promise<void> {
    try {
      await run(this.haproxyBinary, ['-c', '-f', file]);
    } catch (e) {
      throw new ReloadError(`haproxy -c rejected the new config: ${(e as Error).message}`, 'check');
    }
  }

  /**
   * Saves `show servers state` where the new workers load it, so health and weights carry over —
   * only for the slots the new file fills with the same address and port. A slot it leaves empty
   * must not take the old server's port and state from the file: HAProxy 2.6 would put that port
   * on the placeholder address and the slot back in service.
   */
  private async dumpServerState(backends: { [service: string]: HaproxyServerSlot[] }): Promise<void> {
    const path = serverStateFilePath(this.config.config);
    if (path === undefined || this.runtime === undefined) return;
    const state = keepPlacedServers(await this.runtime.serversStateFile(), this.config, backends);
    const temp = `${path}.${process.pid}.new`;
    await fs.writeFile(temp, state);
    await fs.rename(temp, path);
  }
}

/**
 * The lines of a `show servers state` dump worth loading after a reload: servers of other backends
 * as they are, and our slots only where the new file places a server at the same address and port.
 */
export function keepPlacedServers(dump: string, config: LoadedSynapseConfig, backends: { [service: string]: HaproxyServerSlot[] }): string {
  const lines = dump.split('\n');
  const header = (lines.find((l) => l.startsWith('# ')) ?? '').slice(2).split(' ');
  const [be, srv, addr, port] = ['be_name', 'srv_name', 'srv_addr', 'srv_port'].map((c) => header.indexOf(c));
  if ([be, srv, addr, port].some((i) => i < 0)) return lines.slice(0, 2).join('\n') + '\n';
  const placed = new Map<string, Set<string>>();
  for (const service of config.services) {
    placed.set(service.backendName, new Set((backends[service.name] ?? []).map((x) => `slot${x.slot}@${x.host}:${x.port}`)));
  }
  return lines.filter((line) => {
    if (line.startsWith('#') || line.trim() === '1' || line.trim() === '') return true;
    const f = line.split(' ');
    const ours = placed.get(f[be]);
    return ours === undefined || ours.has(`${f[srv]}@${f[addr]}:${f[port]}`);
  }).join('\n');
}

/** The config with its server lines left out: what a reload would change beyond the servers. */
function withoutServers(text: string): string {
  return text.split('\n').filter((line) => !/^\s*server\s/.test(line)).join('\n');
}

function withSlotCounts(config: SynapseConfig, slotCounts: { [service: string]: number }): SynapseConfig {
  const services: { [name: string]: SynapseServiceConfig } = {};
  for (const [name, s] of Object.entries(config.services)) {
    const count = slotCounts[name];
    services[name] = count === undefined ? s : { ...s, haproxy: { ...s.haproxy, server_slots: Math.max(count, s.haproxy?.server_slots ?? 0) } };
  }
  return { ...config, services };
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 30000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${`${stderr}${stdout}`.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}
