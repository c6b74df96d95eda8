import { Fn, TerraformOutput, TerraformResource, TerraformVariable, Token } from './cdktf-edge';
import { Construct } from 'constructs';
import { escapeTerraformTemplate } from './render/terraform-string';
import { renderTemplate } from './render/template';
import { defaultHeapMiB, renderDynamicConfig, renderJavaEnv, renderMyid, renderServerLine, renderZooCfg, ZooCfgServer, ZooCfgSpec } from './render/zookeeper-config';
import { ApplyTimeSecrets } from './cloud-init/apply-time-secrets';
import { FirewallRule } from './cloud-init/document-content';
import { unitPath, ZOO_CFG, ZOO_CFG_DYNAMIC, ZOOKEEPER_CLASSPATH, ZOOKEEPER_CONFIG_DIR, ZOOKEEPER_JVM_AUTH_ARGS, ZOOKEEPER_LIVE_CONFIG_SUBDIR, ZOOKEEPER_MYID, ZOOKEEPER_UNIT } from './cloud-init/host-paths';
import { configSafe, configUnsafeReason, Fail, tcpPort } from './schema/config-safe';
import { addConstructWarning } from './construct-warning';
import { ManifestBuilder } from './mesh-manifest';
import { MeshRecords } from './mesh-records';
import { ManifestEnsemble } from './model/manifest';
import { ValidationError } from './model/validation-error';
import { stringAtSynth } from './synth-value';
import { VdsDisk, VdsNode } from './vds-node';

/** Properties of a {@link ZookeeperEnsemble}. Every knob has a production default. */
export interface ZookeeperEnsembleProps {
  /**
   * The hosts. 3 or 5 for production. Growing the ensemble or replacing a member is a new
   * synthesis with another list: the apply adds and removes members with ZooKeeper's dynamic
   * reconfiguration, never fewer than a quorum serving.
   */
  readonly members: VdsNode[];
  /**
   * Each member's ZooKeeper server id (myid), in the order of `members`. An id stays with its host
   * for good: a new host takes an id never used before in this ensemble, higher than the others
   * (members are applied in id order, so the running ones admit a new one before it starts).
   * @default 1, 2, 3, ... in the order of `members`
   */
  readonly memberIds?: number[];
  /** Name of the host disk (see `VdsNode` `disks`) that holds snapshots (`dataDir`). */
  readonly dataDisk: string;
  /** Name of the host disk that holds the transaction log (`dataLogDir`); must be another device. */
  readonly txnLogDisk: string;
  /**
   * Allow fewer than 3 members (a single member, for development only: it has no fault tolerance).
   * @default false
   */
  readonly allowDevelopmentSize?: boolean;
  /** @default 2181 */
  readonly clientPort?: number;
  /** @default 2888 */
  readonly quorumPort?: number;
  /** @default 3888 */
  readonly electionPort?: number;
  /**
   * Port of the AdminServer on 127.0.0.1; off when not set (its default, 8080 on all addresses,
   * takes the port from applications).
   * @default - AdminServer off
   */
  readonly adminServerPort?: number;
  /** @default 2000 */
  readonly tickTimeMs?: number;
  /** @default 10 */
  readonly initLimitTicks?: number;
  /** @default 5 */
  readonly syncLimitTicks?: number;
  /** @default 60 */
  readonly maxClientCnxns?: number;
  /**
   * Smallest session timeout a client may ask for (ZooKeeper's bound is 2-20 ticks).
   * @default 2 ticks
   */
  readonly minSessionTimeoutMs?: number;
  /** @default 20 ticks */
  readonly maxSessionTimeoutMs?: number;
  /**
   * Transaction log preallocation in KiB.
   * @default 65536
   */
  readonly preAllocSizeKiB?: number;
  /** @default 100000 */
  readonly snapCount?: number;
  /**
   * Hours between purges of old snapshots and logs; 0 turns purging off, which fills the disks.
   * @default 1
   */
  readonly autopurgeIntervalHours?: number;
  /** @default 3 */
  readonly autopurgeSnapRetainCount?: number;
  /**
   * Four-letter-word commands allowed; the rollout needs `srvr` and `ruok` (to wait for each
   * member) and `conf` (a new member reads the running ensemble's membership with it).
   * @default ['srvr', 'mntr', 'ruok', 'conf']
   */
  readonly fourLetterWords?: string[];
  /**
   * JVM heap in MiB.
   * @default 3/4 of the host's memory, leaving at least 1 GiB to the OS
   */
  readonly heapMiB?: number;
  /**
   * Extra JVM flags.
   * @default none
   */
  readonly jvmFlags?: string[];
  /**
   * Networks (CIDR) that may reach the client port, besides the members and the hosts whose
   * sidecars use the ensemble (those are allowed one by one). Add the hosts that run
   * `smartstack status` or other ZooKeeper clients here.
   * @default none
   */
  readonly clientNetworks?: string[];
  /**
   * Mount point of the snapshot disk.
   * @default '/var/lib/zookeeper'
   */
  readonly dataDir?: string;
  /**
   * Mount point of the transaction log disk.
   * @default '/var/lib/zookeeper-txlog'
   */
  readonly dataLogDir?: string;
  /**
   * How long one member's apply waits for it to rejoin the quorum before failing the rollout.
   * @default 300
   */
  readonly rolloutTimeoutSeconds?: number;
  /**
   * ZooKeeper digest authentication and ACLs. Identities: `admin` (ZooKeeper's superuser, used by
   * the ACL bootstrap), `reader` (synapse, `smartstack status`) and `registrar-<service>` per
   * service (nerve). Only a service's registrars may create and delete under its discovery path,
   * the reader may only read, and nobody else may write anywhere. Airbnb's Ruby nerve and synapse
   * cannot authenticate, so sidecars with `AgentRuntime.ruby()` need this off.
   * @default true
   */
  readonly acls?: boolean;
  /**
   * The secret every identity's password is derived from (`sha256("<identity>:<secret>")`, so a
   * host holds only its own identities' passwords). A reference to a sensitive Terraform variable
   * (`variable.stringValue`), never a literal: a literal would be written into the synthesized JSON.
   * @default a new sensitive variable `<id>_secret` (at least 32 characters)
   */
  readonly secret?: string;
}

