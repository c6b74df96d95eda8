import { createHash } from 'crypto';
import { promises as dns } from 'dns';
import { promises as fs, readFileSync } from 'fs';
import { join } from 'path';
import { CoalescedRun } from './coalesced-run';
import { BackendPlan, DesiredServer, planBackend, SlotState, slotStates } from './backend-slots';
import { HaproxyReloader, ReloadError } from './haproxy-reloader';
import { HaproxyMaster, HaproxyRuntime, HaproxyServerState } from './haproxy-runtime';
import { Logger } from './log';
import { Metrics } from './metrics';
import { DiscoveredInstance, ZkServiceWatcher } from './zk-service-watcher';
import { ZkSession, ZkSessionOptions } from './zk-session';
import { registerZkSessionMetrics } from './zk-session-metrics';
import { HaproxyServerSlot, renderedSlotOptions } from '../render/haproxy-config';
import { isIpAddress } from '../schema/haproxy-safe';
import { Registration } from '../schema/registration';
import { fillServerOptions, LoadedSynapseConfig, LoadedSynapseService } from '../schema/synapse-config-loader';
import { readZookeeperCredentials } from '../schema/zookeeper-credentials';

export interface SynapseOptions {
  readonly log: Logger;
  readonly metrics?: Metrics;
  /** Passed to every ZooKeeper session. */
  readonly zk?: Omit<ZkSessionOptions, 'log'>;
  /** The haproxy binary for `haproxy -c`. Default `haproxy` on the PATH. */
  readonly haproxyBinary?: string;
}

/** Pause before retrying after HAProxy could not be reached or refused a change. */
const RETRY_MS = 1000;
/** How often HAProxy is compared with what discovery says even without a change (it may have restarted). */
const RESYNC_MS = 10000;
/** How often the master CLI is asked for its current worker. */
const WORKER_POLL_MS = 1000;

/**
 * The synapse agent: watches each consumed service in ZooKeeper and keeps the local HAProxy's
 * backend slots pointed at the registered instances through the runtime socket. A reload
 * happens only when a backend runs out of slots. When discovery is down nothing is changed, so
 * HAProxy keeps the last known servers; when a service has no registrations its
 * `default_servers` serve. On start the slot mapping is read back from HAProxy, so a restart
 * changes nothing that is already right. A session authenticates as every identity the
 * `discovery.auth_file`s of its services hold (read once, at construction).
 */
export class Synapse {
  private readonly sessions = new Map<string, ZkSession>();
  private readonly watchers: ZkServiceWatcher[] = [];
  /** Per service: the servers wanted, or undefined while discovery has not spoken. */
  private readonly desired = new Map<string, DesiredServer[] | undefined>();
  private readonly runtime?: HaproxyRuntime;
  private readonly master?: HaproxyMaster;
  private readonly reloader: HaproxyReloader;
  private readonly syncRun = new CoalescedRun(() => this.syncOnce());
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  private workerTimer?: NodeJS.Timeout;
  private lastWorker?: string;
  private lastReloadAt = 0;
  /** restart_interval stretched by restart_jitter, drawn after each reload. */
  private restartDelayMs: number;
  private haproxyReachable = false;
  private readonly inService = new Map<string, number>();
  /** Per service: the latest discovery report, so a slower older one is dropped. */
  private readonly reports = new Map<string, number>();

