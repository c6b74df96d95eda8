import { Construct } from 'constructs';
import { AgentRuntime, AgentRuntimeKind } from './agent-runtime';
import { PACKAGE } from './package-info';
import { DocumentContent, FirewallRule } from './cloud-init/document-content';
import { agentsPackage, agentsPackageFileName } from './cloud-init/agents-package';
import { AGENTS_COMMAND, AGENTS_DIR, CREDENTIALS_DIR, HAPROXY_BOOTSTRAP, HAPROXY_UNIT, NERVE_CONFIG, NERVE_UNIT, SYNAPSE_CONFIG, SYNAPSE_UNIT } from './cloud-init/host-paths';
import { renderHaproxyConfig } from './render/haproxy-config';
import { NerveSpec, ProvidedServiceSpec, renderNerveConfig } from './render/nerve-config';
import { ConsumedServiceSpec, renderSynapseConfig, synapseConfig, SynapseSpec } from './render/synapse-config';
import { renderTemplate } from './render/template';
import { configSafe, Fail, tcpPort } from './schema/config-safe';
import { SmartStackService } from './smartstack-service';
import { ManifestBuilder } from './mesh-manifest';
import { MeshRecords } from './mesh-records';
import { ManifestSidecar } from './model/manifest';
import { ValidationError } from './model/validation-error';
import { ReadinessCheck, VdsNode } from './vds-node';
import { ZookeeperEnsemble } from './zookeeper-ensemble';

/** Per-host settings of a provided service. */
export interface ProvideOptions {
  /**
   * The port the service listens on at this host.
   * @default the service's `port`
   */
  readonly port?: number;
  /**
   * HAProxy weight of this instance, 0-256 (0 drains it).
   * @default the service's `weight`
   */
  readonly weight?: number;
}

/** Per-host settings of one provided service. */
export interface ProviderOverride extends ProvideOptions {
  /** The service, which this sidecar must provide. */
  readonly service: SmartStackService;
}

/** Properties of a {@link HaproxySidecar}. */
export interface HaproxySidecarProps {
  /**
   * Services that run on this host: nerve checks them and registers the healthy ones. Services
   * that list this host in their `providers`, created before or after the sidecar, are added
   * without being listed here.
   * @default none
   */
  readonly provides?: SmartStackService[];
  /**
   * Services this host's applications call, each on 127.0.0.1:<localPort>.
   * @default none
   */
  readonly consumes?: SmartStackService[];
  /**
   * Port or weight of provided services that differ on this host.
   * @default none
   */
  readonly providerOverrides?: ProviderOverride[];
  /** @default AgentRuntime.node() */
  readonly runtime?: AgentRuntime;
  /**
   * Port on 127.0.0.1 of the HAProxy stats page (`/stats`) and Prometheus exporter (`/metrics`).
   * @default 3212
   */
  readonly statsPort?: number;
  /**
   * HAProxy's `maxconn`; the unit's descriptor limit is sized from it.
   * @default 4096
   */
  readonly maxConnections?: number;
}

const HAPROXY_STATE_DIR = '/var/lib/smartstack/haproxy';
const SYNAPSE_STATE_DIR = '/var/lib/smartstack/synapse';
const RUNTIME_DIR = 'smartstack-haproxy';
const NERVE_USER = 'nerve';
const SYNAPSE_USER = 'synapse';

/** Files, sockets and limits of the sidecar's HAProxy. */
const HAPROXY_PATHS = {
  configFilePath: `${HAPROXY_STATE_DIR}/haproxy.cfg`,
  adminSocketPath: `/run/${RUNTIME_DIR}/admin.sock`,
  masterSocketPath: `/run/${RUNTIME_DIR}/master.sock`,
  pidFilePath: `/run/${RUNTIME_DIR}/haproxy.pid`,
  serverStateFilePath: `${HAPROXY_STATE_DIR}/server-state`,
  synapseStateFilePath: `${SYNAPSE_STATE_DIR}/state.json`,
};