/** The ZooKeeper path and name a service's registrar identity is for. */
interface AclService {
  readonly serviceName: string;
  readonly discoveryPath: string;
}

const SYSCTL_FILE = '/etc/sysctl.d/60-zookeeper.conf';
const ACL_TIMEOUT_SECONDS = 60;
const FOUR_LETTER_WORDS = ['conf', 'cons', 'crst', 'dirs', 'dump', 'envi', 'gtmk', 'isro', 'mntr', 'ruok', 'srst', 'srvr', 'stat', 'stmk', 'wchc', 'wchp', 'wchs'];

/**
 * A ZooKeeper ensemble on VDS hosts: tuned `zoo.cfg` with the transaction log and snapshots on
 * separate disks, a JVM sized to the host, firewall rules, and a rollout that changes one member
 * at a time and waits for it to rejoin the quorum before the next.
 */
export class ZookeeperEnsemble extends Construct {
  /** The members, in the order given. */
  public readonly members: VdsNode[];
  /** Each member's ZooKeeper server id (myid), in the order of `members`. */
  public readonly memberIds: number[];
  public readonly clientPort: number;
  /** `address:port` of each member's client port. */
  public readonly clientAddresses: string[];
  /** The connection string clients use: `10.10.0.11:2181,10.10.0.12:2181,...`. */
  public readonly connectionString: string;
  /** Whether clients authenticate and the discovery paths carry ACLs. */
  public readonly acls: boolean;
  /**
   * The resource that sets the ACLs (on the last member, after the rollout), if any.
   */
  public readonly aclBootstrap?: TerraformResource;
  /**
   * The resource that makes the running ensemble's membership the synthesized one with `reconfig`
   * (on the last member, after every member's apply), if the members are delivered over SSH.
   */
  public readonly membershipChange?: TerraformResource;

  private secret?: string;
  private readonly secretName: string;
  /** What the manifest tells of the ensemble besides the public fields. */
  private readonly layout: Pick<ManifestEnsemble, 'quorumPort' | 'electionPort' | 'clientNetworks' | 'dataDir' | 'dataLogDir'>;
  private readonly aclSecrets = new ApplyTimeSecrets();
  private readonly aclServices: AclService[] = [];
  private readonly passwords = new Map<string, string>();
  private readonly digests = new Map<string, string>();
  private renderAcl?: () => string;
  private renderMembership?: () => string;

