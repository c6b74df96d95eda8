import { Logger } from './log';
import { Metrics } from './metrics';
import { ServiceCheck } from './service-check';
import { ZkRegistration } from './zk-registration';
import { registerZkSessionMetrics } from './zk-session-metrics';
import { ZkSession, ZkSessionOptions } from './zk-session';
import { LoadedNerveConfig, LoadedNerveService } from '../schema/nerve-config-loader';
import { encodeRegistration } from '../schema/registration-codec';
import { readZookeeperCredentials } from '../schema/zookeeper-credentials';

export interface NerveOptions {
  readonly log: Logger;
  readonly metrics?: Metrics;
  /** Passed to every ZooKeeper session. */
  readonly zk?: Omit<ZkSessionOptions, 'log'>;
}

/** One provided service: its checks, run every `check_interval`, and its registration. */
class WatchedService {
  public readonly checks: ServiceCheck[];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private up = false;
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

  public stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    const started = Date.now();
    await Promise.all(this.checks.map(async (check) => {
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
    const up = this.checks.every((c) => c.up);
    if (up !== this.up) {
      this.up = up;
      this.log.info(up ? 'service up' : 'service down');
    }
    this.metrics?.gauge('nerve_service_up', 'Whether every check of a service is up (1) or not (0).').set({ service: this.service.name }, up ? 1 : 0);
    this.registration.setUp(up);
    this.timer = setTimeout(() => void this.round(), Math.max(0, this.service.checkIntervalMs - (Date.now() - started)));
  }
}

/**
 * The nerve agent: health-checks the services this host provides and keeps one ephemeral
 * registration per up service in ZooKeeper, in the upstream payload format. One session per
 * set of ZooKeeper hosts is shared by the services that name it, and authenticates as every
 * identity their `zk_auth_file`s hold. Credentials files are read once, here: a file that is
 * refused throws a ConfigError before anything connects.
 */
export class Nerve {
  private readonly sessions = new Map<string, ZkSession>();
  private readonly services: WatchedService[] = [];

  public constructor(public readonly config: LoadedNerveConfig, private readonly options: NerveOptions) {
    const metrics = options.metrics;
    for (const service of config.services) {
      const log = options.log.child({ service: service.name });
      const session = this.session(service.zkHosts);
      const credentials = service.zkAuthFile === undefined ? undefined : readZookeeperCredentials(service.zkAuthFile);
      if (credentials) session.addCredentials(credentials);
      const payload = encodeRegistration({
        host: service.host,
        port: service.port,
        name: config.instanceId,
        ...(service.weight !== undefined ? { weight: service.weight } : {}),
        ...(service.haproxyServerOptions !== undefined ? { haproxy_server_options: service.haproxyServerOptions } : {}),
        ...(service.labels !== undefined ? { labels: service.labels } : {}),
      });
      const labels = { service: service.name };
      const registration = new ZkRegistration(session, service.zkPath, config.instanceId, payload, log, {
        onRegistered: () => metrics?.counter('nerve_registrations_total', 'Registrations created in ZooKeeper.').inc(labels),
        onDeregistered: () => metrics?.counter('nerve_deregistrations_total', 'Registrations deleted from ZooKeeper.').inc(labels),
        onError: () => metrics?.counter('nerve_registration_errors_total', 'Failed registration steps (retried).').inc(labels),
        onNoAuth: (e) => metrics?.counter('nerve_zk_no_auth_total', 'ZooKeeper requests refused for lack of permission (NoAuth).').inc({ ...labels, operation: e.operation ?? '' }),
      }, credentials, service.zkReadAcl);
      this.services.push(new WatchedService(service, registration, log, metrics));
    }
    metrics?.gauge('nerve_registered', 'Whether the service has its node in ZooKeeper (1) or not (0).', () =>
      this.services.map((s) => ({ labels: { service: s.service.name }, value: s.registration.registeredPath ? 1 : 0 })));
    if (metrics) registerZkSessionMetrics(metrics, this.sessions);
  }

  /** Connects and starts checking; registrations follow as soon as checks pass and a session exists. */
  public start(): void {
    for (const session of this.sessions.values()) void session.start();
    for (const service of this.services) service.start();
  }

  /** The registered node of a service, if any. */
  public registeredPath(service: string): string | undefined {
    return this.services.find((s) => s.service.name === service)?.registration.registeredPath;
  }

  /** Stops checking, deletes every registration and ends the sessions. */
  public async stop(): Promise<void> {
    this.services.forEach((s) => s.stop());
    await Promise.all(this.services.map((s) => s.registration.stop()));
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }

  private session(hosts: string[]): ZkSession {
    const key = [...hosts].sort().join(',');
    let session = this.sessions.get(key);
    if (!session) {
      session = new ZkSession(key, { ...this.options.zk, log: this.options.log });
      this.sessions.set(key, session);
    }
    return session;
  }
}