/**
 * The SmartStack sidecar of one host: nerve registers the services the host provides, synapse keeps
 * a local HAProxy pointed at healthy instances of the services it consumes. Adds the agents'
 * configuration, units, users, packages and firewall rules to the host's cloud-init document.
 *
 * Its inputs are checked when it is created, and when a later service names its host in
 * `providers`. Its part of the host's document is written from the whole mesh each time the
 * document is rendered, so the order in which sidecars and services are created does not change it.
 */
export class HaproxySidecar extends Construct {
  /** Whether the construct is a HaproxySidecar. */
  public static isHaproxySidecar(x: unknown): x is HaproxySidecar {
    return x instanceof HaproxySidecar;
  }

  /** The host's sidecar, if it has one. */
  public static of(host: VdsNode): HaproxySidecar | undefined {
    return host.node.children.find(HaproxySidecar.isHaproxySidecar);
  }

  public readonly host: VdsNode;
  public readonly runtime: AgentRuntime;
  /** Consumed services, sorted by name. */
  public readonly consumes: SmartStackService[];
  public readonly statsPort: number;
  public readonly maxConnections: number;

  /** The services listed in `provides`, and those that named the host before the sidecar existed, each with the field that brought it (for messages). */
  private readonly provided: Map<SmartStackService, string>;
  private readonly overrides: Map<SmartStackService, ProvideOptions & { field: string }>;
  /** Where the host keeps the agents' package, when the Node agents come from it. */
  private readonly agentsArchive?: string;

  public constructor(scope: VdsNode, id: string, props: HaproxySidecarProps = {}) {
    super(scope, id);
    const fail = (field: string, value: unknown, reason: string) => new ValidationError(this, 'HaproxySidecar', field, value, reason);

    if (!VdsNode.isVdsNode(scope)) {
      throw fail('scope', (scope as Construct).node.path, 'a HaproxySidecar must be created inside the VdsNode it runs on');
    }
    const host = scope;
    const other = host.node.children.find((c) => c !== this && HaproxySidecar.isHaproxySidecar(c));
    if (other) {
      throw fail('scope', host.hostname, `host ${host.hostname} already has a sidecar (${other.node.path}): one nerve, synapse and HAProxy per host; list every service in it`);
    }
    this.host = host;
    this.runtime = props.runtime ?? AgentRuntime.node();
    if (!(this.runtime instanceof AgentRuntime)) throw fail('runtime', String(this.runtime), 'expected AgentRuntime.node() or AgentRuntime.ruby()');
    // The versions end up in an install command run as root.
    configSafe(fail, 'runtime.nerveVersion', this.runtime.nerveVersion, 'version');
    configSafe(fail, 'runtime.synapseVersion', this.runtime.synapseVersion, 'version');
    this.statsPort = props.statsPort ?? 3212;
    tcpPort(fail, 'statsPort', this.statsPort);
    this.maxConnections = props.maxConnections ?? 4096;
    if (!Number.isInteger(this.maxConnections) || this.maxConnections < 1 || this.maxConnections > 1_000_000) {
      throw fail('maxConnections', this.maxConnections, 'expected a whole number from 1 to 1000000');
    }

    this.provided = this.collectProvided(fail, host, props.provides ?? []);
    this.overrides = this.collectOverrides(fail, this.provided, props.providerOverrides ?? []);
    this.consumes = this.collectConsumed(fail, props.consumes ?? []);
    this.checkRuntimeReaches(fail, [...this.provides, ...this.consumes]);

    // Every port the sidecar's processes or its services use on this host, so clashes surface here.
    for (const service of this.provides) {
      const override = this.overrides.get(service);
      host.reservePort(override?.port ?? service.port, this, override?.port !== undefined ? `${override.field}.port` : `${this.provided.get(service)}.port`);
    }
    // The default statsPort is not the user's choice: a clash with it is the local port's to resolve.
    const onStatsPort = this.consumes.find((service) => service.localPort === this.statsPort);
    if (onStatsPort && props.statsPort === undefined) {
      throw fail(
        `consumes[${onStatsPort.serviceName}].localPort`,
        onStatsPort.localPort,
        `the sidecar serves HAProxy's stats on port ${this.statsPort} by default (statsPort), so ${onStatsPort.node.path} cannot use it as its localPort: choose another localPort, or set this sidecar's statsPort`,
      );
    }
    this.consumes.forEach((service) => host.reservePort(service.localPort!, this, `consumes[${service.serviceName}].localPort`));
    if (this.consumes.length > 0) host.reservePort(this.statsPort, this, 'statsPort');
    if (this.provided.size > 0 && this.runtime.nerveMetricsPort !== undefined) {
      host.reservePort(this.runtime.nerveMetricsPort, this, 'runtime.nerveMetricsPort');
    }
    if (this.consumes.length > 0 && this.runtime.synapseMetricsPort !== undefined) {
      host.reservePort(this.runtime.synapseMetricsPort, this, 'runtime.synapseMetricsPort');
    }

    if (this.runtime.kind === AgentRuntimeKind.NODE && this.runtime.npmRegistry === undefined) {
      if (!host.delivery && this.runtime.packageUrl === undefined) {
        throw fail(
          'runtime.packageUrl',
          'none',
          `host ${host.hostname} is not delivered over SSH, so nothing uploads the agents' package to it: set AgentRuntime.node({ packageUrl: 'https://.../${agentsPackageFileName()}' }) ` +
            "(or a file:/// path your image places) for the host to fetch at its first boot, or AgentRuntime.node({ npmRegistry }), or deliver the host over SSH",
        );
      }
      this.agentsArchive = host._addAgentsPackage();
    }
    MeshRecords.of(this).addSidecar(host, this);
    // A service created later may still name this host: whether there is work is known at synth.
    this.node.addValidation({ validate: () => this.validateHasWork() });
    // The sidecar's part of the host's steps, rules and checks takes its place among the host's
    // additions now; what it writes there is worked out from the mesh when the document is rendered.
    host.cloudConfig._addPart((content) => this.writePart(content));
    host._addReadinessCheckPart(() => this.nerveReadinessCheck());
  }