  public constructor(scope: Construct, id: string, props: ZookeeperEnsembleProps) {
    super(scope, id);
    const fail = (field: string, value: unknown, reason: string) => new ValidationError(this, 'ZookeeperEnsemble', field, value, reason);
    // The path names the ensemble in its units, its ACL script and its Terraform output.
    configSafe(fail, 'node.path', this.node.path, 'constructPath');
    const { members, ids } = validMembers(fail, props);
    const settings = validSettings(fail, props);
    this.acls = props.acls ?? true;
    if (props.secret !== undefined && !Token.isUnresolved(props.secret)) {
      // The value is not repeated in the message: it is a secret.
      throw fail('secret', '(hidden)', 'expected a reference to a sensitive Terraform variable (variable.stringValue), not a literal: a literal would be written into the synthesized JSON in plain text');
    }
    if (props.secret !== undefined && !this.acls) throw fail('secret', '(hidden)', 'has no use with acls: false');
    this.secret = props.secret;
    this.secretName = this.node.path.toLowerCase().replace(/[^a-z0-9._/-]+/g, '-').replace(/^[^a-z0-9]+/, '');

    this.members = members;
    this.memberIds = ids;
    this.clientPort = settings.clientPort;
    this.layout = { quorumPort: settings.quorumPort, electionPort: settings.electionPort, clientNetworks: settings.clientNetworks, dataDir: settings.dataDir, dataLogDir: settings.dataLogDir };
    const servers: ZooCfgServer[] = members.map((m, i) => ({ myid: ids[i], address: m.privateAddress, quorumPort: settings.quorumPort, electionPort: settings.electionPort, clientPort: settings.clientPort }));

    // Everything about every member is checked before any host is changed.
    const plans = members.map((member, i) => {
      const field = `members[${i}]`;
      const data = member.findDisk(props.dataDisk);
      const txlog = member.findDisk(props.txnLogDisk);
      if (!data) throw fail(`dataDisk`, props.dataDisk, `host ${member.hostname} (${field}) has no such disk; it has ${JSON.stringify(member.disks.map((d) => d.name))}`);
      if (!txlog) throw fail(`txnLogDisk`, props.txnLogDisk, `host ${member.hostname} (${field}) has no such disk; it has ${JSON.stringify(member.disks.map((d) => d.name))}`);
      if (data.device === txlog.device) {
        throw fail('txnLogDisk', props.txnLogDisk, `on host ${member.hostname} it is the same device as dataDisk (${data.device}): the transaction log needs its own device, or every fsync waits behind snapshot writes`);
      }
      const heapMiB = props.heapMiB ?? defaultHeapMiB(member.memoryMiB);
      if (heapMiB > member.memoryMiB - 256) {
        throw fail('heapMiB', heapMiB, `host ${member.hostname} has ${member.memoryMiB} MiB; the heap must leave the OS at least 256 MiB`);
      }
      for (const [portField, port] of settings.portFields) {
        const owner = port === undefined ? undefined : member.findPortOwner(port);
        if (owner !== undefined) throw fail(portField, port, `port ${port} on host ${member.hostname} is already used by ${owner}`);
      }
      return { member, myid: ids[i], data, txlog, heapMiB };
    });
    plans.forEach((plan) => this.configureMember(plan, settings, servers));

    // One member at a time, in id order (MeshRecords orders the rollout at synth): each member's
    // delivery waits for the previous member's, whose apply returns only once that member serves
    // again. New members have the highest ids, so the running members' firewalls admit them before they start.
    MeshRecords.of(this).addEnsemble(this);
    const last = members.map((m, i) => ({ m, id: ids[i] })).sort((x, y) => x.id - y.id)[members.length - 1].m;
    const deliveries = members.filter((m) => m.delivery).map((m) => `${m.delivery!.terraformResourceType}.${m.delivery!.friendlyUniqueId}`);
    this.membershipChange = this.addMembershipChange(servers, settings, last, deliveries);
    if (this.acls) this.aclBootstrap = this.addAclBootstrap(settings, last, deliveries);

    this.clientAddresses = members.map((m) => `${m.privateAddress}:${settings.clientPort}`);
    this.connectionString = this.clientAddresses.join(',');
    const output = new TerraformOutput(this, 'connection-string', {
      value: this.connectionString,
      description: `ZooKeeper connection string of ${this.node.path}`,
    });
    output.overrideLogicalId(`${id.replace(/[^A-Za-z0-9_]/g, '_')}_connection_string`);
  }