  public constructor(public readonly config: LoadedSynapseConfig, private readonly options: SynapseOptions) {
    const h = config.haproxy;
    if (h.doSocket && h.socketFilePath !== undefined) this.runtime = new HaproxyRuntime(h.socketFilePath);
    if (h.masterSocketFilePath !== undefined) this.master = new HaproxyMaster(h.masterSocketFilePath);
    this.reloader = new HaproxyReloader(config, this.runtime, this.master, options.log, options.haproxyBinary);
    const metrics = options.metrics;
    this.restartDelayMs = config.haproxy.restartIntervalMs;

    for (const service of config.services) {
      this.desired.set(service.name, undefined);
      const key = [...service.zkHosts].sort().join(',');
      let session = this.sessions.get(key);
      if (!session) {
        session = new ZkSession(key, { sessionTimeoutMs: config.zkSessionTimeoutMs, ...options.zk, log: options.log });
        this.sessions.set(key, session);
      }
      const credentials = service.zkAuthFile === undefined ? undefined : readZookeeperCredentials(service.zkAuthFile);
      if (credentials) session.addCredentials(credentials);
      const labels = { service: service.name };
      this.watchers.push(new ZkServiceWatcher(session, service.zkPath, options.log.child(labels), {
        onInstances: (instances) => void this.onInstances(service, instances),
        onRead: (op) => metrics?.counter('synapse_zk_reads_total', 'ZooKeeper reads: path listings and child gets.').inc({ ...labels, op }),
        onRejected: () => metrics?.counter('synapse_registrations_rejected_total', 'Registrations refused as invalid or unsafe.').inc(labels),
        onNoAuth: (operation) => metrics?.counter('synapse_zk_no_auth_total', 'ZooKeeper reads refused for lack of permission (NoAuth).').inc({ ...labels, operation }),
      }, credentials?.user));
    }
    if (metrics) {
      registerZkSessionMetrics(metrics, this.sessions);
      metrics.gauge('synapse_haproxy_reachable', 'Whether the HAProxy admin socket answered the last sync (1) or not (0).', () => [
        { labels: {}, value: this.haproxyReachable ? 1 : 0 },
      ]);
      metrics.gauge('synapse_backend_servers', 'Servers in service per backend after the last sync.', () =>
        [...this.inService.entries()].map(([service, value]) => ({ labels: { service }, value })));
    }
  }

  /** Connects to ZooKeeper and starts watching; HAProxy is touched only once discovery has answered. */
  public async start(): Promise<void> {
    for (const warning of this.config.warnings) this.options.log.warn('config key ignored', { detail: warning });
    if (!this.runtime && !(this.config.haproxy.configFilePath && (this.master || this.config.haproxy.reloadCommand))) {
      this.options.log.warn('no haproxy.socket_file_path and no way to reload: synapse can only watch');
    }
    for (const session of this.sessions.values()) void session.start();
    for (const watcher of this.watchers) watcher.start();
    // A restarted HAProxy comes back with the servers of its config file; this puts ours back.
    // Only with the runtime socket: without it every sync is a reload.
    if (this.runtime) this.resyncTimer = setInterval(() => this.schedule(), RESYNC_MS);
    // A reload or restart seen on the master CLI is checked at once rather than at the next resync.
    if (this.runtime && this.master) this.workerTimer = setInterval(() => void this.checkWorker(), WORKER_POLL_MS);
  }

  private async checkWorker(): Promise<void> {
    const procs = await this.master!.processes().catch(() => undefined);
    const worker = procs ? `${procs.masterPid}/${procs.workers[0]?.pid ?? ''}` : undefined;
    if (worker !== undefined && this.lastWorker !== undefined && worker !== this.lastWorker) {
      this.options.log.info('haproxy has a new worker; checking its servers', { worker });
      this.schedule();
    }
    if (worker !== undefined) this.lastWorker = worker;
  }

  /** Stops watching and ends the sessions. HAProxy keeps its servers. */
  public async stop(): Promise<void> {
    this.stopped = true;
    this.syncRun.stop();
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    clearInterval(this.workerTimer);
    this.watchers.forEach((w) => w.stop());
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }

  private async onInstances(service: LoadedSynapseService, instances: DiscoveredInstance[]): Promise<void> {
    const metrics = this.options.metrics;
    const report = (this.reports.get(service.name) ?? 0) + 1;
    this.reports.set(service.name, report);
    metrics?.gauge('synapse_registrations', 'Valid registrations seen per service.').set({ service: service.name }, instances.length);
    const log = this.options.log.child({ service: service.name });
    const registered: DesiredServer[] = [];
    const used: Registration[] = [];
    for (const { child, registration } of instances.filter((i) => matchesLabels(service, i.registration))) {
      const host = await resolve(registration.host);
      if (host === undefined) {
        log.warn('registration skipped: host does not resolve', { child, host: registration.host });
        metrics?.counter('synapse_registrations_rejected_total', 'Registrations refused as invalid or unsafe.').inc({ service: service.name });
        continue;
      }
      registered.push(desiredServer(service, host, registration, registration.name || child));
      used.push(registration);
    }
    const defaults: DesiredServer[] = [];
    for (const d of service.defaultServers) {
      const host = await resolve(d.host);
      if (host !== undefined) defaults.push(desiredServer(service, host, { host: d.host, port: d.port, name: d.name }, `default:${d.name}`));
    }
    orderServers(service, registered, this.config.haproxy.serverOrderSeed);

    if (this.reports.get(service.name) !== report) return;
    let next: DesiredServer[] | undefined;
    if (registered.length > 0) {
      next = service.keepDefaultServers ? [...registered, ...defaults] : registered;
    } else if (defaults.length > 0) {
      next = defaults;
    } else if (service.usePreviousBackends) {
      // An empty path is more often a discovery accident than a service with no instances.
      if (this.desired.get(service.name) !== undefined) log.warn('no registrations; keeping the previous servers (use_previous_backends)');
      return;
    } else {
      next = [];
    }
    this.desired.set(service.name, next);
    log.info('instances changed', { servers: next.map((s) => `${s.host}:${s.port}`) });
    this.schedule();
    if (this.config.outputDirectory !== undefined) {
      const servers = registered.length > 0 ? used : [];
      await writeFileOutput(this.config.outputDirectory, service.name, next === defaults ? service.defaultServers : servers).catch((e: Error) => {
        log.error('file_output: could not write the service file', { error: e });
      });
    }
  }