  /** Provided services, sorted by name: those listed, and those that name this host in `providers`. */
  public get provides(): SmartStackService[] {
    const services = new Set(this.provided.keys());
    MeshRecords.of(this).servicesDeclaredOn(this.host).forEach((s) => services.add(s));
    return [...services].sort(byName);
  }

  /** The rendered `nerve.conf.json`, when the host provides a service: from the mesh as it is now. */
  public get nerveConfigJson(): string | undefined {
    const provides = this.provides;
    return provides.length > 0 ? renderNerveConfig(this.nerveSpec(provides)) : undefined;
  }

  /** The rendered `synapse.conf.json`, when the host consumes a service. */
  public get synapseConfigJson(): string | undefined {
    return this.consumes.length > 0 ? renderSynapseConfig(this.synapseSpec()) : undefined;
  }

  /** The haproxy.cfg HAProxy starts with before synapse first writes its own, when the host consumes a service. */
  public get haproxyBootstrapConfig(): string | undefined {
    return this.consumes.length > 0 ? renderHaproxyConfig(synapseConfig(this.synapseSpec()), {}) : undefined;
  }

  /**
   * The ports a service that names this host in `providers` takes here, when the service is created
   * after the sidecar: its own, and nerve's metrics port when it is the first provided. Throws when
   * the sidecar cannot provide it, as the constructor does for the services it finds.
   * @internal
   */
  public _portsFor(service: SmartStackService): Array<{ port: number; field: string }> {
    this.checkRuntimeReaches((field, value, reason) => new ValidationError(this, 'HaproxySidecar', field, value, reason), [service]);
    const ports = [{ port: service.port, field: `provides[${service.serviceName}].port` }];
    if (this.provides.length === 0 && this.runtime.nerveMetricsPort !== undefined) ports.push({ port: this.runtime.nerveMetricsPort, field: 'runtime.nerveMetricsPort' });
    return ports;
  }

