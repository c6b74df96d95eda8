import { ChildProcess, spawn, spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { HaproxyMaster, HaproxyProcessList, HaproxyRuntime } from '../agent/haproxy-runtime';
import { signalProcessGroup, stopProcessGroup } from '../agent/process-group';
import { MemberStatus, RegisteredInstance, RegistryStatus, registryStatus } from '../agent/registry-status';
import { CREDENTIALS_DIR, HAPROXY_BOOTSTRAP, NERVE_CONFIG, NERVE_UNIT, SYNAPSE_CONFIG, SYNAPSE_UNIT, ZOO_CFG, ZOOKEEPER_MYID } from '../cloud-init/host-paths';
import { readSynthesizedDocuments, readSynthesizedStack, synthesizedDocumentVariables } from '../cloud-init/synthesized-documents';
import { SynapseConfig } from '../schema/synapse-config';
import { readZookeeperCredentials, ZookeeperCredentials } from '../schema/zookeeper-credentials';
import { fourLetterWord } from './four-letter-word';
import { LoopbackHost, layOutLoopbackHosts } from './loopback-host';
import { describeMesh, MeshDescription, MeshHost, MeshService } from './mesh-description';
import { adaptForOneMachine, clientPort, loadCredentials, providedServices, writeLiveZooCfg } from './one-machine';
import { portsInUse } from './port-check';

export interface LocalMeshOptions {
  /** The `cdktf synth` output directory. */
  readonly outdir: string;
  /** The stack to run; needed when the output holds more than one. */
  readonly stack?: string;
  /** Where the hosts' files go; a new temporary directory (removed on stop) when not given. */
  readonly workdir?: string;
  /** First two octets of the loopback range, e.g. '127.77'. */
  readonly loopbackPrefix?: string;
  /**
   * Command that runs a provided service instead of the built-in backend; `{address}`, `{port}`,
   * `{service}` and `{instance}` are replaced.
   */
  readonly backendCommand?: string;
  /** The folder the backend command runs in (default: the current one). */
  readonly backendCwd?: string;
  /** How to run the agents: argv before `nerve --config F`. */
  readonly smartstackCommand?: string[];
  /** Progress lines. */
  readonly log?: (line: string) => void;
  /**
   * Values of the Terraform variables the documents use (the ZooKeeper secret); a variable not
   * given gets a random value for this run.
   */
  readonly variables?: Record<string, string>;
}

/** One process the mesh started, named `<host>/<role>`. */
export interface MeshProcess {
  readonly name: string;
  readonly host: LoopbackHost;
  readonly argv: string[];
  /** The folder it runs in. */
  readonly cwd: string;
  child: ChildProcess;
}

/** What nerve on a providing host last said about a service's check. */
export interface LastCheck {
  readonly hostname: string;
  /** e.g. `check failed: status 404`, or that nothing was logged yet. */
  readonly result: string;
}

export interface ServiceStatus extends MeshService {
  /** The registered instances, when ZooKeeper could be read. */
  readonly instances?: RegisteredInstance[];
  /** For a service without a healthy instance: nerve's last word on each provider. */
  readonly lastChecks: LastCheck[];
}

export interface MeshStatus {
  readonly members: MemberStatus[];
  readonly hosts: MeshHost[];
  readonly services: ServiceStatus[];
  readonly registry?: RegistryStatus;
  readonly registryError?: string;
}

const PACKAGE_ROOT = join(__dirname, '..', '..');

/** A program the mesh runs, and the Debian package that provides it. */
const PROGRAMS: Array<[string, string]> = [
  ['java', 'zookeeper (brings a Java runtime)'],
  ['haproxy', 'haproxy'],
];

/**
 * Runs a synthesized stack on this machine: each host on its own 127.x address with its files under
 * a working directory, its ZooKeeper member, its sidecar's HAProxy, nerve and synapse, and a small
 * backend for each service it provides.
 */
export class LocalMesh {
  public readonly hosts: LoopbackHost[];
  public readonly workdir: string;
  /** The values the documents were read with, by variable name. */
  public readonly variables: Record<string, string>;
  /** Hosts, roles, services, endpoints and ports, as the hosts' files say. */
  public readonly description: MeshDescription;
  private readonly scripts: Array<{ hostname: string; name: string; script: string }>;
  private readonly processes = new Map<string, MeshProcess>();
  private readonly ownsWorkdir: boolean;
  private readonly log: (line: string) => void;
  private readonly smartstack: string[];
  private stopping = false;
  /** Kills what is left if this process exits without stop() (an uncaught error): nothing outlives it. */
  private readonly killOnExit = () => {
    for (const p of this.processes.values()) signalProcessGroup(p.child.pid, 'SIGKILL');
  };

  public constructor(private readonly options: LocalMeshOptions) {
    const missing = PROGRAMS.filter(([program]) => spawnSync('sh', ['-c', `command -v ${program}`]).status !== 0);
    if (missing.length > 0) {
      throw new Error(`smartstack local needs ${missing.map(([p, pkg]) => `${p} (Debian package ${pkg})`).join(' and ')}: install with  sudo apt-get install -y ${missing.map(([, pkg]) => pkg.split(' ')[0]).join(' ')}`);
    }
    const stack = options.stack ?? onlyStack(options.outdir);
    const synthesized = readSynthesizedStack(options.outdir, stack);
    this.variables = Object.fromEntries(
      synthesizedDocumentVariables(synthesized).map((name) => [name, options.variables?.[name] ?? randomBytes(32).toString('hex')]),
    );
    const documents = readSynthesizedDocuments(synthesized, this.variables);
    this.scripts = documents.flatMap((d) => [...d.scripts.entries()].map(([name, script]) => ({ hostname: d.hostname, name, script })));
    if (documents.length === 0) throw new Error(`stack ${stack} in ${options.outdir} has no VdsNode hosts`);
    this.ownsWorkdir = options.workdir === undefined;
    this.workdir = options.workdir ?? mkdtempSync(join(tmpdir(), 'smartstack-local-'));
    this.hosts = layOutLoopbackHosts(documents, this.workdir, options.loopbackPrefix ?? '127.77');
    this.log = options.log ?? (() => undefined);
    this.smartstack = options.smartstackCommand ?? [process.execPath, join(PACKAGE_ROOT, 'bin', 'smartstack')];
    for (const host of this.hosts) adaptForOneMachine(host);
    this.description = describeMesh(this.hosts);
  }

  /** ZooKeeper members (hosts whose document has a zoo.cfg). */
  public get members(): LoopbackHost[] {
    return this.hosts.filter((h) => h.manifest.roles.includes('zookeeper-member'));
  }

  /** `address:port,...` of the members, as the agents use it. */
  public get connectionString(): string {
    return this.members.map((h) => `${h.address}:${clientPort(h)}`).join(',');
  }

  /** Starts everything, in dependency order, and waits for the ensemble to have a leader. */
  public async start(): Promise<void> {
    const taken = await portsInUse(this.description.ports);
    if (taken.length > 0) {
      throw new Error(
        `ports the mesh needs are in use, perhaps by processes of an earlier run:\n${taken.map((t) => `  ${t.address}:${t.port} (${t.owner}): ${t.holder}`).join('\n')}\n` +
          'stop them (kill PID) and start again',
      );
    }
    process.on('exit', this.killOnExit);
    for (const host of this.members) this.startZookeeper(host);
    await this.waitForLeader(90000);
    // What Terraform runs once the members are up, such as the ZooKeeper ACL bootstrap.
    for (const { hostname, name, script } of this.scripts) this.runScript(hostname, name, script);
    for (const host of this.hosts) {
      for (const [service, port] of providedServices(host)) this.startBackend(host, service, port);
    }
    for (const host of this.hosts.filter((h) => h.manifest.roles.includes('synapse'))) {
      this.startHaproxy(host);
      this.startAgent(host, 'synapse');
    }
    for (const host of this.hosts.filter((h) => h.manifest.roles.includes('nerve'))) this.startAgent(host, 'nerve');
  }

  /** Stops every process (agents first, so nerve deregisters), then removes what it created. */
  public async stop(): Promise<void> {
    this.stopping = true;
    const order = ['nerve', 'synapse', 'haproxy', 'backend', 'zookeeper'];
    const rank = (p: MeshProcess) => order.findIndex((role) => p.name.split('/')[1].startsWith(role));
    const all = [...this.processes.values()].sort((a, b) => rank(a) - rank(b));
    for (const p of all) await stopProcessGroup(p.child, 10000);
    this.processes.clear();
    process.off('exit', this.killOnExit);
    if (this.ownsWorkdir) rmSync(this.workdir, { recursive: true, force: true });
  }

  /** The processes by name, e.g. `app1/nerve`, `web1/haproxy`, `app1/backend:user-service`. */
  public process(name: string): MeshProcess {
    const p = this.processes.get(name);
    if (!p) throw new Error(`no process ${name}; there are ${[...this.processes.keys()].join(', ')}`);
    return p;
  }

  public get processNames(): string[] {
    return [...this.processes.keys()].sort();
  }

  /** Sends a signal and waits (bounded) until the process exited. */
  public async kill(name: string, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15000): Promise<void> {
    const p = this.process(name);
    await stopProcessGroup(p.child, timeoutMs, signal);
  }

  /** Starts a stopped process again with the same command line. */
  public restart(name: string): void {
    const p = this.process(name);
    if (p.child.exitCode === null && p.child.signalCode === null) throw new Error(`${name} is still running`);
    this.spawn(p.name, p.host, p.argv, p.cwd);
  }

  /**
   * Reloads a sidecar's HAProxy the way its unit's `systemctl reload` does: server state dumped to
   * the state file, then the master told to reload.
   */
  public async reloadHaproxy(hostname: string): Promise<HaproxyProcessList> {
    const host = this.hosts.find((h) => h.hostname === hostname);
    const synapse = host?.files.get(SYNAPSE_CONFIG);
    if (!host || !synapse) throw new Error(`host ${hostname} has no sidecar HAProxy`);
    const { haproxy } = JSON.parse(synapse) as SynapseConfig;
    const state = await new HaproxyRuntime(haproxy.socket_file_path!).serversStateFile();
    const stateFile = /^\s*server-state-file\s+(\S+)/m.exec(readFileSync(haproxy.config_file_path!, 'utf8'))?.[1];
    if (stateFile) {
      writeFileSync(`${stateFile}.new`, state);
      renameSync(`${stateFile}.new`, stateFile);
    }
    return new HaproxyMaster(haproxy.master_socket_file_path!).reload();
  }

  /** What the members say of themselves and what ZooKeeper says is registered. */
  public async status(): Promise<MeshStatus> {
    const members = await Promise.all(
      this.members.map(async (h) => {
        const srvr = await fourLetterWord(h.address, clientPort(h), 'srvr');
        return { hostname: h.hostname, address: h.address, mode: /^Mode: (\w+)/m.exec(srvr)?.[1] ?? '' };
      }),
    );
    const { hosts } = this.description;
    let registry: RegistryStatus | undefined;
    let registryError: string | undefined;
    const found = new Map<string, RegisteredInstance[]>();
    try {
      // Every base the services' discovery paths are under, not only /services.
      for (const base of new Set(this.description.services.map((s) => s.discoveryPath.replace(/\/[^/]+$/, '') || '/'))) {
        const read = await registryStatus(this.connectionString, base, {}, 5000, this.readerCredentials());
        if (base === '/services' || registry === undefined) registry = read;
        if (!read.reachable || read.error) registryError ??= read.error ?? 'no session could be established';
        for (const s of read.services) found.set(s.path, s.instances);
      }
    } catch (e) {
      registryError = (e as Error).message;
    }
    const services = this.description.services.map((s): ServiceStatus => {
      const instances = registryError === undefined ? (found.get(s.discoveryPath) ?? []) : undefined;
      const healthy = instances?.some((i) => i.valid) ?? false;
      return { ...s, instances, lastChecks: healthy ? [] : s.providers.map((p) => ({ hostname: p.hostname, result: this.lastCheck(p.hostname, s.name) })) };
    });
    return { members, hosts, services, registry, registryError };
  }

  /** nerve's last record about a service's check, from its log. */
  private lastCheck(hostname: string, service: string): string {
    let log = '';
    try {
      log = readFileSync(join(this.workdir, 'logs', `${hostname}-nerve.log`), 'utf8');
    } catch {
      return 'nerve has not logged yet';
    }
    const records = log.split('\n').flatMap((line) => {
      try {
        const r = JSON.parse(line) as { msg?: string; service?: string; reason?: string; check?: string };
        return r.service === service && /^(check|service) /.test(r.msg ?? '') ? [r] : [];
      } catch {
        return [];
      }
    });
    const last = records[records.length - 1];
    if (!last) return 'no failed check logged (a passing check counts toward rise)';
    return `${last.msg}${last.reason ? `: ${last.reason}` : ''}${last.check ? ` (${last.check})` : ''}`;
  }

  private startZookeeper(host: LoopbackHost): void {
    const member = host.manifest.zookeeper;
    if (!member) throw new Error(`host ${host.hostname}: the manifest names no ZooKeeper member on it`);
    const logDir = host.hostPath('/var/log/zookeeper');
    const zooCfg = host.files.get(ZOO_CFG)!;
    const [dataDir, dataLogDir] = [/^dataDir=(.+)$/m, /^dataLogDir=(.+)$/m].map((r) => r.exec(zooCfg)?.[1] ?? '');
    for (const dir of [logDir, dataDir, dataLogDir].filter(Boolean)) mkdirSync(dir, { recursive: true });
    // As a host's apply does once the data disk is mounted.
    writeFileSync(join(dataDir, 'myid'), host.files.get(ZOOKEEPER_MYID) ?? '');
    const liveConfig = writeLiveZooCfg(host);
    // The host-sized heap (java.env) would not fit several members on one machine.
    // Java argument files (`@path`, the digest authentication flags) and the class path as the unit passes them.
    const argFiles = member.jvmArgFiles.map((file) => `@${host.hostPath(file)}`);
    const classpath = member.classpath.map((entry) => host.hostPath(entry)).join(':');
    const argv = ['java', '-Xmx256m', '-Xms64m', ...argFiles, `-Dzookeeper.log.dir=${logDir}`, '-cp', classpath, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', liveConfig];
    this.spawn(`${host.hostname}/zookeeper`, host, argv);
  }

  /** The reader identity's credentials, as a consuming host holds them, when the ensemble has ACLs. */
  private readerCredentials(): ZookeeperCredentials | undefined {
    for (const host of this.hosts) {
      const path = [...host.files.keys()].find((p) => p.startsWith(`${CREDENTIALS_DIR}/zookeeper-`) && p.endsWith('-reader.json'));
      if (path) return readZookeeperCredentials(host.hostPath(path));
    }
    return undefined;
  }

  private runScript(hostname: string, name: string, script: string): void {
    const host = this.hosts.find((h) => h.hostname === hostname)!;
    const result = spawnSync('sh', ['-c', host.mapText(script)], { cwd: host.root, encoding: 'utf8', timeout: 120000 });
    const logDir = join(this.workdir, 'logs');
    mkdirSync(logDir, { recursive: true });
    writeFileSync(join(logDir, `${hostname}-${name}.log`), `${result.stdout ?? ''}${result.stderr ?? ''}`);
    if (result.status !== 0) {
      throw new Error(`${hostname}: ${name} failed (exit ${result.status ?? result.signal}): ${(result.stderr || result.stdout).trim()}`);
    }
    this.log(`${hostname}: ${name}: ${result.stdout.trim()}`);
  }

  private startBackend(host: LoopbackHost, service: string, port: number): void {
    const vars: Record<string, string> = { address: host.address, port: String(port), service, instance: host.hostname };
    const name = `${host.hostname}/backend:${service}`;
    if (this.options.backendCommand) {
      // The user's command, relative paths and all, runs where smartstack was started.
      const command = this.options.backendCommand.replace(/\{(address|port|service|instance)\}/g, (_m, k: string) => vars[k]);
      this.spawn(name, host, ['sh', '-c', command], this.options.backendCwd ?? process.cwd());
      return;
    }
    const check = this.description.services.find((s) => s.name === service)?.check;
    const checkArgs = check?.type === 'http' ? [check.path ?? '', check.expectStatus === undefined ? '' : String(check.expectStatus), check.expectBody ?? ''] : [];
    this.spawn(name, host, [process.execPath, join(__dirname, 'instance-backend.js'), host.address, String(port), service, host.hostname, ...checkArgs]);
  }

  private startHaproxy(host: LoopbackHost): void {
    const synapse = JSON.parse(host.files.get(SYNAPSE_CONFIG)!) as SynapseConfig;
    const configFile = synapse.haproxy.config_file_path!;
    const masterSocket = synapse.haproxy.master_socket_file_path!;
    for (const path of [configFile, masterSocket, synapse.haproxy.socket_file_path!]) mkdirSync(join(path, '..'), { recursive: true });
    // As the unit does: the bootstrap seeds the file synapse owns afterwards.
    if (!existsSync(configFile)) copyFileSync(host.hostPath(HAPROXY_BOOTSTRAP), configFile);
    this.spawn(`${host.hostname}/haproxy`, host, ['haproxy', '-W', '-S', `${masterSocket},mode,600`, '-f', configFile]);
  }

  private startAgent(host: LoopbackHost, agent: 'nerve' | 'synapse'): void {
    const config = host.hostPath(agent === 'nerve' ? NERVE_CONFIG : SYNAPSE_CONFIG);
    loadCredentials(host, agent === 'nerve' ? NERVE_UNIT : SYNAPSE_UNIT);
    this.spawn(`${host.hostname}/${agent}`, host, [...this.smartstack, agent, '--config', config]);
  }

  private spawn(name: string, host: LoopbackHost, argv: string[], cwd = host.root): void {
    if (this.stopping) throw new Error(`the mesh is stopping: ${name} is not started`);
    const logDir = join(this.workdir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const out = openSync(join(logDir, `${name.replace(/[/:]/g, '-')}.log`), 'a');
    // Each in a process group of its own: stopping kills what it started too (a shell's server, HAProxy's
    // workers), and a Ctrl-C meant for smartstack reaches the processes only in the order stop() chooses.
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, out], cwd, detached: true });
    child.on('error', (e) => this.log(`${name}: ${e.message}`));
    // A process that ends by itself (a backend command that is not found, say) is said on the console,
    // with the end of its log, not only in a file under the working directory.
    const logFile = join(logDir, `${name.replace(/[/:]/g, '-')}.log`);
    child.on('exit', (code, signal) => {
      if (this.stopping || this.processes.get(name)?.child !== child || signal !== null) return;
      let tail = '';
      try {
        tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n  ');
      } catch {
        // no log: nothing to add
      }
      this.log(`${name} exited with code ${code}${tail ? `; the end of its log (${logFile}):\n  ${tail}` : ''}`);
    });
    this.processes.set(name, { name, host, argv, cwd, child });
    this.log(`started ${name}: ${argv.join(' ')}`);
  }

  private async waitForLeader(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.stopping) {
      const { members } = await this.status();
      if (members.some((m) => m.mode === 'leader' || m.mode === 'standalone')) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`the ZooKeeper ensemble elected no leader within ${timeoutMs / 1000} s; logs in ${join(this.workdir, 'logs')}`);
  }
}

function onlyStack(outdir: string): string {
  const stacks = existsSync(join(outdir, 'stacks')) ? readdirSync(join(outdir, 'stacks')) : [];
  if (stacks.length !== 1) {
    throw new Error(stacks.length === 0 ? `${outdir} holds no synthesized stack: run cdktf synth first` : `${outdir} holds ${stacks.length} stacks (${stacks.join(', ')}): choose one with --stack`);
  }
  return stacks[0];
}