  /** A member's part: its disks, files, unit, restart step, firewall rules and readiness check. */
  private configureMember(plan: MemberPlan, settings: EnsembleSettings, servers: ZooCfgServer[]): void {
    const { member, myid, data, txlog, heapMiB } = plan;
    const { dataDir, dataLogDir, clientPort, clientNetworks, quorumPort, electionPort } = settings;
    const members = this.members;
    const memberAddresses = members.map((m) => `${m.privateAddress}/32`);
    const liveDir = `${dataDir}/${ZOOKEEPER_LIVE_CONFIG_SUBDIR}`;
    for (const [portField, port] of settings.portFields) {
      if (port !== undefined) member.reservePort(port, this, portField);
    }
    const spec: ZooCfgSpec = {
      tickTimeMs: settings.tickTimeMs,
      initLimitTicks: settings.initLimitTicks,
      syncLimitTicks: settings.syncLimitTicks,
      dataDir,
      dataLogDir,
      clientAddress: member.privateAddress,
      clientPort,
      maxClientCnxns: settings.maxClientCnxns,
      minSessionTimeoutMs: settings.minSessionTimeoutMs,
      maxSessionTimeoutMs: settings.maxSessionTimeoutMs,
      preAllocSizeKiB: settings.preAllocSizeKiB,
      snapCount: settings.snapCount,
      autopurgeIntervalHours: settings.autopurgeIntervalHours,
      autopurgeSnapRetainCount: settings.autopurgeSnapRetainCount,
      fourLetterWords: settings.fourLetterWords,
      adminServerPort: settings.adminServerPort,
      skipAcl: !this.acls,
    };
    const cc = member.cloudConfig;
    cc.addPackage('zookeeper');
    cc.addFilesystem({ device: data.device, label: data.name, mountPoint: dataDir });
    cc.addFilesystem({ device: txlog.device, label: txlog.name, mountPoint: dataLogDir });
    // Deferred: the zookeeper user and group exist only once the package is installed.
    // The member reads its configuration but cannot change it.
    const readOnly = { owner: 'root:zookeeper', permissions: '0640', defer: true };
    cc.addFile({ path: ZOO_CFG, content: renderZooCfg(spec), ...readOnly });
    cc.addFile({ path: ZOO_CFG_DYNAMIC, content: renderDynamicConfig(servers), ...readOnly });
    cc.addFile({ path: `${ZOOKEEPER_CONFIG_DIR}/java.env`, content: renderJavaEnv(heapMiB, '/var/log/zookeeper', settings.jvmFlags), ...readOnly });
    if (this.acls) {
      // A Java argument file keeps the superuser's digest off the command line that `ps` shows.
      const superDigest = cc.secrets.placeholder(`${this.secretName}/admin/digest`, this._digest('admin'));
      cc.addFile({ path: ZOOKEEPER_JVM_AUTH_ARGS, content: renderJvmAuthArgs(superDigest), ...readOnly });
    }
    cc.addFile({ path: `${ZOOKEEPER_CONFIG_DIR}/log4j.properties`, content: renderTemplate('zookeeper-log4j.properties', {}), ...readOnly });
    // myid lives on the data disk, which is mounted by the steps after the files are written:
    // it is kept beside the configuration and copied there once the disk is mounted.
    cc.addFile({ path: ZOOKEEPER_MYID, content: renderMyid(myid), ...readOnly });
    cc.addFile({ path: SYSCTL_FILE, content: '# Managed by cdktf-smartstack: keep the ZooKeeper heap out of swap.\nvm.swappiness = 1\n' });
    cc.addStep({
      description: 'vm.swappiness = 1',
      // A container's /proc/sys is read-only: the setting is then the machine's to make.
      script: `if [ -w /proc/sys/vm/swappiness ]; then\n  run sysctl -q -p ${SYSCTL_FILE}\nelse\n  echo "smartstack: $host: /proc/sys is read-only (a container): vm.swappiness is left as it is"\nfi`,
    });
    cc.addRunCommand(['install', '-d', '-o', 'zookeeper', '-g', 'zookeeper', '-m', '0750', dataDir, dataLogDir, '/var/log/zookeeper']);
    cc.addRunCommand(['install', '-o', 'zookeeper', '-g', 'zookeeper', '-m', '0640', ZOOKEEPER_MYID, `${dataDir}/myid`]);
    cc.addUnit({
      name: ZOOKEEPER_UNIT,
      content: renderTemplate('zookeeper.service', {
        myid,
        ensembleName: this.node.path,
        configDir: ZOOKEEPER_CONFIG_DIR,
        classpath: ZOOKEEPER_CLASSPATH.join(':'),
        liveConfig: `${liveDir}/zoo.cfg`,
        dataDir,
        dataLogDir,
        jvmAuthArgs: this.acls ? ZOOKEEPER_JVM_AUTH_ARGS : undefined,
      }),
      // The step below restarts it, only when what it reads at start changed.
      restartOnApply: false,
    });
    const own = servers.find((s) => s.myid === myid)!;
    cc.addStep({
      description: `zookeeper member ${myid}: its configuration, and a restart only if that changed`,
      script: renderTemplate('zookeeper-live-config.sh', {
        myid,
        address: member.privateAddress,
        clientPort,
        liveDir,
        staticCfg: ZOO_CFG,
        initialDynamic: ZOO_CFG_DYNAMIC,
        serverLine: renderServerLine(own),
        peers: members.filter((m) => m !== member).map((m) => m.privateAddress).join(' '),
        inputs: [ZOO_CFG, `${ZOOKEEPER_CONFIG_DIR}/java.env`, `${ZOOKEEPER_CONFIG_DIR}/log4j.properties`, ZOOKEEPER_MYID, ...(this.acls ? [ZOOKEEPER_JVM_AUTH_ARGS] : []), unitPath(ZOOKEEPER_UNIT)].join(' '),
        unit: ZOOKEEPER_UNIT,
      }).trimEnd(),
    });
    // The members, clientNetworks, and each host whose sidecar uses the ensemble, as the mesh has them when rendered.
    cc._addPart((content) => {
      const clients = MeshRecords.of(this).clientsOf(this).map((host) => `${host.privateAddress}/32`);
      content.addFirewallRule(this.clientPortRule([...memberAddresses, ...clientNetworks, ...clients]));
    });
    cc.addFirewallRule({
      description: `zookeeper ${this.node.id} quorum and election, members only`,
      ports: [quorumPort, electionPort],
      sources: memberAddresses,
    });
    member.addReadinessCheck({
      description: `zookeeper member ${myid} rejoins the quorum`,
      script: renderTemplate('zookeeper-wait.sh', {
        myid,
        address: member.privateAddress,
        clientPort,
        peers: members.filter((m) => m !== member).map((m) => m.privateAddress).join(' '),
        timeoutSeconds: settings.rolloutTimeoutSeconds,
      }),
    });
  }

