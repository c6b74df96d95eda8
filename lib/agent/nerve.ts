import { promises as fs } from 'fs';
import { Logger } from './log';
import { Metrics } from './metrics';
import { ServiceCheck } from './service-check';
import { ZkRegistration } from './zk-registration';
import { registerZkSessionMetrics } from './zk-session-metrics';
import { ZkSession, ZkSessionOptions } from './zk-session';
import { ConfigError } from '../schema/config-error';
import { LoadedNerveConfig, LoadedNerveService, loadNerveConfig } from './nerve-config-loader';
import { encodeChildNamePrefix, encodeRegistration } from '../schema/registration-codec';
import { Registration } from '../schema/registration';
import { readZookeeperCredentials } from '../schema/zookeeper-credentials';

export interface NerveOptions {
  readonly log: Logger;
  readonly metrics?: Metrics;
  /** Passed to every ZooKeeper session; its `sessionTimeoutMs` wins over the config's `zk_session_timeout`. */
  readonly zk?: Omit<ZkSessionOptions, 'log'>;
  /** Reload the config file on SIGHUP (as upstream). Default true. */
  readonly reloadOnSighup?: boolean;
}

/** How often `heartbeat_path` is touched, as upstream's main loop. */
const HEARTBEAT_MS = 10000;
/** Upstream's limit on a path-encoded child name. */
const PATH_ENCODING_MAX_LENGTH = 65536;

/** One provided service: its checks, run every `check_interval`, and its registration. */
class WatchedService {
  public readonly checks: ServiceCheck[];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private up = false;
  private rounds = 0;
  private readonly lastFailure = new Map<ServiceCheck, string | undefined>();

  public constructor(
    public readonly service: LoadedNerveService,
    public readonly registration: ZkRegistration,
    private readonly log: Logger,
    private readonly metrics: Metrics | undefined,
  ) {
    this.checks = service.checks.map((c) => new ServiceCheck(c));
  }

  public start(): void {
    void this.round();
  }

  /** Registered, or found down after enough rounds for every check to have risen: what it will be. */
  public get settled(): boolean {
    if (this.registration.registeredPath !== undefined) return true;
    const rise = Math.max(1, ...this.service.checks.map((c) => c.rise));
    return this.rounds > rise && !this.up;
  }

  public stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    const started = Date.now();
    // A node deleted from outside is re-created within one round (upstream pings every round).
    this.registration.verifyExists();
    await Promise.all(this.service.checkMocked ? [] : this.checks.map(async (check) => {
      const wasUp = check.up;
      const result = await check.run();
      const labels = { service: this.service.name, check: check.check.name };
      this.metrics?.counter('nerve_checks_total', 'Health check probes by result.').inc({ ...labels, result: result.ok ? 'pass' : 'fail' });
      this.metrics?.gauge('nerve_check_up', 'Whether a health check is up after rise/fall (1) or down (0).').set(labels, check.up ? 1 : 0);
      if (check.up !== wasUp) this.log.info(check.up ? 'check up' : 'check down', { check: check.check.name, reason: result.reason });
      // Each new reason a check fails for, once: why a service never comes up is then in the log.
      const failure = result.ok ? undefined : result.reason ?? 'failed';
      if (failure !== undefined && failure !== this.lastFailure.get(check)) this.log.info('check failed', { check: check.check.name, reason: failure });
      this.lastFailure.set(check, failure);
    }));
    if (this.stopped) return;
    const up = this.service.checkMocked || this.checks.every((c) => c.up);
    if (up !== this.up) {
      this.up = up;
      this.log.info(up ? 'service up' : 'service down', this.service.checkMocked ? { check_mocked: true } : {});
    }
    this.metrics?.gauge('nerve_service_up', 'Whether every check of a service is up (1) or not (0).').set({ service: this.service.name }, up ? 1 : 0);
    this.registration.setUp(up);
    this.rounds += 1;
    this.timer = setTimeout(() => void this.round(), Math.max(0, this.service.checkIntervalMs - (Date.now() - started)));
  }
}

