import { connect } from 'net';
import { haproxySafe, isIpAddress } from '../schema/haproxy-safe';

/** One server as `show servers state` reports it. */
export interface HaproxyServerState {
  readonly backend: string;
  readonly server: string;
  readonly address: string;
  readonly port: number;
  /** 0 stopped, 1 starting, 2 running, 3 stopping. */
  readonly operationalState: number;
  /** Bit field; any of 0x23 (forced, inherited or resolution maintenance) means out of service. */
  readonly adminState: number;
  readonly weight: number;
  readonly initialWeight: number;
}

/** Maintenance bits of `srv_admin_state`: forced (0x01), inherited (0x02), DNS resolution (0x20). */
const ADMIN_MAINT_MASK = 0x23;

/** True when a server in this state may take traffic as far as its admin state goes. */
export function isInService(state: HaproxyServerState): boolean {
  return (state.adminState & ADMIN_MAINT_MASK) === 0;
}

/** HAProxy answered a runtime command with an error. */
export class HaproxyCommandError extends Error {
  public constructor(public readonly command: string, public readonly response: string) {
    super(`haproxy refused '${command}': ${response.trim() || '(no answer)'}`);
    this.name = 'HaproxyCommandError';
  }
}

/**
 * Sends one command to an HAProxy CLI socket (admin or master) and returns the whole answer.
 * The write side is closed after the command, so HAProxy answers and closes.
 */
export function sendSocketCommand(socketPath: string, command: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`haproxy socket ${socketPath}: no answer to '${command}' within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.end(`${command}\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/**
 * The admin (stats) socket of a running HAProxy. Every argument passes the one whitelist before
 * it is put into a command, so a `;` can never start a second command.
 */
export class HaproxyRuntime {
  public constructor(public readonly socketPath: string, private readonly timeoutMs = 3000) {}

  /** Sends one command; `command` must not contain a control character (newline, NUL, ...) or `;`. */
  public async command(command: string): Promise<string> {
    if (/[\x00-\x1f\x7f;]/.test(command)) throw new HaproxyCommandError(command, 'a command must not contain a control character (newline, NUL, ...) or ;');
    return sendSocketCommand(this.socketPath, command, this.timeoutMs);
  }

  public async setServerAddress(backend: string, server: string, address: string, port: number): Promise<void> {
    if (!isIpAddress(address)) throw new HaproxyCommandError(`set server ${backend}/${server} addr`, `'${address}' is not an IP address`);
    const cmd = `set server ${target(backend, server)} addr ${haproxySafe('address', address, 'host')} port ${haproxySafe('port', port, 'port')}`;
    const answer = await this.command(cmd);
    if (!/^\s*$|IP changed from|port changed from|no need to change/i.test(answer)) throw new HaproxyCommandError(cmd, answer);
  }

  public async setServerState(backend: string, server: string, state: 'ready' | 'drain' | 'maint'): Promise<void> {
    await this.expectSilence(`set server ${target(backend, server)} state ${state}`);
  }

  public async setServerWeight(backend: string, server: string, weight: number): Promise<void> {
    if (!Number.isInteger(weight) || weight < 0 || weight > 256) throw new HaproxyCommandError('set server weight', `bad weight ${weight}`);
    await this.expectSilence(`set server ${target(backend, server)} weight ${weight}`);
  }

  /** The servers of one backend (or all), in the order of the config. */
  public async serversState(backend?: string): Promise<HaproxyServerState[]> {
    const answer = await this.command(backend === undefined ? 'show servers state' : `show servers state ${haproxySafe('backend', backend, 'name')}`);
    return parseServersState(answer);
  }

  /** The raw `show servers state` answer: the format `server-state-file` loads. */
  public async serversStateFile(): Promise<string> {
    const answer = await this.command('show servers state');
    if (!/^1\n/.test(answer)) throw new HaproxyCommandError('show servers state', answer);
    return answer;
  }

  private async expectSilence(cmd: string): Promise<void> {
    const answer = await this.command(cmd);
    if (answer.trim() !== '') throw new HaproxyCommandError(cmd, answer);
  }
}

/** Parses `show servers state` (format version 1) by its header line, so column additions do no harm. */
export function parseServersState(answer: string): HaproxyServerState[] {
  const lines = answer.split('\n');
  if (lines[0]?.trim() !== '1') throw new HaproxyCommandError('show servers state', answer.slice(0, 200));
  const header = (lines.find((l) => l.startsWith('# ')) ?? '').slice(2).split(' ');
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new HaproxyCommandError('show servers state', `no column ${name}`);
    return i;
  };
  const [be, srv, addr, port, op, admin, uw, iw] = ['be_name', 'srv_name', 'srv_addr', 'srv_port', 'srv_op_state', 'srv_admin_state', 'srv_uweight', 'srv_iweight'].map(col);
  return lines
    .filter((l) => l.length > 0 && !l.startsWith('#') && l.trim() !== '1')
    .map((l) => l.split(' '))
    .map((f) => ({
      backend: f[be],
      server: f[srv],
      address: f[addr],
      port: Number(f[port]),
      operationalState: Number(f[op]),
      adminState: Number(f[admin]),
      weight: Number(f[uw]),
      initialWeight: Number(f[iw]),
    }));
}

/** What the master CLI's `show proc` says. */
export interface HaproxyProcessList {
  readonly masterPid: number;
  /** Reloads since the master started. */
  readonly reloads: number;
  readonly failedReloads: number;
  /** Current workers first; old ones still finishing connections follow. */
  readonly workers: { readonly pid: number; readonly reloads: number }[];
}

/** The master CLI (`-S`) of a master-worker HAProxy. */
export class HaproxyMaster {
  public constructor(public readonly socketPath: string, private readonly timeoutMs = 5000) {}

  public async processes(): Promise<HaproxyProcessList> {
    const answer = await sendSocketCommand(this.socketPath, 'show proc', this.timeoutMs);
    const master = /^(\d+)\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?/m.exec(answer);
    if (!master) throw new HaproxyCommandError('show proc', answer.slice(0, 200));
    const workers = [...answer.matchAll(/^(\d+)\s+worker\s+(\d+)/gm)].map((m) => ({ pid: Number(m[1]), reloads: Number(m[2]) }));
    return { masterPid: Number(master[1]), reloads: Number(master[2]), failedReloads: Number(master[3] ?? 0), workers };
  }

  /** Asks the master to reload (it re-reads the config and starts new workers) and waits until it has. */
  public async reload(waitMs = 10000): Promise<HaproxyProcessList> {
    const before = await this.processes();
    await sendSocketCommand(this.socketPath, 'reload', this.timeoutMs).catch(() => '');
    const deadline = Date.now() + waitMs;
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      const now = await this.processes().catch(() => undefined);
      if (now && now.reloads + now.failedReloads > before.reloads + before.failedReloads) {
        if (now.failedReloads > before.failedReloads) throw new HaproxyCommandError('reload', 'the master reported a failed reload');
        return now;
      }
      if (Date.now() > deadline) throw new HaproxyCommandError('reload', `no new worker within ${waitMs} ms`);
    }
  }
}

function target(backend: string, server: string): string {
  return `${haproxySafe('backend', backend, 'name')}/${haproxySafe('server', server, 'name')}`;
}