  /**
   * After every member's apply (joiners then serve as non-voting followers): the membership change,
   * over SSH on the member with the highest id.
   */
  private addMembershipChange(servers: ZooCfgServer[], settings: EnsembleSettings, last: VdsNode, deliveries: string[]): TerraformResource | undefined {
    // zkCli may connect to any member that stays; a new one serves only once it has joined.
    const renderMembership = () => this.renderMembershipScript(servers, servers.map((s) => `${s.address}:${settings.clientPort}`).join(','), settings.rolloutTimeoutSeconds);
    this.renderMembership = renderMembership;
    const change = last._runScriptOverSsh(this, 'membership', 'zookeeper-membership', renderMembership, this.aclSecrets);
    if (change) {
      change.dependsOn = [...deliveries];
    } else {
      addConstructWarning(
        this,
        `ZookeeperEnsemble '${this.node.path}': member ${last.hostname} is not delivered over SSH, so nothing changes the running ensemble's membership: ` +
          'after adding or removing members, run membershipScript on a member',
      );
    }
    return change;
  }

  /** The ACLs, set once every member's rollout and the membership are done: the script needs a quorum. */
  private addAclBootstrap(settings: EnsembleSettings, last: VdsNode, deliveries: string[]): TerraformResource | undefined {
    const render = () => this.renderAclScript(`${last.privateAddress}:${settings.clientPort}`);
    this.renderAcl = render;
    const bootstrap = last._runScriptOverSsh(this, 'acl', 'zookeeper-acl', render, this.aclSecrets);
    if (bootstrap) {
      const membership = this.membershipChange ? [`${this.membershipChange.terraformResourceType}.${this.membershipChange.friendlyUniqueId}`] : [];
      bootstrap.dependsOn = [...deliveries, ...membership];
    } else {
      addConstructWarning(
        this,
        `ZookeeperEnsemble '${this.node.path}': ACLs are on but member ${last.hostname} is not delivered over SSH, so nothing sets them: ` +
          'run aclBootstrapScript on a member once the ensemble serves (until then nerve waits for the discovery paths)',
      );
    }
    return bootstrap;
  }

  /**
   * The script that sets the ACLs, as a Terraform string (the passwords in it are expressions
   * evaluated at apply). `aclBootstrap` runs it over SSH; run it yourself when the members are
   * not delivered over SSH. Empty when ACLs are off.
   */
  public get aclBootstrapScript(): string {
    return stringAtSynth(() => (this.renderAcl ? this.aclSecrets.resolveIn(this, escapeTerraformTemplate(this.renderAcl())) : ''));
  }

  /**
   * The script that makes the running ensemble's membership the synthesized one, as a Terraform
   * string; `membershipChange` runs it over SSH. Run it yourself on a member when the members are not
   * delivered over SSH, after every member's apply.
   */
  public get membershipScript(): string {
    return stringAtSynth(() => (this.renderMembership ? this.aclSecrets.resolveIn(this, escapeTerraformTemplate(this.renderMembership())) : ''));
  }

  /**
   * Tells the manifest about the ensemble and its members.
   * @internal
   */
  public _describeInto(manifest: ManifestBuilder): void {
    manifest.addEnsemble(this.describe(), {
      config: ZOO_CFG,
      unit: ZOOKEEPER_UNIT,
      classpath: [...ZOOKEEPER_CLASSPATH],
      jvmArgFiles: this.acls ? [ZOOKEEPER_JVM_AUTH_ARGS] : [],
    });
  }

  private describe(): ManifestEnsemble {
    return {
      construct: this.node.path,
      members: this.members.map((m, i) => ({ host: m.hostname, id: this.memberIds[i], address: m.privateAddress })),
      clientPort: this.clientPort,
      ...this.layout,
      clientNetworks: [...this.layout.clientNetworks],
      acls: this.acls,
    };
  }