/**
 * The nerve agent: health-checks the services this host provides and keeps one ephemeral
 * registration per up service in ZooKeeper, in the upstream payload format. One session per
 * set of ZooKeeper hosts is shared by the services that name it, and authenticates as every
 * identity their `zk_auth_file`s hold. Credentials files are read once per (re)load: a file that
 * is refused throws a ConfigError before anything connects.
 *
 * SIGHUP reads the config file again, as upstream: services whose settings are unchanged keep
 * running untouched (their registrations stay), removed ones are deregistered, added ones start,
 * and a changed one starts anew before the old one is stopped.
 */
export class Nerve {
  private readonly sessions = new Map<string, ZkSession>();
  private readonly services = new Map<string, WatchedService>();
  private config: LoadedNerveConfig;
  private started = false;
  private heartbeatTimer?: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();

  public constructor(config: LoadedNerveConfig, private readonly options: NerveOptions) {
    this.config = config;
    for (const service of config.services) this.services.set(service.name, this.watch(service, config));
    const metrics = options.metrics;
    metrics?.gauge('nerve_registered', 'Whether the service has its node in ZooKeeper (1) or not (0).', () =>
      [...this.services.values()].map((s) => ({ labels: { service: s.service.name }, value: s.registration.registeredPath ? 1 : 0 })));
    if (metrics) registerZkSessionMetrics(metrics, this.sessions);
  }

  /** The config in force (the reloaded one after a SIGHUP). */
  public get currentConfig(): LoadedNerveConfig {
    return this.config;
  }

  /** Connects and starts checking; registrations follow as soon as checks pass and a session exists. */
  public start(): void {
    this.started = true;
    for (const warning of this.config.warnings) this.options.log.warn('config key ignored', { detail: warning });
    for (const session of this.sessions.values()) void session.start();
    for (const service of this.services.values()) service.start();
    this.heartbeat();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    if (this.options.reloadOnSighup !== false) process.on('SIGHUP', this.onSighup);
  }

  /** The registered node of a service, if any. */
  public registeredPath(service: string): string | undefined {
    return this.services.get(service)?.registration.registeredPath;
  }

  /** Stops checking, deletes every registration and ends the sessions. */
  public async stop(): Promise<void> {
    process.off('SIGHUP', this.onSighup);
    clearInterval(this.heartbeatTimer);
    await this.reloading;
    const all = [...this.services.values()];
    all.forEach((s) => s.stop());
    await Promise.all(all.map((s) => s.registration.stop()));
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }

  /**
   * Brings the running services in line with `next`: unchanged ones are not touched, removed ones
   * are deregistered, new ones start, and a changed one runs beside the old until it has reported.
   */
  public reload(next: LoadedNerveConfig): Promise<void> {
    this.reloading = this.reloading.then(() => this.apply(next));
    return this.reloading;
  }

  private readonly onSighup = (): void => {
    const log = this.options.log;
    log.info('SIGHUP: reading the config again', { path: this.config.source });
    let next: LoadedNerveConfig;
    try {
      next = loadNerveConfig(this.config.source);
    } catch (e) {
      // Upstream would exit; keeping the running services is kinder to the fleet.
      log.error('config not reloaded: the file is refused; the running services stay as they are', {
        error: e instanceof ConfigError ? e.message : (e as Error).message,
      });
      return;
    }
    void this.reload(next).catch((e: Error) => log.error('config reload failed', { error: e }));
  };

  private async apply(next: LoadedNerveConfig): Promise<void> {
    const log = this.options.log;
    if (next.zkSessionTimeoutMs !== this.config.zkSessionTimeoutMs || next.metricsPort !== this.config.metricsPort) {
      log.warn('zk_session_timeout and metrics_port take effect at the next restart');
    }
    for (const warning of next.warnings) log.warn('config key ignored', { detail: warning });
    const previous = this.config;
    this.config = next;
    const wanted = new Set(next.services.map((s) => s.name));
    const removed = [...this.services.values()].filter((w) => !wanted.has(w.service.name));
    const replaced: WatchedService[] = [];
    const fresh: WatchedService[] = [];
    for (const service of next.services) {
      const running = this.services.get(service.name);
      if (running && sameService(running.service, service) && previous.instanceId === next.instanceId) continue;
      if (running) {
        // Its checks stop now, so it cannot re-create a node the replacement takes over or replaces.
        running.stop();
        replaced.push(running);
      }
      const w = this.watch(service, next);
      this.services.set(service.name, w);
      fresh.push(w);
    }
    for (const w of removed) this.services.delete(w.service.name);
    log.info('config reloaded', {
      unchanged: next.services.map((s) => s.name).filter((name) => !fresh.some((w) => w.service.name === name)),
      added: fresh.filter((w) => !replaced.some((r) => r.service.name === w.service.name)).map((w) => w.service.name),
      changed: replaced.map((w) => w.service.name),
      removed: removed.map((w) => w.service.name),
    });
    for (const w of fresh) w.start();
    for (const w of removed) {
      w.stop();
      await w.registration.stop();
    }
    // A changed service stays registered until its replacement is registered (or found down).
    const deadline = Date.now() + 30000;
    while (fresh.some((w) => !w.settled) && Date.now() < deadline) await sleep(50);
    for (const old of replaced) {
      const successor = this.services.get(old.service.name);
      // The replacement may have taken the very node over (same payload): it is not the old one's to delete.
      const kept = successor !== undefined && successor.registration.registeredPath === old.registration.registeredPath;
      await old.registration.stop(3000, !kept);
    }
    await this.closeUnusedSessions();
  }