  /**
   * The port and weight of a provided service on this host.
   * @internal
   */
  public _placementOf(service: SmartStackService): { port: number; weight?: number } {
    const override = this.overrides.get(service);
    return { port: override?.port ?? service.port, weight: override?.weight ?? service.weight };
  }

  private checkRuntimeReaches(fail: Fail, services: SmartStackService[]): void {
    const guarded = services.find((s) => s.ensemble.acls);
    if (this.runtime.kind === AgentRuntimeKind.RUBY && guarded) {
      throw fail('runtime', 'ruby', `Airbnb's nerve and synapse cannot authenticate to ZooKeeper, and ensemble ${guarded.ensemble.node.path} (of ${guarded.serviceName}) has ACLs: use AgentRuntime.node(), or acls: false on the ensemble`);
    }
  }

  private validateHasWork(): string[] {
    if (this.provides.length > 0 || this.consumes.length > 0) return [];
    return [
      new ValidationError(this, 'HaproxySidecar', 'provides', [], "the sidecar neither provides nor consumes a service; list some in provides or consumes, or name its host in a service's providers").message,
    ];
  }

  /** The sidecar's part of its host's document: the agents, their configs, units and firewall rules. */
  private writePart(content: DocumentContent): void {
    const provides = this.provides;
    // Left to validation: the app does not synthesize.
    if (provides.length === 0 && this.consumes.length === 0) return;
    this.runtimePackages().forEach((p) => content.addPackage(p));
    if (provides.length > 0) this.addNerve(content, provides);
    if (this.consumes.length > 0) this.addSynapseAndHaproxy(content);
    this.addAgentsInstall(content, provides);
    if (this.consumes.length > 0) content.addRunCommand(['systemctl', 'reload-or-restart', HAPROXY_UNIT]);
  }

  /** nerve's readiness check: each apply waits until nerve registers the provided services again. */
  private nerveReadinessCheck(): ReadinessCheck | undefined {
    const provides = this.provides;
    if (provides.length === 0 || this.runtime.nerveMetricsPort === undefined) return undefined;
    const view = {
      hostname: this.host.hostname,
      services: provides.map((s) => s.serviceName).join(' '),
      metricsPort: this.runtime.nerveMetricsPort,
      unit: NERVE_UNIT,
      // Long enough for every check to rise, and for a new ZooKeeper session.
      timeoutSeconds: Math.max(...provides.map((s) => Math.ceil(s.healthCheck.intervalSeconds * (s.healthCheck.rise + 1) + s.healthCheck.timeoutSeconds))) + 60,
    };
    return {
      description: `nerve registers ${serviceNames(provides)} again`,
      // What nerve had registered before the apply: only those are waited for.
      before: renderTemplate('nerve-served.sh', view),
      script: renderTemplate('nerve-wait.sh', view),
    };
  }

  /**
   * Tells the manifest what the host's agents read and listen on.
   * @internal
   */
  public _describeInto(manifest: ManifestBuilder): void {
    if (this.provides.length > 0 || this.consumes.length > 0) manifest.addSidecar(this.host.hostname, this.describe());
  }