  /** The identity of the registrars of a service (nerve on the hosts that provide it). */
  public static registrarOf(serviceName: string): string {
    return `registrar-${serviceName}`;
  }

  private clientPortRule(sources: string[]): FirewallRule {
    return { description: `zookeeper ${this.node.id} client port`, ports: [this.clientPort], sources };
  }

  /**
   * Adds a service whose discovery path the ACL bootstrap creates and guards.
   * @internal
   */
  public _addService(service: AclService): void {
    this.aclServices.push({ serviceName: service.serviceName, discoveryPath: service.discoveryPath });
  }

  /**
   * The password of an identity, as a Terraform expression evaluated at apply.
   * @internal
   */
  public _password(identity: string): string {
    // One token per identity: each Fn call makes a new token, and secrets are registered by value.
    let password = this.passwords.get(identity);
    if (password === undefined) this.passwords.set(identity, (password = Fn.sha256(Fn.join(':', [identity, this.secretValue()]))));
    return password;
  }

  /**
   * The ACL id digest of an identity (`base64(sha256("user:password"))`, the ensemble's digest algorithm).
   * @internal
   */
  public _digest(identity: string): string {
    let digest = this.digests.get(identity);
    if (digest === undefined) this.digests.set(identity, (digest = Fn.base64sha256(Fn.join(':', [identity, this._password(identity)]))));
    return digest;
  }

  /**
   * Puts an identity's credentials file content into a host's document: the JSON the agents read,
   * with the password as a secret of that host's document.
   * @internal
   */
  public _credentialsFile(host: VdsNode, identity: string): string {
    const password = host.cloudConfig.secrets.placeholder(`${this.secretName}/${identity}/password`, this._password(identity));
    return JSON.stringify({ scheme: 'digest', user: identity, password }, null, 2) + '\n';
  }

  /**
   * The reader's ACL id (`digest:reader:<digest>`) with the digest as a secret of the host's document.
   * @internal
   */
  public _readerAclId(host: VdsNode): string {
    return `digest:reader:${host.cloudConfig.secrets.placeholder(`${this.secretName}/reader/digest`, this._digest('reader'))}`;
  }

  private secretValue(): string {
    if (this.secret === undefined) {
      const existing = this.node.tryFindChild('secret');
      const variable = existing instanceof TerraformVariable ? existing : new TerraformVariable(this, 'secret', {
        type: 'string',
        sensitive: true,
        description: `Secret the ZooKeeper passwords of ${this.node.path} are derived from (at least 32 characters; changing it rotates them all)`,
      });
      const logicalId = `${this.node.id.replace(/[^A-Za-z0-9_]/g, '_')}_secret`;
      variable.overrideLogicalId(logicalId);
      variable.addValidation({ condition: `\${length(var.${logicalId}) >= 32}`, errorMessage: `${logicalId} must be at least 32 characters.` });
      this.secret = variable.stringValue;
    }
    return this.secret!;
  }

  private renderMembershipScript(servers: ZooCfgServer[], server: string, timeoutSeconds: number): string {
    const sorted = [...servers].sort((a, b) => a.myid - b.myid);
    return renderTemplate('zookeeper-membership.sh', {
      ensemble: this.node.path,
      server,
      addresses: sorted.map((s) => s.address).join(' '),
      clientPort: this.clientPort,
      servers: sorted.map((s) => ({ id: s.myid, address: s.address, short: `server.${s.myid}=${s.address}:${s.quorumPort}:${s.electionPort}` })),
      membersCsv: sorted.map(renderServerLine).join(','),
      memberCount: sorted.length,
      timeoutSeconds,
      adminPassword: this.acls ? this.aclSecrets.placeholder(`${this.secretName}/admin/password`, this._password('admin')) : undefined,
    });
  }

  private renderAclScript(server: string): string {
    const secret = (identity: string, kind: 'password' | 'digest') =>
      this.aclSecrets.placeholder(`${this.secretName}/${identity}/${kind}`, kind === 'password' ? this._password(identity) : this._digest(identity));
    const id = (identity: string, perms: string) => `digest:${identity}:${secret(identity, 'digest')}:${perms}`;
    const adminAcl = id('admin', 'cdrwa');
    // Each path and every parent of it; a parent lets the reader list it, a service path also lets
    // its registrars create and delete registrations.
    const acls = new Map<string, string[]>();
    for (const service of [...this.aclServices].sort((a, b) => a.discoveryPath.localeCompare(b.discoveryPath))) {
      const parts = service.discoveryPath.split('/').filter(Boolean);
      parts.forEach((_p, i) => {
        const path = '/' + parts.slice(0, i + 1).join('/');
        if (!acls.has(path)) acls.set(path, [adminAcl, id('reader', 'r')]);
      });
      acls.get(service.discoveryPath)!.push(id(ZookeeperEnsemble.registrarOf(service.serviceName), 'cdr'));
    }
    const nodes = [...acls.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([path, entries]) => ({ path, acl: entries.join(',') }));
    const probes = ['/smartstack-acl-probe', ...nodes.map((n) => `${n.path}/smartstack-acl-probe`)];
    return renderTemplate('zookeeper-acl.sh', {
      ensemble: this.node.path,
      server,
      timeoutSeconds: ACL_TIMEOUT_SECONDS,
      adminPassword: secret('admin', 'password'),
      adminAcl,
      nodes,
      nodeCount: nodes.length,
      probes,
      probeCount: probes.length,
    });
  }
}