  /** Runs a sync soon; syncs never overlap and a request during one runs another after it. */
  private schedule(): void {
    this.syncRun.request();
  }

  private async syncOnce(): Promise<void> {
    try {
      await this.sync();
    } catch (e) {
      // A config HAProxy rejects, or a reload that is switched off, is not cured by retrying.
      const final = e instanceof ReloadError && (e.stage === 'check' || e.stage === 'disabled');
      this.options.log.error(final ? 'could not bring haproxy in line; waiting for the next change' : 'could not bring haproxy in line; retrying', { error: e as Error });
      if (!final && !this.stopped) {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.schedule(), RETRY_MS);
      }
    }
  }

  /** Reads HAProxy's slots, applies what fits through the socket, and reloads for the rest. */
  private async sync(): Promise<void> {
    const metrics = this.options.metrics;
    let states: HaproxyServerState[] = [];
    if (this.runtime) {
      try {
        states = await this.runtime.serversState();
        this.haproxyReachable = true;
      } catch (e) {
        this.haproxyReachable = false;
        // As upstream's first loop: an HAProxy that is not running (yet, or any more) is started.
        if (await this.startHaproxy((e as Error).message)) return;
        throw new Error(`haproxy admin socket: ${(e as Error).message}`);
      }
    }
    const configText = this.readConfigFile();
    const slots = new Map<string, SlotState[]>();
    const plans = new Map<string, BackendPlan>();
    let overflow = false;
    for (const service of this.config.services) {
      const options = configText === undefined ? undefined : renderedSlotOptions(configText, service.backendName, this.serverOptions(service));
      const current = slotStates(states.filter((x) => x.backend === service.backendName), options);
      slots.set(service.name, current);
      const desired = this.desired.get(service.name);
      if (desired === undefined) continue;
      // Without the runtime socket every server goes in by a reload.
      const plan = planBackend(current, desired);
      plans.set(service.name, plan);
      if (plan.overflow.length > 0) overflow = true;
    }

    for (const service of this.config.services) {
      const plan = plans.get(service.name);
      if (!plan) continue;
      const log = this.options.log.child({ service: service.name });
      for (const change of plan.changes) {
        const b = service.backendName;
        const s = change.slot.server;
        if (change.kind === 'add') {
          await this.runtime!.setServerAddress(b, s, change.server.host, change.server.port);
          if (change.slot.weight !== change.weight) await this.runtime!.setServerWeight(b, s, change.weight);
          await this.runtime!.setServerState(b, s, 'ready');
          log.info('server added', { slot: s, server: `${change.server.host}:${change.server.port}`, instance: change.server.label });
        } else if (change.kind === 'weight') {
          await this.runtime!.setServerWeight(b, s, change.weight);
          log.info('server weight changed', { slot: s, weight: change.weight });
        } else {
          await this.runtime!.setServerState(b, s, 'maint');
          log.info('server removed', { slot: s, server: `${change.slot.host}:${change.slot.port}` });
        }
        metrics?.counter('synapse_runtime_updates_total', 'Server changes made through the runtime socket.').inc({ service: service.name, action: change.kind });
      }
      this.inService.set(service.name, plan.placement.length);
    }

    if (overflow) {
      await this.reload(slots, plans);
      return;
    }
    const { backends, counts } = placedBackends(this.config.services, slots, plans);
    const persisted = await this.reloader.persist(backends, counts);
    if (persisted === 'reload') {
      this.options.log.info('haproxy.cfg differs from synapse.conf.json beyond its servers: reloading');
      await this.reload(slots, plans);
    }
  }

  private async reload(slots: Map<string, SlotState[]>, plans: Map<string, BackendPlan>): Promise<void> {
    const metrics = this.options.metrics;
    const wait = this.lastReloadAt + this.restartDelayMs - Date.now();
    if (wait > 0) {
      // Rate limit: the run-time part is done; the rest follows after the interval.
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.schedule(), wait);
      return;
    }
    const { backends, counts } = placedBackends(this.config.services, slots, plans, true);
    this.reloaded();
    try {
      await this.reloader.reload(backends, counts);
      metrics?.counter('synapse_reloads_total', 'HAProxy reloads by result.').inc({ result: 'ok' });
      this.options.log.info('haproxy reloaded for a new config shape', { slots: counts });
      for (const [name, servers] of Object.entries(backends)) this.inService.set(name, servers.length);
    } catch (e) {
      metrics?.counter('synapse_reloads_total', 'HAProxy reloads by result.').inc({ result: e instanceof ReloadError ? e.stage : 'error' });
      throw e;
    }
  }

  private reloaded(): void {
    const h = this.config.haproxy;
    this.lastReloadAt = Date.now();
    this.restartDelayMs = h.restartIntervalMs * (1 + h.restartJitter * Math.random());
  }

  /**
   * When the admin socket does not answer and synapse may write and reload: writes haproxy.cfg
   * with the servers known so far (default servers where discovery has not spoken) and runs
   * `reload_command` to start HAProxy, at most once per restart interval. False when it may not.
   */
  private async startHaproxy(socketError: string): Promise<boolean> {
    const h = this.config.haproxy;
    if (!h.doWrites || !h.doReloads || h.configFilePath === undefined || h.reloadCommand === undefined || this.stopped) return false;
    const wait = this.lastReloadAt + this.restartDelayMs - Date.now();
    if (wait > 0) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.schedule(), wait);
      return true;
    }
    const plans = new Map<string, BackendPlan>();
    for (const service of this.config.services) {
      const desired = this.desired.get(service.name);
      if (desired !== undefined) plans.set(service.name, planBackend([], desired));
    }
    const { backends, counts } = placedBackends(this.config.services, new Map(), plans, true);
    for (const service of this.config.services) {
      // Left out, a backend gets its default_servers from the renderer.
      if (!plans.has(service.name)) delete backends[service.name];
    }
    this.options.log.warn('haproxy does not answer on its admin socket: writing haproxy.cfg and running reload_command', {
      error: socketError, path: h.configFilePath,
    });
    this.reloaded();
    await this.reloader.start(backends, counts);
    this.options.metrics?.counter('synapse_reloads_total', 'HAProxy reloads by result.').inc({ result: 'started' });
    for (const [name, servers] of Object.entries(backends)) this.inService.set(name, servers.length);
    // The next sync reads the new HAProxy's slots; give it a moment to open its socket.
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.schedule(), 200);
    return true;
  }

  private serverOptions(service: LoadedSynapseService): string | undefined {
    return this.config.config.services[service.name]?.haproxy?.server_options;
  }

  private readConfigFile(): string | undefined {
    const path = this.config.haproxy.configFilePath;
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  }
}

