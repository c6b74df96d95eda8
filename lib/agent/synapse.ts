import { promises as dns } from 'dns';
import { promises as fs, readFileSync } from 'fs';
import { join } from 'path';
import { CoalescedRun } from './coalesced-run';
import { desiredServer, matchesLabels, orderServers, placedBackends } from './synapse-servers';
import { BackendPlan, DesiredServer, planBackend, serverKey, slotDifferences, SlotState, slotStates, SlotTarget, staleSlots } from './backend-slots';
import { HaproxyReloader, ReloadError } from './haproxy-reloader';
import { HaproxyMaster, HaproxyRuntime, HaproxyServerState } from './haproxy-runtime';
import { Logger } from './log';
import { Metrics } from './metrics';
import { DiscoveredInstance, ZkServiceWatcher } from './zk-service-watcher';
import { ZkSession, ZkSessionOptions } from './zk-session';
import { registerZkSessionMetrics } from './zk-session-metrics';
import { renderedSlots } from '../render/haproxy-config';
import { isIpAddress } from '../schema/haproxy-safe';
import { Registration } from '../schema/registration';
import { LoadedSynapseConfig, LoadedSynapseService } from './synapse-config-loader';
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
  /**
   * The one loop: discovery events, a new HAProxy worker, retries, rate-limited reloads and the
   * periodic resync all ask it for a sync by some time, and one sync serves every ask before it.
   */
  private readonly syncRun: CoalescedRun;
  private stopped = false;
  private workerTimer?: NodeJS.Timeout;
  private lastWorker?: string;
  private lastReloadAt = 0;
  /** restart_interval stretched by restart_jitter, drawn after each reload. */
  private restartDelayMs: number;
  private haproxyReachable = false;
  private readonly inService = new Map<string, number>();
  /** Per service: the latest discovery report, so a slower older one is dropped. */
  private readonly reports = new Map<string, number>();
  /**
   * Services listed at least once since start. Until every one is, servers are only added: a
   * restarted synapse starts from what HAProxy serves and removes nothing on a partial view.
   */
  private readonly listed = new Set<string>();
  private waitingLogged = false;
  /** Removals put off until a wanted server passes its checks (`backend/slot host:port`), logged once each. */
  private readonly deferredRemovals = new Set<string>();
  /** The reasons of the last reload synapse made, until a sync finds none. */
  private reloadedFor?: string;
  private unfixedLogged = false;

  public constructor(public readonly config: LoadedSynapseConfig, private readonly options: SynapseOptions) {
    const h = config.haproxy;
    if (h.doSocket && h.socketFilePath !== undefined) this.runtime = new HaproxyRuntime(h.socketFilePath);
    if (h.masterSocketFilePath !== undefined) this.master = new HaproxyMaster(h.masterSocketFilePath);
    this.reloader = new HaproxyReloader(config, this.runtime, this.master, options.log, options.haproxyBinary);
    // A restarted HAProxy comes back with the servers of its config file: with the runtime socket, a
    // sync at least every RESYNC_MS puts ours back (without it every sync is a reload).
    this.syncRun = new CoalescedRun(() => this.syncOnce(), this.runtime ? RESYNC_MS : undefined);
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
    if (this.runtime) this.syncRun.requestWithin(RESYNC_MS);
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
      if (this.markListed(service.name)) this.schedule();
      return;
    } else {
      next = [];
    }
    this.markListed(service.name);
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

  /** Records a service's first listing since start; true when it is the first. */
  private markListed(name: string): boolean {
    if (this.listed.has(name)) return false;
    this.listed.add(name);
    return true;
  }

  /** Runs a sync now; syncs never overlap and a request during one runs another after it. */
  private schedule(): void {
    this.syncRun.request();
  }

  /** Runs a sync within `ms`, or sooner when anything else asks for one. */
  private scheduleWithin(ms: number): void {
    this.syncRun.requestWithin(ms);
  }

  private async syncOnce(): Promise<void> {
    const syncs = this.options.metrics?.counter('synapse_syncs_total', 'Comparisons of HAProxy with discovery (and the changes they made), by result.');
    try {
      await this.sync();
      syncs?.inc({ result: 'ok' });
    } catch (e) {
      syncs?.inc({ result: 'error' });
      // A config HAProxy rejects, or a reload that is switched off, is not cured by retrying.
      const final = e instanceof ReloadError && (e.stage === 'check' || e.stage === 'disabled');
      this.options.log.error(final ? 'could not bring haproxy in line; waiting for the next change' : 'could not bring haproxy in line; retrying', { error: e as Error });
      if (!final) this.scheduleWithin(RETRY_MS);
    }
  }

  /**
   * Reads HAProxy's slots, applies what fits through the socket, reads back what HAProxy holds and
   * sets again what differs, and reloads (checked, atomic) for what the socket cannot do: servers
   * without a fitting slot, slots rendered with other options, a port-offset slot, a value that
   * does not stick.
   */
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
    // Until every service has been listed once, servers are only added: nothing is removed or reloaded.
    const complete = this.config.services.every((s) => this.listed.has(s.name));
    if (!complete && !this.waitingLogged) {
      this.options.log.info('until every service has been listed once, synapse only adds servers', {
        waiting: this.config.services.filter((s) => !this.listed.has(s.name)).map((s) => s.name),
      });
      this.waitingLogged = true;
    }
    const configText = this.readConfigFile();
    const reasons: string[] = [];
    const slots = new Map<string, SlotState[]>();
    const plans = new Map<string, BackendPlan>();
    for (const service of this.config.services) {
      const rendered = configText === undefined ? undefined : renderedSlots(configText, service.backendName);
      const current = slotStates(states.filter((x) => x.backend === service.backendName), rendered);
      slots.set(service.name, current);
      const desired = this.desired.get(service.name);
      if (desired === undefined) {
        reasons.push(...staleSlots(current, this.serverOptions(service) ?? '').map((r) => `${service.name}: ${r}`));
        continue;
      }
      plans.set(service.name, planBackend(current, desired, this.serverOptions(service) ?? ''));
    }

    let deferred = false;
    for (const service of this.config.services) {
      const plan = plans.get(service.name);
      if (!plan) continue;
      const log = this.options.log.child({ service: service.name });
      const b = service.backendName;
      // A reload renders the servers as planned, so servers it drops are not removed first.
      const reloading = plan.overflow.length > 0 || plan.stale.length > 0;
      if (plan.overflow.length > 0) reasons.push(`${service.name}: ${plan.overflow.map(serverKey).join(' ')} without a fitting free slot`);
      reasons.push(...plan.stale.map((r) => `${service.name}: ${r}`));
      // Make before break: while no wanted server passes its checks, one that does stays in service.
      const wantedUp = (slots.get(service.name) ?? []).some((x) => x.inService && x.up && plan.placement.some((p) => p.slot === x.index));
      const targets = new Map<string, SlotTarget>();
      for (const p of plan.placement) {
        const slot = (slots.get(service.name) ?? []).find((x) => x.index === p.slot)!;
        targets.set(slot.server, { host: p.server.host, port: p.server.port, weight: p.server.weight ?? slot.initialWeight });
      }
      let changed = false;
      for (const change of plan.changes) {
        const s = change.slot.server;
        if (change.kind === 'add') {
          await this.runtime!.setServerAddress(b, s, change.server.host, change.server.port);
          if (change.slot.weight !== change.weight) await this.runtime!.setServerWeight(b, s, change.weight);
          await this.runtime!.setServerState(b, s, 'ready');
          log.info('server added', { slot: s, server: `${change.server.host}:${change.server.port}`, instance: change.server.label });
        } else if (change.kind === 'weight') {
          await this.runtime!.setServerWeight(b, s, change.weight);
          log.info('server weight changed', { slot: s, weight: change.weight });
        } else if (reloading || !complete) {
          continue;
        } else if (change.slot.up && !wantedUp && plan.placement.length > 0) {
          const key = `${b}/${s} ${serverKey(change.slot)}`;
          if (!this.deferredRemovals.has(key)) log.info('server removal deferred: no registered server passes its checks yet', { slot: s, server: serverKey(change.slot) });
          this.deferredRemovals.add(key);
          deferred = true;
          continue;
        } else {
          this.deferredRemovals.delete(`${b}/${s} ${serverKey(change.slot)}`);
          await this.runtime!.setServerState(b, s, 'maint');
          targets.set(s, 'out');
          log.info('server removed', { slot: s, server: `${change.slot.host}:${change.slot.port}` });
        }
        changed = true;
        metrics?.counter('synapse_runtime_updates_total', 'Server changes made through the runtime socket.').inc({ service: service.name, action: change.kind });
      }
      const unrepaired = await this.readBack(service, targets, changed ? undefined : states, log);
      if (unrepaired.length > 0) reasons.push(`${service.name}: ${unrepaired.join(', ')} did not take the values set through the admin socket`);
      this.inService.set(service.name, plan.placement.length);
    }

    if (!complete) return;
    if (reasons.length > 0) {
      const key = reasons.join('\n');
      if (key === this.reloadedFor) {
        // The reload made for these very reasons did not cure them: another would not either.
        if (!this.unfixedLogged) this.options.log.error('a reload did not bring haproxy in line; not reloading again for the same reasons', { reasons });
        this.unfixedLogged = true;
        return;
      }
      this.options.log.info('reloading haproxy', { reasons });
      if (await this.reload(slots, plans)) this.reloadedFor = key;
      return;
    }
    this.reloadedFor = undefined;
    this.unfixedLogged = false;
    if (deferred) {
      // Checked again shortly; the file is rewritten once the removal is made.
      this.scheduleWithin(RETRY_MS);
      return;
    }
    const { backends, counts } = placedBackends(this.config.services, slots, plans, this.config.config);
    const persisted = await this.reloader.persist(backends, counts);
    if (persisted === 'reload') {
      this.options.log.info('haproxy.cfg differs from synapse.conf.json beyond its servers: reloading');
      await this.reload(slots, plans);
    }
  }

  /**
   * Reads back a backend's servers (or uses `known`, read before any change) and sets again every
   * slot that differs from its target. Returns the slots that still differ after that.
   */
  private async readBack(service: LoadedSynapseService, targets: Map<string, SlotTarget>, known: HaproxyServerState[] | undefined, log: Logger): Promise<string[]> {
    if (!this.runtime || targets.size === 0) return [];
    const b = service.backendName;
    const read = async () => known?.filter((x) => x.backend === b) ?? this.runtime!.serversState(b);
    const diffs = slotDifferences(targets, await read());
    if (diffs.length === 0) return [];
    log.warn('haproxy holds other servers than synapse set; setting them again', {
      slots: diffs.map((d) => `${d.server}: want ${d.want === 'out' ? 'out of service' : `${d.want.host}:${d.want.port} weight ${d.want.weight}`}, have ${d.have.host}:${d.have.port} admin ${d.have.adminState} weight ${d.have.weight}`),
    });
    this.options.metrics?.counter('synapse_runtime_repairs_total', 'Slots that HAProxy held otherwise than set, set again.').inc({ service: service.name }, diffs.length);
    for (const d of diffs) {
      if (d.want === 'out') {
        await this.runtime.setServerState(b, d.server, 'maint');
      } else {
        await this.runtime.setServerAddress(b, d.server, d.want.host, d.want.port);
        await this.runtime.setServerWeight(b, d.server, d.want.weight);
        await this.runtime.setServerState(b, d.server, 'ready');
      }
    }
    return slotDifferences(targets, await this.runtime.serversState(b)).map((d) => d.server);
  }

  /** Reloads with every server in its slot; false when the rate limit put it off. */
  private async reload(slots: Map<string, SlotState[]>, plans: Map<string, BackendPlan>): Promise<boolean> {
    const metrics = this.options.metrics;
    const wait = this.lastReloadAt + this.restartDelayMs - Date.now();
    if (wait > 0) {
      // Rate limit: the run-time part is done; the rest follows after the interval.
      this.scheduleWithin(wait);
      return false;
    }
    const { backends, counts } = placedBackends(this.config.services, slots, plans, this.config.config);
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
    // The new worker's servers are read back and repaired like any other change.
    this.schedule();
    return true;
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
      this.scheduleWithin(wait);
      return true;
    }
    const plans = new Map<string, BackendPlan>();
    for (const service of this.config.services) {
      const desired = this.desired.get(service.name);
      if (desired !== undefined) plans.set(service.name, planBackend([], desired));
    }
    const { backends, counts } = placedBackends(this.config.services, new Map(), plans, this.config.config);
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
    this.scheduleWithin(200);
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