/** The JVM flags that switch on digest authentication with SHA-256 and name the superuser. */
function renderJvmAuthArgs(superDigest: string): string {
  return [
    '-Dzookeeper.DigestAuthenticationProvider.digestAlg=SHA-256',
    `-Dzookeeper.DigestAuthenticationProvider.superDigest=admin:${superDigest}`,
  ].join('\n') + '\n';
}

/** What the constructor works out from one member before changing its host. */
interface MemberPlan {
  readonly member: VdsNode;
  readonly myid: number;
  readonly data: VdsDisk;
  readonly txlog: VdsDisk;
  readonly heapMiB: number;
}

/** The ensemble's settings, validated. */
interface EnsembleSettings {
  readonly tickTimeMs: number;
  readonly initLimitTicks: number;
  readonly syncLimitTicks: number;
  readonly clientPort: number;
  readonly quorumPort: number;
  readonly electionPort: number;
  readonly adminServerPort?: number;
  /** Each port with its prop's name, for the messages. */
  readonly portFields: Array<[string, number | undefined]>;
  readonly minSessionTimeoutMs: number;
  readonly maxSessionTimeoutMs: number;
  readonly maxClientCnxns: number;
  readonly preAllocSizeKiB: number;
  readonly snapCount: number;
  readonly autopurgeIntervalHours: number;
  readonly autopurgeSnapRetainCount: number;
  readonly fourLetterWords: string[];
  readonly dataDir: string;
  readonly dataLogDir: string;
  readonly clientNetworks: string[];
  readonly jvmFlags: string[];
  readonly rolloutTimeoutSeconds: number;
}

/** The members and their ids, checked: an odd number, at least 3 unless for development, distinct names, addresses and ids. */
function validMembers(fail: Fail, props: ZookeeperEnsembleProps): { members: VdsNode[]; ids: number[] } {
  const members = [...props.members];
  const names = members.map((m) => m.hostname);

  if (members.length === 0 || (members.length < 3 && !props.allowDevelopmentSize)) {
    throw fail('members', names, 'an ensemble needs at least 3 members to survive the loss of one (a single member is allowed with allowDevelopmentSize, for development only)');
  }
  if (members.length % 2 === 0) {
    throw fail('members', names, `${members.length} members tolerate no more failures than ${members.length - 1} and slow every write: use an odd number (3 or 5)`);
  }
  members.forEach((m, i) => {
    const j = members.findIndex((o) => o.hostname === m.hostname);
    if (j !== i) throw fail(`members[${i}]`, m.hostname, `the same host name as members[${j}]`);
    const k = members.findIndex((o) => o.privateAddress === m.privateAddress);
    if (k !== i) throw fail(`members[${i}].privateAddress`, m.privateAddress, `the same address as members[${k}] (${members[k].hostname})`);
  });

  const ids = [...(props.memberIds ?? members.map((_m, i) => i + 1))];
  if (ids.length !== members.length) throw fail('memberIds', ids, `${ids.length} ids for ${members.length} members: give one id per member, in the order of members`);
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 1 || id > 255) throw fail(`memberIds[${i}]`, id, 'expected a ZooKeeper server id 1-255');
    const j = ids.indexOf(id);
    if (j !== i) throw fail(`memberIds[${i}]`, id, `the same id as memberIds[${j}] (${members[j].hostname})`);
  });
  return { members, ids };
}