/**
 * Every backend's servers in their slots: as planned where discovery has spoken, as HAProxy has
 * them where it has not. With `grow`, servers that found no free slot go into new slots past the
 * current ones (none of which is in the state file), and the backend doubles.
 */
function placedBackends(services: LoadedSynapseService[], slots: Map<string, SlotState[]>, plans: Map<string, BackendPlan>, grow = false) {
  const backends: { [service: string]: HaproxyServerSlot[] } = {};
  const counts: { [service: string]: number } = {};
  for (const service of services) {
    const current = slots.get(service.name) ?? [];
    const plan = plans.get(service.name);
    const placed = plan
      ? plan.placement.map(({ slot, server }) => ({ slot, host: server.host, port: server.port, weight: server.weight, options: server.options }))
      : current.filter((x) => x.inService).map((x) => ({ slot: x.index, host: x.host, port: x.port, weight: x.weight, options: x.options }));
    let next = current.length;
    const grown = grow ? (plan?.overflow ?? []).map((server) => ({ slot: ++next, host: server.host, port: server.port, weight: server.weight, options: server.options })) : [];
    counts[service.name] = grown.length > 0 && current.length > 0 ? Math.max(current.length * 2, next) : Math.max(current.length, next);
    backends[service.name] = [...placed, ...grown].map((x) => ({
      slot: x.slot,
      host: x.host,
      port: x.port,
      ...(x.weight !== undefined ? { weight: x.weight } : {}),
      ...(x.options !== '' ? { haproxyServerOptions: x.options } : {}),
    }));
  }
  return { backends, counts };
}

