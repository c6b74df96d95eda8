import { Construct } from 'constructs';
import { HealthCheck, HealthCheckType } from './model/health-check';
import { STATS_SECTION_NAME } from './render/synapse-config';
import { configSafe, Fail, tcpPort } from './schema/config-safe';
import { addConstructWarning } from './construct-warning';
import { ManifestBuilder } from './mesh-manifest';
import { MeshRecords } from './mesh-records';
import { ManifestService } from './model/manifest';
import { ValidationError } from './model/validation-error';
import { VdsNode } from './vds-node';
import { ZookeeperEnsemble } from './zookeeper-ensemble';

/** How HAProxy treats a service's traffic. */
export enum ServiceMode {
  /** HTTP: requests are parsed, so failed idempotent requests can be retried on another instance. */
  HTTP = 'http',
  /** Plain TCP: only failed connections can be retried. */
  TCP = 'tcp',
}

/** How HAProxy spreads requests over a service's healthy instances. */
export enum Balance {
  /** In turn, by weight. */
  ROUND_ROBIN = 'roundrobin',
  /** To the instance with the fewest connections: a slow instance gets less work. */
  LEAST_CONN = 'leastconn',
  /** Random, by weight. */
  RANDOM = 'random',
  /** By a (consistent) hash of the client's address: a client sticks to one instance. */
  SOURCE = 'source',
  /** To the first instance with a free connection slot. */
  FIRST = 'first',
}

/** A fixed server the consumers use while the service has no registrations. */
export interface DefaultServer {
  /**
   * Server name in HAProxy.
   * @default `default-<n>`
   */
  readonly name?: string;
  /** IPv4 address or host name. */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/** Properties of a {@link SmartStackService}. */
export interface SmartStackServiceProps {
  /** The ZooKeeper ensemble the service registers in. */
  readonly ensemble: ZookeeperEnsemble;
  /**
   * The service name: lower-case letters, digits, `_`, `.` and `-`. It names the HAProxy
   * frontend and backend and the nerve and synapse entries.
   * @default the construct id
   */
  readonly serviceName?: string;
  /** The port the service listens on at its providers. */
  readonly port: number;
  /**
   * The port on 127.0.0.1 where consumers reach the service. Required to consume it.
   * @default - the service cannot be consumed
   */
  readonly localPort?: number;
  /**
   * How an instance is judged healthy.
   * @default HealthCheck.tcp()
   */
  readonly healthCheck?: HealthCheck;
  /** @default ServiceMode.HTTP */
  readonly mode?: ServiceMode;
  /**
   * ZooKeeper path the instances register under.
   * @default `/services/<serviceName>`
   */
  readonly discoveryPath?: string;
  /**
   * The hosts that provide the service. Each needs a `HaproxySidecar`, created before or after
   * this service, which then provides it without listing it. Leave unset to declare providers
   * only in the sidecars' `provides`.
   * @default - providers are the sidecars that list the service
   */
  readonly providers?: VdsNode[];
  /** @default Balance.ROUND_ROBIN */
  readonly balance?: Balance;
  /**
   * Connection attempts retried after the first fails.
   * @default 3
   */
  readonly retries?: number;
  /**
   * Send each retry to another instance (`option redispatch 1`).
   * @default true
   */
  readonly redispatch?: boolean;
  /**
   * When an HTTP request is retried (HAProxy `retry-on` keywords). Only `conn-failure` applies to TCP.
   * @default ['conn-failure', 'empty-response', 'response-timeout'] for HTTP, none for TCP
   */
  readonly retryOn?: string[];
  /**
   * Retry requests of any method, not only GET, HEAD and OPTIONS. Only for services whose every
   * endpoint is idempotent: a retried POST may be executed twice.
   * @default false
   */
  readonly retryNonIdempotent?: boolean;
  /**
   * How long a connection to an instance may take. Short, so that a dead host is skipped fast.
   * @default 1000
   */
  readonly connectTimeoutMs?: number;
  /** @default 60 */
  readonly clientTimeoutSeconds?: number;
  /**
   * How long an instance may take to answer before the request fails (or is retried).
   * @default 60
   */
  readonly serverTimeoutSeconds?: number;
  /**
   * How long a request may wait for a free connection slot.
   * @default 5
   */
  readonly queueTimeoutSeconds?: number;
  /**
   * Server slots each consumer's HAProxy keeps for instances added at run time, without a reload.
   * @default 16
   */
  readonly serverSlots?: number;
  /**
   * HAProxy weight of each instance, 0-256.
   * @default - HAProxy's default (1)
   */
  readonly weight?: number;
  /**
   * How many hosts that provide the service a change applies at once: a count (1-1000), or a
   * percentage of the service's providers (`'25%'`, rounded down, at least 1). The others keep
   * serving: each provider's apply returns only once its nerve has registered the service again,
   * and the next batch waits for it (Terraform `depends_on`).
   * @default 1
   */
  readonly maxUnavailableProviders?: number | string;
  /**
   * Labels registered with each instance.
   * @default none
   */
  readonly labels?: { [key: string]: string };
  /**
   * Servers used while the service has no registrations.
   * @default none
   */
  readonly defaultServers?: DefaultServer[];
  /**
   * Keep the default servers in rotation even when instances are registered.
   * @default false
   */
  readonly keepDefaultServers?: boolean;
  /**
   * Networks (CIDR) that may reach the instances' port besides the hosts that consume the service
   * through a sidecar (those are allowed one by one).
   * @default none
   */
  readonly clientNetworks?: string[];
}

const RETRY_ON = [
  'none', 'conn-failure', 'empty-response', 'junk-response', 'response-timeout', '0rtt-rejected', 'all-retryable-errors',
  '401', '403', '404', '408', '425', '500', '501', '502', '503', '504',
];

/**
 * One logical service of the mesh: its name, where its instances listen and register, how they are
 * checked, and how the consumers' HAProxy treats them. Hosts provide or consume it through a
 * `HaproxySidecar`.
 */
export class SmartStackService extends Construct {
  /** Whether the construct is a SmartStackService. */
  public static isSmartStackService(x: unknown): x is SmartStackService {
    return x instanceof SmartStackService;
  }