  private describe(): ManifestSidecar {
    const provides = this.provides;
    const consumes = this.consumes.length > 0;
    const ensembles = (services: SmartStackService[]) => [...new Set(services.map((s) => s.ensemble))].filter((e) => e.acls);
    const credentialFiles = [
      ...provides.filter((s) => s.ensemble.acls).map((s) => credentials(ZookeeperEnsemble.registrarOf(s.serviceName), s.ensemble, NERVE_UNIT).id),
      ...(consumes ? ensembles(this.consumes).map((e) => credentials('reader', e, SYNAPSE_UNIT).id) : []),
    ];
    return {
      runtime: this.runtime.kind === AgentRuntimeKind.NODE ? 'node' : 'ruby',
      ...(provides.length > 0 ? { nerveConfig: NERVE_CONFIG } : {}),
      ...(consumes ? {
        synapseConfig: SYNAPSE_CONFIG,
        haproxyBootstrapConfig: HAPROXY_BOOTSTRAP,
        haproxyConfig: HAPROXY_PATHS.configFilePath,
        haproxyAdminSocket: HAPROXY_PATHS.adminSocketPath,
        haproxyMasterSocket: HAPROXY_PATHS.masterSocketPath,
      } : {}),
      units: [...(provides.length > 0 ? [NERVE_UNIT] : []), ...(consumes ? [HAPROXY_UNIT, SYNAPSE_UNIT] : [])],
      ...(consumes ? { statsPort: this.statsPort } : {}),
      ...(provides.length > 0 && this.runtime.nerveMetricsPort !== undefined ? { nerveMetricsPort: this.runtime.nerveMetricsPort } : {}),
      ...(consumes && this.runtime.synapseMetricsPort !== undefined ? { synapseMetricsPort: this.runtime.synapseMetricsPort } : {}),
      credentials: [...new Set(credentialFiles)].sort(),
    };
  }

  /** What nerve's config says: the provided services, each with its port, check and registration. */
  private nerveSpec(provides: SmartStackService[]): NerveSpec {
    const host = this.host;
    return {
      instanceId: host.hostname,
      services: provides.map((service): ProvidedServiceSpec => {
        const { port, weight } = this._placementOf(service);
        return {
          name: service.serviceName,
          host: host.privateAddress,
          port,
          zkHosts: service.ensemble.clientAddresses,
          zkPath: service.discoveryPath,
          healthCheck: service.healthCheck,
          weight,
          labels: service.labels,
          zkAuthFile: service.ensemble.acls ? credentials(ZookeeperEnsemble.registrarOf(service.serviceName), service.ensemble, NERVE_UNIT).runtimePath : undefined,
          // Consumers read the registration as the reader; nobody else may.
          zkReadAcl: service.ensemble.acls ? [service.ensemble._readerAclId(host)] : undefined,
        };
      }),
      metricsPort: this.runtime.nerveMetricsPort,
    };
  }

  /** What synapse's config says: the consumed services and the local HAProxy. */
  private synapseSpec(): SynapseSpec {
    return {
      services: this.consumes.map((service) => ({
        ...consumedSpec(service),
        zkAuthFile: service.ensemble.acls ? credentials('reader', service.ensemble, SYNAPSE_UNIT).runtimePath : undefined,
      })),
      haproxy: { maxConnections: this.maxConnections, statsPort: this.statsPort, socketOwner: SYNAPSE_USER, ...HAPROXY_PATHS },
      metricsPort: this.runtime.synapseMetricsPort,
    };
  }

  /** nerve: its config, user, unit, and the firewall rules of the provided ports. */
  private addNerve(content: DocumentContent, provides: SmartStackService[]): void {
    const host = this.host;
    const spec = this.nerveSpec(provides);
    const nerveCredentials = provides
      .filter((s) => s.ensemble.acls)
      .map((s) => this.addCredentials(content, s.ensemble, ZookeeperEnsemble.registrarOf(s.serviceName), NERVE_UNIT));
    content.addRunCommand(systemUser(NERVE_USER));
    content.addFile({ path: NERVE_CONFIG, content: renderNerveConfig(spec) });
    content.addUnit({
      name: NERVE_UNIT,
      content: renderTemplate('nerve.service', {
        hostname: host.hostname,
        user: NERVE_USER,
        execStart: this.agentCommand('nerve', NERVE_CONFIG),
        credentials: nerveCredentials,
      }),
      // nerve takes a new configuration on SIGHUP; credentials and the program only at start.
      startInputs: [...nerveCredentials.map((c) => c.path), this.agentProgram('nerve')],
    });
    // A provided port is open to the hosts that consume the service (and its clientNetworks) and
    // closed to everyone else.
    const records = MeshRecords.of(this);
    for (const [i, service] of provides.entries()) {
      const consumers = records.consumersOf(service).map((c) => `${c.privateAddress}/32`);
      content.addFirewallRule(providedPortRule(service, spec.services[i].port, [...service.clientNetworks, ...consumers]));
    }
  }