/** The ensemble's settings from its props, each checked, with the defaults filled in. */
function validSettings(fail: Fail, props: ZookeeperEnsembleProps): EnsembleSettings {
  const tickTimeMs = positiveInteger(fail, 'tickTimeMs', props.tickTimeMs ?? 2000);
  const clientPort = props.clientPort ?? 2181;
  const quorumPort = props.quorumPort ?? 2888;
  const electionPort = props.electionPort ?? 3888;
  const portFields: Array<[string, number | undefined]> = [
    ['clientPort', clientPort],
    ['quorumPort', quorumPort],
    ['electionPort', electionPort],
    ['adminServerPort', props.adminServerPort],
  ];
  const seen = new Map<number, string>();
  for (const [field, port] of portFields) {
    if (port === undefined) continue;
    tcpPort(fail, field, port);
    const other = seen.get(port);
    if (other) throw fail(field, port, `the same port as ${other}`);
    seen.set(port, field);
  }

  const minSessionTimeoutMs = positiveInteger(fail, 'minSessionTimeoutMs', props.minSessionTimeoutMs ?? 2 * tickTimeMs);
  const maxSessionTimeoutMs = positiveInteger(fail, 'maxSessionTimeoutMs', props.maxSessionTimeoutMs ?? 20 * tickTimeMs);
  if (minSessionTimeoutMs > maxSessionTimeoutMs) {
    throw fail('minSessionTimeoutMs', minSessionTimeoutMs, `greater than maxSessionTimeoutMs ${maxSessionTimeoutMs}`);
  }
  const autopurgeIntervalHours = props.autopurgeIntervalHours ?? 1;
  if (!Number.isInteger(autopurgeIntervalHours) || autopurgeIntervalHours < 0) {
    throw fail('autopurgeIntervalHours', autopurgeIntervalHours, 'expected a whole number of hours (0 = off)');
  }
  const autopurgeSnapRetainCount = props.autopurgeSnapRetainCount ?? 3;
  if (!Number.isInteger(autopurgeSnapRetainCount) || autopurgeSnapRetainCount < 3) {
    throw fail('autopurgeSnapRetainCount', autopurgeSnapRetainCount, 'ZooKeeper keeps at least 3 snapshots; expected a whole number >= 3');
  }
  const fourLetterWords = [...(props.fourLetterWords ?? ['srvr', 'mntr', 'ruok', 'conf'])];
  for (const word of fourLetterWords) {
    if (!FOUR_LETTER_WORDS.includes(word)) throw fail('fourLetterWords', word, `not a ZooKeeper 3.8 four-letter word (${FOUR_LETTER_WORDS.join(', ')})`);
  }
  for (const required of ['srvr', 'ruok', 'conf']) {
    if (!fourLetterWords.includes(required)) throw fail('fourLetterWords', fourLetterWords, `must include '${required}': the rollout uses it to wait for each member and to read the membership`);
  }
  const dataDir = absolutePath(fail, 'dataDir', props.dataDir ?? '/var/lib/zookeeper');
  const dataLogDir = absolutePath(fail, 'dataLogDir', props.dataLogDir ?? '/var/lib/zookeeper-txlog');
  if (dataDir === dataLogDir) throw fail('dataLogDir', dataLogDir, 'the same directory as dataDir');
  const clientNetworks = [...(props.clientNetworks ?? [])];
  clientNetworks.forEach((cidr, i) => {
    configSafe(fail, `clientNetworks[${i}]`, cidr, 'ipv4Cidr');
  });
  const jvmFlags = [...(props.jvmFlags ?? [])];
  jvmFlags.forEach((flag, i) => configSafe(fail, `jvmFlags[${i}]`, flag, 'jvmFlag'));
  if (props.heapMiB !== undefined) positiveInteger(fail, 'heapMiB', props.heapMiB);
  const rolloutTimeoutSeconds = positiveInteger(fail, 'rolloutTimeoutSeconds', props.rolloutTimeoutSeconds ?? 300);
  const initLimitTicks = positiveInteger(fail, 'initLimitTicks', props.initLimitTicks ?? 10);
  const syncLimitTicks = positiveInteger(fail, 'syncLimitTicks', props.syncLimitTicks ?? 5);
  const maxClientCnxns = positiveInteger(fail, 'maxClientCnxns', props.maxClientCnxns ?? 60);
  const preAllocSizeKiB = positiveInteger(fail, 'preAllocSizeKiB', props.preAllocSizeKiB ?? 65536);
  const snapCount = positiveInteger(fail, 'snapCount', props.snapCount ?? 100000);
  return {
    tickTimeMs, initLimitTicks, syncLimitTicks, clientPort, quorumPort, electionPort, adminServerPort: props.adminServerPort, portFields,
    minSessionTimeoutMs, maxSessionTimeoutMs, maxClientCnxns, preAllocSizeKiB, snapCount, autopurgeIntervalHours, autopurgeSnapRetainCount,
    fourLetterWords, dataDir, dataLogDir, clientNetworks, jvmFlags, rolloutTimeoutSeconds,
  };
}

function positiveInteger(fail: Fail, field: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw fail(field, value, 'expected a positive whole number');
  return value;
}

/** A directory, with a trailing / allowed and dropped. */
function absolutePath(fail: Fail, field: string, value: string): string {
  const directory = typeof value === 'string' ? value.replace(/(.)\/+$/, '$1') : value;
  const reason = configUnsafeReason(directory, 'directory');
  if (reason !== undefined) throw fail(field, value, reason);
  return directory;
}