  public readonly serviceName: string;
  public readonly ensemble: ZookeeperEnsemble;
  public readonly port: number;
  public readonly localPort?: number;
  public readonly healthCheck: HealthCheck;
  public readonly mode: ServiceMode;
  public readonly discoveryPath: string;
  /** The hosts declared in `providers`, if any. */
  public readonly providers?: VdsNode[];
  public readonly balance: Balance;
  public readonly retries: number;
  public readonly redispatch: boolean;
  public readonly retryOn: string[];
  public readonly retryNonIdempotent: boolean;
  public readonly connectTimeoutMs: number;
  public readonly clientTimeoutSeconds: number;
  public readonly serverTimeoutSeconds: number;
  public readonly queueTimeoutSeconds: number;
  public readonly serverSlots: number;
  public readonly weight?: number;
  /** A count, or a percentage of the providers (`'25%'`), as given; {@link providersAtOnce} says how many that is. */
  public readonly maxUnavailableProviders: number | string;
  public readonly labels: { [key: string]: string };
  /** Default servers, with their names filled in. */
  public readonly defaultServers: DefaultServer[];
  public readonly keepDefaultServers: boolean;
  /** Networks that may reach the instances' port besides the consuming hosts. */
  public readonly clientNetworks: string[];

  private warnedUnprovided = false;