  private watch(service: LoadedNerveService, config: LoadedNerveConfig): WatchedService {
    const metrics = this.options.metrics;
    const log = this.options.log.child({ service: service.name });
    const session = this.session(service.zkHosts, config);
    const credentials = service.zkAuthFile === undefined ? undefined : readZookeeperCredentials(service.zkAuthFile);
    if (credentials) session.addCredentials(credentials);
    const registration: Registration = {
      host: service.host,
      port: service.port,
      name: config.instanceId,
      ...(service.weight !== undefined ? { weight: service.weight } : {}),
      ...(service.haproxyServerOptions !== undefined ? { haproxy_server_options: service.haproxyServerOptions } : {}),
      ...(service.labels !== undefined ? { labels: service.labels } : {}),
    };
    const labels = { service: service.name };
    const registrationNode = new ZkRegistration(session, service.zkPath, nodePrefix(service, config, registration), encodeRegistration(registration), log, {
      onRegistered: () => metrics?.counter('nerve_registrations_total', 'Registrations created in ZooKeeper.').inc(labels),
      onDeregistered: () => metrics?.counter('nerve_deregistrations_total', 'Registrations deleted from ZooKeeper.').inc(labels),
      onError: () => metrics?.counter('nerve_registration_errors_total', 'Failed registration steps (retried).').inc(labels),
      onNoAuth: (e) => metrics?.counter('nerve_zk_no_auth_total', 'ZooKeeper requests refused for lack of permission (NoAuth).').inc({ ...labels, operation: e.operation ?? '' }),
    }, credentials, service.zkReadAcl);
    return new WatchedService(service, registrationNode, log, metrics);
  }

  private session(hosts: string[], config: LoadedNerveConfig): ZkSession {
    const key = [...hosts].sort().join(',');
    let session = this.sessions.get(key);
    if (!session) {
      session = new ZkSession(key, { sessionTimeoutMs: config.zkSessionTimeoutMs, ...this.options.zk, log: this.options.log });
      this.sessions.set(key, session);
      if (this.started) void session.start();
    }
    return session;
  }

  private async closeUnusedSessions(): Promise<void> {
    const used = new Set([...this.services.values()].map((s) => [...s.service.zkHosts].sort().join(',')));
    for (const [key, session] of [...this.sessions.entries()]) {
      if (used.has(key)) continue;
      this.sessions.delete(key);
      await session.close();
    }
  }

  private heartbeat(): void {
    const path = this.config.heartbeatPath;
    if (path === undefined) return;
    const now = new Date();
    void fs.open(path, 'a').then((f) => f.close()).then(() => fs.utimes(path, now, now)).catch((e: Error) => {
      this.options.log.warn('heartbeat_path could not be touched', { path, error: e });
    });
  }
}

/** The child-name prefix before ZooKeeper's sequence: `<instance_id>_`, or upstream's path encoding. */
function nodePrefix(service: LoadedNerveService, config: LoadedNerveConfig, registration: Registration): string {
  if (service.usePathEncoding) {
    const encoded = encodeChildNamePrefix(registration);
    if (encoded.length <= PATH_ENCODING_MAX_LENGTH) return encoded.slice(0, -1);
  }
  return config.instanceId;
}

function sameService(a: LoadedNerveService, b: LoadedNerveService): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