/** Registrations pass every `label_filters` entry (labels compared as text, a missing one as null). */
function matchesLabels(service: LoadedSynapseService, r: Registration): boolean {
  return service.labelFilters.every((f) => {
    const value = r.labels?.[f.label];
    const equal = value !== undefined && value !== null && String(value) === f.value;
    return f.condition === 'equals' ? equal : !equal;
  });
}

/**
 * What a registration becomes in the backend: the port override, the weight only with
 * use_nerve_weights (then without `weight` in the options, as upstream), and the per-server text —
 * filled-in `server_options`, `cookie`, the registration's own options — that only a slot
 * rendered with the same text fits.
 */
function desiredServer(service: LoadedSynapseService, host: string, r: Registration, label: string): DesiredServer {
  const port = service.portOverride ?? r.port;
  const weighted = service.useNerveWeights && r.weight !== undefined;
  const strip = (text: string): string => (weighted ? text.replace(/(^| )weight [0-9]+/g, '').trim() : text);
  // Upstream's server name, which the placeholders and the cookie use.
  const name = r.name ? `${r.name}_${r.host}:${port}` : `${r.host}:${port}`;
  let options = [
    service.serverOptionsTemplate === undefined ? '' : strip(fillServerOptions(service.serverOptionsTemplate, r.host, port, name)),
    service.cookie === undefined ? '' : `cookie ${service.cookie === 'hash' ? createHash('sha1').update(name).digest('hex') : name}`,
    strip(r.haproxy_server_options ?? ''),
  ].filter((p) => p !== '').join(' ');
  let weight = weighted ? r.weight : undefined;
  // A `weight` in the per-server text becomes the slot's weight (HAProxy takes the last one): the
  // renderer writes it at the end of the line, where reading the file back expects it.
  const inText = [...options.matchAll(/(?:^| )weight ([0-9]+)/g)];
  if (inText.length > 0) {
    weight ??= Number(inText[inText.length - 1][1]);
    options = options.replace(/(^| )weight [0-9]+/g, '').trim();
  }
  return { host, port, weight, options, label };
}

/** `backend_order`: the order new servers take free slots; shuffled with the seed when unset. */
function orderServers(service: LoadedSynapseService, servers: DesiredServer[], seed: number): void {
  const key = (s: DesiredServer): string => `${s.label}_${s.host}:${s.port}`;
  if (service.backendOrder === 'asc') servers.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  else if (service.backendOrder === 'desc') servers.sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0));
  else if (service.backendOrder === undefined) {
    let state = seed >>> 0;
    const random = (): number => {
      // mulberry32: a small seeded generator, so one host's order is the same at every sync.
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    servers.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    for (let i = servers.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [servers[i], servers[j]] = [servers[j], servers[i]];
    }
  }
}

/** `file_output`: `<dir>/<service>.json` with the service's servers, replaced atomically when it changes. */
async function writeFileOutput(dir: string, service: string, servers: readonly object[]): Promise<void> {
  const path = join(dir, `${service}.json`);
  const text = JSON.stringify(servers);
  if ((await fs.readFile(path, 'utf8').catch(() => undefined)) === text) return;
  await fs.mkdir(dir, { recursive: true });
  const temp = join(dir, `.${service}.json.tmp`);
  await fs.writeFile(temp, text, { mode: 0o644 });
  await fs.rename(temp, path);
}

/** An IP address for a registration's host; hostnames are looked up (the socket takes addresses only). */
async function resolve(host: string): Promise<string | undefined> {
  if (isIpAddress(host)) return host;
  try {
    return (await dns.lookup(host)).address;
  } catch {
    return undefined;
  }
}