  public constructor(scope: Construct, id: string, props: SmartStackServiceProps) {
    super(scope, id);
    const fail = (field: string, value: unknown, reason: string) => new ValidationError(this, 'SmartStackService', field, value, reason);

    if (!(props.ensemble instanceof ZookeeperEnsemble)) {
      throw fail('ensemble', String(props.ensemble), 'expected a ZookeeperEnsemble');
    }
    this.ensemble = props.ensemble;
    this.serviceName = configSafe(fail, 'serviceName', props.serviceName ?? id, 'serviceName');
    if (this.serviceName === STATS_SECTION_NAME) {
      throw fail('serviceName', this.serviceName, 'reserved for the sidecar\'s stats listener');
    }
    this.port = tcpPort(fail, 'port', props.port);
    this.localPort = props.localPort === undefined ? undefined : tcpPort(fail, 'localPort', props.localPort);
    this.mode = props.mode ?? ServiceMode.HTTP;
    if (!Object.values(ServiceMode).includes(this.mode)) throw fail('mode', this.mode, 'expected ServiceMode.HTTP or ServiceMode.TCP');
    this.healthCheck = validHealthCheck(fail, props.healthCheck ?? HealthCheck.tcp());

    this.discoveryPath = configSafe(fail, 'discoveryPath', props.discoveryPath ?? `/services/${this.serviceName}`, 'zkPath');

    this.balance = props.balance ?? Balance.ROUND_ROBIN;
    if (!Object.values(Balance).includes(this.balance)) throw fail('balance', this.balance, `expected one of ${Object.values(Balance).join(', ')}`);
    this.retries = wholeNumber(fail, 'retries', props.retries ?? 3, 0, 100);
    this.redispatch = props.redispatch ?? true;
    this.retryOn = validRetryOn(fail, this.mode, props.retryOn);
    this.retryNonIdempotent = props.retryNonIdempotent ?? false;
    this.connectTimeoutMs = wholeNumber(fail, 'connectTimeoutMs', props.connectTimeoutMs ?? 1000, 1, 3_600_000);
    this.clientTimeoutSeconds = wholeNumber(fail, 'clientTimeoutSeconds', props.clientTimeoutSeconds ?? 60, 1, 86_400);
    this.serverTimeoutSeconds = wholeNumber(fail, 'serverTimeoutSeconds', props.serverTimeoutSeconds ?? 60, 1, 86_400);
    this.queueTimeoutSeconds = wholeNumber(fail, 'queueTimeoutSeconds', props.queueTimeoutSeconds ?? 5, 1, 3_600);
    this.serverSlots = wholeNumber(fail, 'serverSlots', props.serverSlots ?? 16, 1, 1024);
    this.weight = props.weight === undefined ? undefined : wholeNumber(fail, 'weight', props.weight, 0, 256);
    this.maxUnavailableProviders = validBatch(fail, props.maxUnavailableProviders ?? 1);
    this.labels = validLabels(fail, props.labels ?? {});
    this.defaultServers = validDefaultServers(fail, props.defaultServers ?? []);
    this.keepDefaultServers = props.keepDefaultServers ?? false;
    this.clientNetworks = [...(props.clientNetworks ?? [])];
    this.clientNetworks.forEach((cidr, i) => configSafe(fail, `clientNetworks[${i}]`, cidr, 'ipv4Cidr'));
    if (this.keepDefaultServers && this.defaultServers.length === 0) {
      throw fail('keepDefaultServers', true, 'there are no defaultServers to keep');
    }

    const records = MeshRecords.of(this);
    if (props.providers !== undefined) {
      const providers = [...props.providers];
      providers.forEach((host, i) => {
        if (!VdsNode.isVdsNode(host)) throw fail(`providers[${i}]`, String(host), 'expected a VdsNode');
        const j = providers.indexOf(host);
        if (j !== i) throw fail(`providers[${i}]`, host.hostname, `the same host as providers[${j}]`);
      });
      this.providers = providers;
    }

    this.checkUniqueInStack(fail);
    // A provider whose sidecar exists already provides the service from now on: its ports are
    // checked as the sidecar's constructor checks the services it finds.
    const claims = (this.providers ?? []).flatMap((host) => {
      const sidecar = records.sidecarOf(host);
      if (!sidecar) return [];
      const ports = sidecar._portsFor(this);
      host._checkPorts(sidecar, ports);
      return [{ host, sidecar, ports }];
    });
    // Recorded only once every check has passed: a rejected service leaves nothing behind.
    records.addService(this);
    this.ensemble._addService(this);
    claims.forEach(({ host, sidecar, ports }) => ports.forEach(({ port, field }) => host.reservePort(port, sidecar, field)));
    this.node.addValidation({ validate: () => this.validateTopology() });
  }