  /** synapse and its HAProxy: configs, user, state directories, units. */
  private addSynapseAndHaproxy(content: DocumentContent): void {
    const host = this.host;
    const spec = this.synapseSpec();
    content.addPackage('haproxy');
    // synapse's reload command talks to HAProxy's master socket.
    content.addPackage('socat');
    // The package starts its own haproxy.service; this host's HAProxy is the sidecar's unit.
    content.addStep({
      description: "Debian's haproxy.service stopped and disabled",
      script: 'if systemctl is-enabled --quiet haproxy.service 2>/dev/null || systemctl is-active --quiet haproxy.service; then\n  run systemctl disable --now haproxy.service\nfi',
    });
    content.addRunCommand(systemUser(SYNAPSE_USER));
    content.addRunCommand(['install', '-d', '-o', SYNAPSE_USER, '-g', 'haproxy', '-m', '0750', HAPROXY_STATE_DIR]);
    content.addRunCommand(['install', '-d', '-o', SYNAPSE_USER, '-g', SYNAPSE_USER, '-m', '0750', SYNAPSE_STATE_DIR]);
    content.addFile({ path: SYNAPSE_CONFIG, content: renderSynapseConfig(spec) });
    content.addFile({ path: HAPROXY_BOOTSTRAP, content: renderHaproxyConfig(synapseConfig(spec), {}) });
    // Each backend holds its slots, or more when there are more default servers.
    const servers = this.consumes.reduce((n, s) => n + Math.max(s.serverSlots, s.defaultServers.length), 0);
    content.addUnit({
      name: HAPROXY_UNIT,
      content: renderTemplate('haproxy.service', {
        hostname: host.hostname,
        services: serviceNames(this.consumes),
        runtimeDirectory: RUNTIME_DIR,
        bootstrapPath: HAPROXY_BOOTSTRAP,
        socketOwner: SYNAPSE_USER,
        maxConnections: this.maxConnections,
        // Two per connection, one per server, and room for listeners, checks and servers synapse adds.
        limitNofile: 2 * this.maxConnections + servers + 1024,
        ...HAPROXY_PATHS,
      }),
      // A restart would drop connections: a run command reloads it instead (or starts it).
      restartOnApply: false,
    });
    content.addUnit({
      name: SYNAPSE_UNIT,
      content: renderTemplate('synapse.service', {
        hostname: host.hostname,
        services: serviceNames(this.consumes),
        user: SYNAPSE_USER,
        haproxyUnit: HAPROXY_UNIT,
        writablePaths: `${HAPROXY_STATE_DIR} ${SYNAPSE_STATE_DIR}`,
        execStart: this.agentCommand('synapse', SYNAPSE_CONFIG),
        credentials: [...new Set(this.consumes.map((s) => s.ensemble))]
          .filter((e) => e.acls)
          .map((e) => this.addCredentials(content, e, 'reader', SYNAPSE_UNIT)),
      }),
    });
  }

  /** Services from `provides` plus those that name this host in their `providers`, each with the field that brought it. */
  private collectProvided(fail: Fail, host: VdsNode, listed: SmartStackService[]): Map<SmartStackService, string> {
    const provided = new Map<SmartStackService, string>();
    listed.forEach((service, i) => {
      if (!SmartStackService.isSmartStackService(service)) throw fail(`provides[${i}]`, String(service), 'expected a SmartStackService');
      if (provided.has(service)) throw fail(`provides[${i}]`, service.serviceName, 'listed twice');
      if (service.providers !== undefined && !service.providers.includes(host)) {
        throw fail(`provides[${i}]`, service.serviceName, `${service.node.path} lists its providers (${service.providers.map((h) => h.hostname).join(', ')}) and ${host.hostname} is not one of them`);
      }
      provided.set(service, `provides[${i}]`);
    });
    for (const c of MeshRecords.of(host).servicesDeclaredOn(host)) {
      if (!provided.has(c)) provided.set(c, `provides[${c.serviceName}]`);
    }
    return provided;
  }