  /**
   * How many of `providers` hosts that provide the service a change applies at once:
   * `maxUnavailableProviders`, or that percentage of them rounded down, at least 1.
   */
  public providersAtOnce(providers: number): number {
    const batch = this.maxUnavailableProviders;
    return typeof batch === 'number' ? batch : Math.max(1, Math.floor((providers * Number(batch.slice(0, -1))) / 100));
  }

  /**
   * Tells the manifest about the service, with its providers in rollout order.
   * @internal
   */
  public _describeInto(manifest: ManifestBuilder): void {
    manifest.addService(this.describe());
  }

  private describe(): ManifestService {
    const check = this.healthCheck;
    const records = MeshRecords.of(this);
    return {
      name: this.serviceName,
      construct: this.node.path,
      ensemble: this.ensemble.node.path,
      discoveryPath: this.discoveryPath,
      port: this.port,
      ...(this.localPort !== undefined ? { localPort: this.localPort } : {}),
      mode: this.mode,
      check: {
        type: check.type === HealthCheckType.HTTP ? 'http' : 'tcp',
        ...(check.path !== undefined ? { path: check.path } : {}),
        ...(check.expectStatus !== undefined ? { expectStatus: check.expectStatus } : {}),
        ...(check.expectBody !== undefined ? { expectBody: check.expectBody } : {}),
        intervalSeconds: check.intervalSeconds,
        timeoutSeconds: check.timeoutSeconds,
        rise: check.rise,
        fall: check.fall,
      },
      clientNetworks: [...this.clientNetworks],
      providers: records.providersOf(this).map(({ host, port, weight }) => ({ host: host.hostname, port, ...(weight !== undefined ? { weight } : {}) })),
      consumers: records.consumersOf(this).map((h) => h.hostname).sort(),
      rollout: { maxUnavailableProviders: this.providersAtOnce(records.providersOf(this).length) },
    };
  }

  /** Names, discovery paths and local ports are the mesh's addresses: two services cannot share one. */
  private checkUniqueInStack(fail: (field: string, value: unknown, reason: string) => Error): void {
    const others = MeshRecords.of(this).services;
    for (const other of others) {
      if (other.serviceName === this.serviceName) {
        throw fail('serviceName', this.serviceName, `already the name of ${other.node.path}`);
      }
      if (other.ensemble === this.ensemble && other.discoveryPath === this.discoveryPath) {
        throw fail('discoveryPath', this.discoveryPath, `already the discovery path of ${other.node.path} in the same ensemble`);
      }
      if (this.localPort !== undefined && other.localPort === this.localPort) {
        throw fail('localPort', this.localPort, `already the local port of ${other.node.path} (${other.serviceName}); a host consuming both could not bind it twice`);
      }
    }
  }

  /** Runs at synth, when every sidecar exists. */
  private validateTopology(): string[] {
    const records = MeshRecords.of(this);
    const providedOn = new Set(records.providersOf(this).map((p) => p.host));
    const consumedOn = records.consumersOf(this);
    const errors: string[] = [];
    for (const host of this.providers ?? []) {
      if (!providedOn.has(host)) {
        errors.push(
          `SmartStackService '${this.node.path}': providers includes host ${host.hostname}, but no HaproxySidecar provides ` +
            `${this.serviceName} there, so nothing would register it: add a HaproxySidecar to ${host.node.path}`,
        );
      }
    }
    if (consumedOn.length > 0 && providedOn.size === 0 && this.defaultServers.length === 0 && !this.warnedUnprovided) {
      this.warnedUnprovided = true;
      const consumers = consumedOn.map((h) => h.hostname).sort().join(', ');
      addConstructWarning(
        this,
        `SmartStackService '${this.node.path}': ${this.serviceName} is consumed on ${consumers} but no HaproxySidecar in this ` +
          `app provides it and it has no defaultServers: localhost:${this.localPort} will refuse requests unless instances ` +
          `outside this app register under ${this.discoveryPath}`,
      );
    }
    return errors;
  }
}



function wholeNumber(fail: Fail, field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw fail(field, value, `expected a whole number from ${min} to ${max}`);
  return value;
}

/** A count of providers (1-1000) or a percentage of them ('1%'-'100%'). */
function validBatch(fail: Fail, value: number | string): number | string {
  const expected = "expected a whole number from 1 to 1000, or a percentage of the service's providers from '1%' to '100%'";
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 1000) throw fail('maxUnavailableProviders', value, expected);
    return value;
  }
  const percent = typeof value === 'string' ? /^([1-9][0-9]?|100)%$/.exec(value) : null;
  if (!percent) throw fail('maxUnavailableProviders', value, expected);
  return value;
}