  private collectOverrides(fail: Fail, provided: Map<SmartStackService, string>, list: ProviderOverride[]): Map<SmartStackService, ProvideOptions & { field: string }> {
    const overrides = new Map<SmartStackService, ProvideOptions & { field: string }>();
    list.forEach((o, i) => {
      const field = `providerOverrides[${i}]`;
      if (!provided.has(o.service)) {
        throw fail(`${field}.service`, o.service?.serviceName ?? String(o.service), 'not a service this sidecar provides');
      }
      if (overrides.has(o.service)) throw fail(`${field}.service`, o.service.serviceName, 'overridden twice');
      if (o.port !== undefined) tcpPort(fail, `${field}.port`, o.port);
      if (o.weight !== undefined && (!Number.isInteger(o.weight) || o.weight < 0 || o.weight > 256)) {
        throw fail(`${field}.weight`, o.weight, 'expected a whole number from 0 to 256');
      }
      overrides.set(o.service, { port: o.port, weight: o.weight, field });
    });
    return overrides;
  }

  private collectConsumed(fail: Fail, list: SmartStackService[]): SmartStackService[] {
    const consumed: SmartStackService[] = [];
    list.forEach((service, i) => {
      if (!SmartStackService.isSmartStackService(service)) throw fail(`consumes[${i}]`, String(service), 'expected a SmartStackService');
      if (consumed.includes(service)) throw fail(`consumes[${i}]`, service.serviceName, 'listed twice');
      if (service.localPort === undefined) {
        throw fail(`consumes[${i}]`, service.serviceName, `${service.node.path} has no localPort, so there is no local port to reach it on`);
      }
      consumed.push(service);
    });
    return consumed.sort(byName);
  }

  /** Writes an identity's credentials file, root's alone; the agent's unit loads it. */
  private addCredentials(content: DocumentContent, ensemble: ZookeeperEnsemble, identity: string, unit: string): AgentCredentials {
    const c = credentials(identity, ensemble, unit);
    content.addFile({ path: c.path, content: ensemble._credentialsFile(this.host, identity), permissions: '0600' });
    return c;
  }

  private runtimePackages(): string[] {
    if (this.runtime.kind === AgentRuntimeKind.RUBY) return ['ruby', 'ruby-dev', 'build-essential'];
    if (this.runtime.npmRegistry !== undefined) return ['nodejs', 'npm'];
    return !this.host.delivery && this.runtime.packageUrl?.startsWith('http') ? ['nodejs', 'curl'] : ['nodejs'];
  }

  /** The step that installs the agents; the pinned version is installed only when missing. */
  private addAgentsInstall(cc: DocumentContent, provides: SmartStackService[]): void {
    if (this.runtime.kind === AgentRuntimeKind.RUBY) {
      const gems: Array<[string, string, boolean]> = [
        ['nerve', this.runtime.nerveVersion, provides.length > 0],
        ['synapse', this.runtime.synapseVersion, this.consumes.length > 0],
      ];
      gems
        .filter(([, , needed]) => needed)
        .forEach(([gem, version]) => cc.addRunCommand(['sh', '-c', `gem list -i -e ${gem} -v ${version} >/dev/null || gem install --no-document ${gem} -v ${version}`]));
      return;
    }
    if (this.runtime.npmRegistry !== undefined) {
      const spec = `${PACKAGE.name}@${this.runtime.nerveVersion}`;
      // The constructs' peer dependencies (cdktf, constructs) are not the agents': not installed.
      cc.addRunCommand(['sh', '-c', `npm ls -g --depth=0 ${spec} >/dev/null 2>&1 || npm install -g --no-fund --no-audit --legacy-peer-deps --registry ${this.runtime.npmRegistry} ${spec}`]);
      return;
    }
    const { sha256, version } = agentsPackage();
    cc.addStep({
      description: `agents' package ${PACKAGE.name} ${version}`,
      script: renderTemplate('agents-install.sh', {
        archive: this.agentsArchive,
        sha256,
        directory: `${AGENTS_DIR}/${sha256}`,
        command: AGENTS_COMMAND,
        // Only a host the delivery does not upload to fetches it.
        fetch: this.host.delivery ? undefined : fetchCommand(this.runtime.packageUrl!),
      }),
    });
  }