function validHealthCheck(fail: Fail, check: HealthCheck): HealthCheck {
  if (!(check instanceof HealthCheck)) throw fail('healthCheck', String(check), 'expected HealthCheck.http(...) or HealthCheck.tcp(...)');
  const seconds = (field: string, value: number) => {
    // HAProxy and nerve both take milliseconds at best.
    if (typeof value !== 'number' || !(value >= 0.1 && value <= 3600) || Math.abs(Math.round(value * 1000) - value * 1000) > 1e-6) {
      throw fail(`healthCheck.${field}`, value, 'expected seconds from 0.1 to 3600, to the millisecond');
    }
  };
  seconds('intervalSeconds', check.intervalSeconds);
  seconds('timeoutSeconds', check.timeoutSeconds);
  if (check.timeoutSeconds > check.intervalSeconds) {
    throw fail('healthCheck.timeoutSeconds', check.timeoutSeconds, `longer than intervalSeconds (${check.intervalSeconds}): checks would overlap`);
  }
  wholeNumber(fail, 'healthCheck.rise', check.rise, 1, 100);
  wholeNumber(fail, 'healthCheck.fall', check.fall, 1, 100);
  if (check.type === HealthCheckType.HTTP) {
    configSafe(fail, 'healthCheck.path', check.path, 'httpPath');
    if (check.expectStatus !== undefined && (!Number.isInteger(check.expectStatus) || check.expectStatus < 200 || check.expectStatus > 399)) {
      throw fail('healthCheck.expectStatus', check.expectStatus, 'expected a status from 200 to 399 (nerve passes only 2xx and 3xx)');
    }
    if (check.expectBody !== undefined) configSafe(fail, 'healthCheck.expectBody', check.expectBody, 'checkWord');
  }
  return check;
}

function validRetryOn(fail: Fail, mode: ServiceMode, retryOn?: string[]): string[] {
  if (retryOn === undefined) return mode === ServiceMode.HTTP ? ['conn-failure', 'empty-response', 'response-timeout'] : [];
  const list = [...retryOn];
  list.forEach((keyword, i) => {
    if (!RETRY_ON.includes(keyword)) throw fail(`retryOn[${i}]`, keyword, `expected one of ${RETRY_ON.join(', ')}`);
    if (list.indexOf(keyword) !== i) throw fail(`retryOn[${i}]`, keyword, 'listed twice');
  });
  if (list.includes('none') && list.length > 1) throw fail('retryOn', list, "'none' cannot be combined with other keywords");
  if (mode === ServiceMode.TCP && list.some((k) => k !== 'conn-failure' && k !== 'none')) {
    throw fail('retryOn', list, 'a TCP service can only retry failed connections (retries and redispatch do that); the other keywords need ServiceMode.HTTP');
  }
  return mode === ServiceMode.TCP || list.includes('none') ? [] : list;
}

function validLabels(fail: Fail, labels: { [key: string]: string }): { [key: string]: string } {
  const out: { [key: string]: string } = {};
  for (const key of Object.keys(labels).sort()) {
    configSafe(fail, 'labels', key, 'labelKey');
    out[key] = configSafe(fail, `labels.${key}`, labels[key], 'labelValue');
  }
  return out;
}

function validDefaultServers(fail: Fail, servers: DefaultServer[]): DefaultServer[] {
  const names = new Set<string>();
  return servers.map((server, i) => {
    const name = configSafe(fail, `defaultServers[${i}].name`, server.name ?? `default-${i + 1}`, 'serverName');
    if (names.has(name)) throw fail(`defaultServers[${i}].name`, name, 'two default servers have this name');
    names.add(name);
    const host = configSafe(fail, `defaultServers[${i}].host`, server.host, 'address');
    return { name, host, port: tcpPort(fail, `defaultServers[${i}].port`, server.port) };
  });
}