  private agentCommand(agent: 'nerve' | 'synapse', configPath: string): string {
    return this.runtime.kind === AgentRuntimeKind.NODE ? `${AGENTS_COMMAND} ${agent} --config ${configPath}` : `${this.agentProgram(agent)} --config ${configPath}`;
  }

  private agentProgram(agent: 'nerve' | 'synapse'): string {
    return this.runtime.kind === AgentRuntimeKind.NODE ? AGENTS_COMMAND : `/usr/local/bin/${agent}`;
  }
}


/** The command that fetches the agents' package to `$archive.partial`, bounded in time; the URL is a `fileUrl`. */
function fetchCommand(url: string): { url: string; command: string } {
  if (url.startsWith('file://')) return { url, command: `cp -- ${url.slice('file://'.length)} "$archive.partial"` };
  return { url, command: `curl -fsSL --retry 5 --retry-connrefused --connect-timeout 10 --max-time 300 -o "$archive.partial" ${url}` };
}

function serviceNames(services: SmartStackService[]): string {
  return services.map((s) => s.serviceName).join(', ');
}

function byName(a: SmartStackService, b: SmartStackService): number {
  return a.serviceName < b.serviceName ? -1 : a.serviceName > b.serviceName ? 1 : 0;
}

function providedPortRule(service: SmartStackService, port: number, sources: string[]): FirewallRule {
  return { description: `smartstack ${service.serviceName} provided`, ports: [port], sources };
}

/** An identity's credentials: the root-only file, and where the agent's unit sees it (systemd `LoadCredential`). */
interface AgentCredentials {
  readonly id: string;
  readonly path: string;
  readonly runtimePath: string;
}

function credentials(identity: string, ensemble: ZookeeperEnsemble, unit: string): AgentCredentials {
  const id = `zookeeper-${ensemble.node.id.replace(/[^A-Za-z0-9_.-]/g, '-')}-${identity}.json`;
  return { id, path: `${CREDENTIALS_DIR}/${id}`, runtimePath: `/run/credentials/${unit}/${id}` };
}

/** Creates a system user (and its group) for an agent, unless it exists. */
function systemUser(name: string): string[] {
  return ['sh', '-c', `getent passwd ${name} >/dev/null || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${name}`];
}

function consumedSpec(service: SmartStackService): ConsumedServiceSpec {
  return {
    name: service.serviceName,
    localPort: service.localPort!,
    mode: service.mode,
    zkHosts: service.ensemble.clientAddresses,
    zkPath: service.discoveryPath,
    healthCheck: service.healthCheck,
    balance: service.balance,
    retries: service.retries,
    redispatch: service.redispatch,
    retryOn: service.retryOn,
    retryNonIdempotent: service.retryNonIdempotent,
    connectTimeoutMs: service.connectTimeoutMs,
    clientTimeoutSeconds: service.clientTimeoutSeconds,
    serverTimeoutSeconds: service.serverTimeoutSeconds,
    queueTimeoutSeconds: service.queueTimeoutSeconds,
    serverSlots: service.serverSlots,
    defaultServers: service.defaultServers.map((d) => ({ name: d.name!, host: d.host, port: d.port })),
    keepDefaultServers: service.keepDefaultServers,
  };
}
