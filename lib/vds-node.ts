import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { AssetType, DataResource, nullProvider, nullResource, TerraformAsset, TerraformResource, TerraformStack, TerraformVariable, Token } from './cdktf-edge';
import { Construct, IConstruct } from 'constructs';
import { cidrContains, unicastAddressProblem } from './model/address';
import { agentsPackage } from './cloud-init/agents-package';
import { ApplyTimeSecrets } from './cloud-init/apply-time-secrets';
import { CloudConfig } from './cloud-init/cloud-config';
import { HOST_FILE_PATH, renderHostFile } from './cloud-init/host-file';
import { AGENTS_ARCHIVE_DIR } from './cloud-init/host-paths';
import { shellQuote } from './render/shell-word';
import { escapeTerraformTemplate, quotedTerraformTemplate, sha256Hex } from './render/terraform-string';
import { renderTemplate } from './render/template';
import { configSafe, configUnsafeReason, tcpPort } from './schema/config-safe';
import { MeshRecords } from './mesh-records';
import { addConstructWarning } from './construct-warning';
import { ManifestBuilder, writeManifestAtSynth } from './mesh-manifest';
import { ManifestHost } from './model/manifest';
import { ValidationError } from './model/validation-error';
import { stringAtSynth, valueAtSynth } from './synth-value';

/** The operating system a VDS host runs. */
export enum OperatingSystem {
  /** Debian 12 (bookworm). */
  DEBIAN_12 = 'debian-12',
  /** Ubuntu 24.04 LTS (noble). */
  UBUNTU_24_04 = 'ubuntu-24.04',
}

/** The Terraform resource that delivers a host's document over SSH. */
export enum DeliveryResource {
  /** `null_resource` of the null provider, which `terraform init` downloads. */
  NULL_RESOURCE = 'null_resource',
  /**
   * Terraform's built-in `terraform_data` (Terraform 1.4 or later): no provider to download, for
   * networks that reach no registry. Each delivery also gets a `moved` block from the
   * `null_resource` of the same name, so a host delivered before by `null_resource` moves over
   * without being applied again; Terraform reads those blocks from version 1.9 on.
   */
  TERRAFORM_DATA = 'terraform_data',
}

/** A data disk attached to a VDS host. */
export interface VdsDisk {
  /** The name roles refer to, e.g. `zk-txlog`. */
  readonly name: string;
  /** Device path. Use a stable one (`/dev/disk/by-id/...`): `/dev/vdb` can change between boots. */
  readonly device: string;
}

/** Properties of a {@link VdsNode}. */
export interface VdsNodeProps {
  /**
   * The host name (a DNS label).
   * @default the construct id
   */
  readonly hostname?: string;
  /** The IPv4 address on the private network, which the mesh uses. */
  readonly privateAddress: string;
  /**
   * The private network (CIDR) the address belongs to. Ports that serve the mesh are opened to it.
   * @default the /24 around `privateAddress`
   */
  readonly privateNetwork?: string;
  /**
   * Address Terraform connects to over SSH.
   * @default `privateAddress`
   */
  readonly sshAddress?: string;
  /**
   * SSH user; when not root it needs password-less sudo.
   * @default 'root'
   */
  readonly sshUser?: string;
  /**
   * SSH port.
   * @default 22
   */
  readonly sshPort?: number;
  /**
   * The host's public SSH key as in `known_hosts` without the host name (`ssh-ed25519 AAAA...`).
   * Terraform then refuses to deliver to any other machine.
   * @default - not pinned: Terraform trusts whatever key the address presents
   */
  readonly sshHostKey?: string;
  /**
   * The SSH private key (usually a token of a sensitive variable).
   * @default the stack's sensitive variable `ssh_private_key`
   */
  readonly sshPrivateKey?: string;
  /** Memory of the host in MiB; roles size their processes from it (for example the JVM heap). */
  readonly memoryMiB: number;
  /**
   * Data disks.
   * @default none
   */
  readonly disks?: VdsDisk[];
  /**
   * Operating system.
   * @default OperatingSystem.DEBIAN_12
   */
  readonly operatingSystem?: OperatingSystem;
  /**
   * Deliver the cloud-init document over SSH with a `null_resource`. Turn it off when another
   * resource boots the VM with `userData`.
   * @default true
   */
  readonly deliverOverSsh?: boolean;
  /**
   * The resource that delivers the document over SSH (and runs the ensemble's scripts when this
   * host is its last member).
   * @default DeliveryResource.NULL_RESOURCE: the stacks deployed so far keep their resources
   */
  readonly deliveryResource?: DeliveryResource;
}

/** A check run on the host after each apply; the apply fails unless it exits 0. */
export interface ReadinessCheck {
  /** What is waited for, shown in the apply's output. */
  readonly description: string;
  /** POSIX shell commands; they must bound their own waiting. */
  readonly script: string;
  /**
   * POSIX shell commands run before the document is applied, in the same script: what they find
   * (in shell variables) is there for `script`, such as whether the host served before the apply.
   * @default none
   */
  readonly before?: string;
}

const STABLE_DEVICE = /^\/dev\/disk\/by-(id|uuid|path|label|partuuid)\//;
const NULL_PROVIDER_ID = 'smartstack-null-provider';
const SSH_KEY_VARIABLE_ID = 'ssh_private_key';
const AGENTS_ASSET_ID = 'smartstack-agents-package';

/**
 * One KVM VDS host. It owns the host's cloud-init document, to which roles add files, packages,
 * disks, units and firewall rules, and delivers it over SSH unless told otherwise.
 */
export class VdsNode extends Construct {
  /** Whether the construct is a VdsNode. */
  public static isVdsNode(x: unknown): x is VdsNode {
    return x instanceof VdsNode;
  }

  public readonly hostname: string;
  public readonly privateAddress: string;
  public readonly privateNetwork: string;
  public readonly sshAddress: string;
  public readonly sshUser: string;
  public readonly memoryMiB: number;
  public readonly operatingSystem: OperatingSystem;
  public readonly disks: VdsDisk[];
  /** The host's cloud-init document; roles add to it. */
  public readonly cloudConfig: CloudConfig;
  /**
   * The resource that delivers and applies the document, if delivered over SSH.
   */
  public readonly delivery?: TerraformResource;

  private readonly ports = new Map<number, string>();
  /** The checks in order; a role's part gives its check (or none) when the checks are read. */
  private readonly readinessChecks: Array<ReadinessCheck | (() => ReadinessCheck | undefined)> = [];
  private directReadinessChecks = 0;
  private applyScript?: { userData: string; key: string; script: string };
  private sshConnection?: nullResource.ResourceConfig['connection'];
  private deliveryResource = DeliveryResource.NULL_RESOURCE;
  private deliveryProvisioners?: NonNullable<nullResource.ResourceConfig['provisioners']>;
  /** Hosts whose delivery this host's waits for, and how many hosts wait for this one's: the rollout's, set at synth. */
  private readonly appliedAfter = new Set<VdsNode>();
  private dependents = 0;
  /** The `depends_on` entries the rollout added to the delivery, replaced at each synth. */
  private rolloutDependsOn: string[] = [];
  private readonly warned = new Set<string>();
  private agentsArchive?: string;
  /** Where the manifest finds what Terraform places on the host. */
  private deliveredFiles?: { sshPort: number; staging: string };
  private readonly scripts: Array<{ name: string; resource: TerraformResource; destination: string }> = [];

  public constructor(scope: Construct, id: string, props: VdsNodeProps) {
    super(scope, id);
    const fail = (field: string, value: unknown, reason: string) => new ValidationError(this, 'VdsNode', field, value, reason);

    this.hostname = configSafe(fail, 'hostname', props.hostname ?? id, 'dnsLabel');
    this.privateAddress = configSafe(fail, 'privateAddress', props.privateAddress, 'ipv4');
    const notUnicast = unicastAddressProblem(this.privateAddress);
    if (notUnicast) throw fail('privateAddress', this.privateAddress, notUnicast);
    this.privateNetwork = props.privateNetwork ?? `${props.privateAddress.split('.').slice(0, 3).join('.')}.0/24`;
    configSafe(fail, 'privateNetwork', this.privateNetwork, 'ipv4Cidr');
    if (!cidrContains(this.privateNetwork, this.privateAddress)) {
      throw fail('privateNetwork', this.privateNetwork, `expected an IPv4 CIDR block that contains privateAddress ${this.privateAddress}`);
    }
    this.sshAddress = configSafe(fail, 'sshAddress', props.sshAddress ?? props.privateAddress, 'address');
    this.sshUser = configSafe(fail, 'sshUser', props.sshUser ?? 'root', 'unixUser');
    const sshPort = tcpPort(fail, 'sshPort', props.sshPort ?? 22);
    if (props.sshHostKey !== undefined) configSafe(fail, 'sshHostKey', props.sshHostKey, 'sshPublicKey');
    // A token is Terraform's to resolve; a literal goes into the JSON as is, so no `${` may hide in it.
    if (props.sshPrivateKey !== undefined && !Token.isUnresolved(props.sshPrivateKey)) {
      const reason = configUnsafeReason(props.sshPrivateKey, 'pemPrivateKey');
      // The value is not repeated in the message: it is a secret.
      if (reason !== undefined) throw fail('sshPrivateKey', '(hidden)', reason);
    }
    if (!Number.isInteger(props.memoryMiB) || props.memoryMiB < 512) {
      throw fail('memoryMiB', props.memoryMiB, 'expected a whole number of MiB, at least 512');
    }
    this.memoryMiB = props.memoryMiB;
    this.operatingSystem = props.operatingSystem ?? OperatingSystem.DEBIAN_12;
    if (!Object.values(OperatingSystem).includes(this.operatingSystem)) {
      throw fail('operatingSystem', this.operatingSystem, `expected one of ${Object.keys(OperatingSystem).map((k) => `OperatingSystem.${k}`).join(', ')} (${Object.values(OperatingSystem).join(', ')})`);
    }
    this.disks = [...(props.disks ?? [])];
    this.validateDisks(fail);
    // Last of the checks: a rejected host claims nothing.
    const records = MeshRecords.of(this);
    records.claimHost(this, fail);
    // A sidecar's part of the document reads the mesh, which may grow after the part is added.
    this.cloudConfig = new CloudConfig();
    this.cloudConfig._followMesh(() => records.version);
    writeManifestAtSynth(this);
    this.cloudConfig.addFile({ path: HOST_FILE_PATH, content: renderHostFile(this) });

    this.deliveryResource = props.deliveryResource ?? DeliveryResource.NULL_RESOURCE;
    if (!Object.values(DeliveryResource).includes(this.deliveryResource)) {
      throw fail('deliveryResource', this.deliveryResource, `expected one of ${Object.keys(DeliveryResource).map((k) => `DeliveryResource.${k}`).join(', ')}`);
    }
    if (props.deliverOverSsh === false && props.deliveryResource !== undefined) {
      throw fail('deliveryResource', props.deliveryResource, 'the host is not delivered over SSH (deliverOverSsh: false): leave deliveryResource unset, or deliver it');
    }
    if (props.deliverOverSsh ?? true) {
      this.delivery = this.deliverOverSsh(sshPort, props.sshPrivateKey, props.sshHostKey);
    }
  }

  /** The disk with the given name, or undefined. */
  public findDisk(name: string): VdsDisk | undefined {
    return this.disks.find((d) => d.name === name);
  }

  /**
   * Claims a TCP port on this host for a role. A port claimed twice is an error that names both.
   *
   * @param port the port
   * @param owner the construct that listens on it
   * @param field the owner's property that set the port
   */
  public reservePort(port: number, owner: IConstruct, field: string): void {
    this.claimPort(this.ports, port, owner, field);
  }

  /**
   * Throws what `reservePort` would throw for each of the ports, in turn, and reserves none.
   * @internal
   */
  public _checkPorts(owner: IConstruct, ports: Array<{ port: number; field: string }>): void {
    const trial = new Map(this.ports);
    ports.forEach(({ port, field }) => this.claimPort(trial, port, owner, field));
  }

  /** Who uses the port on this host (`path (field)`), or undefined when it is free. */
  public findPortOwner(port: number): string | undefined {
    return this.ports.get(port);
  }

  /** Adds a check that each apply waits for, such as a ZooKeeper member rejoining its quorum. */
  public addReadinessCheck(check: ReadinessCheck): void {
    this.checkReadinessCheck(`readinessChecks[${this.directReadinessChecks}]`, check);
    this.directReadinessChecks++;
    this.readinessChecks.push(check);
  }

  /**
   * Adds a role's readiness check, given when the checks are read (it depends on the whole mesh).
   * @internal
   */
  public _addReadinessCheckPart(part: () => ReadinessCheck | undefined): void {
    this.readinessChecks.push(part);
  }

  /** The readiness checks in order, the parts' included. */
  private readinessCheckList(): ReadinessCheck[] {
    const checks: ReadinessCheck[] = [];
    for (const item of this.readinessChecks) {
      const check = typeof item === 'function' ? item() : item;
      if (check === undefined) continue;
      if (typeof item === 'function') this.checkReadinessCheck(`readinessChecks[${checks.length}]`, check);
      checks.push(check);
    }
    return checks;
  }

  private checkReadinessCheck(field: string, check: ReadinessCheck): void {
    // The description is a comment line of the apply script: a newline in it would be a command.
    configSafe((f, v, r) => new ValidationError(this, 'VdsNode', f, v, r), `${field}.description`, check.description, 'text');
    if (typeof check.script !== 'string') throw new ValidationError(this, 'VdsNode', `${field}.script`, check.script, 'expected POSIX shell commands');
    this.cloudConfig.checkLiteralText(`${field}.script`, check.script);
    if (check.before !== undefined) {
      if (typeof check.before !== 'string') throw new ValidationError(this, 'VdsNode', `${field}.before`, check.before, 'expected POSIX shell commands');
      this.cloudConfig.checkLiteralText(`${field}.before`, check.before);
    }
  }

  /**
   * The rendered `#cloud-config` document, as the host receives it, from the mesh as it is now:
   * services or sidecars created later are in a later rendering (and in the synthesized one).
   */
  public renderUserData(): string {
    return this.cloudConfig.render();
  }

  /** The script that applies the document on the host and waits for its readiness checks. */
  public renderApplyScript(): string {
    const userData = this.renderUserData();
    const cached = this.applyScript;
    // The parts' checks, like the document, change only with the mesh.
    const key = `${this.readinessChecks.length}/${MeshRecords.of(this).version}`;
    if (cached && cached.userData === userData && cached.key === key) return cached.script;
    const checks = this.readinessCheckList();
    const agents = this.agentsArchive === undefined ? undefined : agentsPackage();
    const script = renderTemplate('apply-cloud-init.sh', {
      hostname: this.hostname,
      instanceId: `smartstack-${sha256Hex(userData).slice(0, 16)}`,
      packages: this.cloudConfig.packageNames,
      agents: agents && { version: agents.version, sha256: agents.sha256, archive: this.agentsArchive },
      readinessChecks: checks.map((check) => ({ quotedDescription: shellQuote(check.description), script: check.script, before: check.before?.replace(/\n+$/, '') })),
    });
    this.applyScript = { userData, key, script };
    return script;
  }

  /**
   * The document as a Terraform string, for any resource that boots a VM (`user_data`).
   * Resolved at synth, so roles added later are included. Secrets (see `CloudConfig.secrets`)
   * appear as Terraform expressions, evaluated only at apply.
   */
  public get userData(): string {
    return stringAtSynth(() => this.cloudConfig.secrets.resolveIn(this, escapeTerraformTemplate(this.renderUserData())));
  }

  /**
   * The document gzipped and base64-encoded by Terraform (`base64gzip`), for a resource that takes
   * user data in base64 (such as `user_data_base64`): cloud-init unpacks gzipped user data itself,
   * and compressed the document fits user-data limits of 16 KiB (a member's is about 17 KiB as
   * text, 7 KiB compressed). Secrets are evaluated at apply, as in `userData`.
   */
  public get userDataGzipBase64(): string {
    return stringAtSynth(() => `\${base64gzip("${this.cloudConfig.secrets.resolveIn(this, quotedTerraformTemplate(this.renderUserData()))}")}`);
  }

  /**
   * The agents' package of this library, on the host: the SSH delivery uploads it (its checksum is
   * in the delivery's triggers, so a new version re-applies the host) and the apply script stores it
   * at the returned path. A host not delivered over SSH must have it placed there.
   *
   * @internal
   */
  public _addAgentsPackage(): string {
    const agents = agentsPackage();
    this.agentsArchive = `${AGENTS_ARCHIVE_DIR}/${agents.sha256}.tgz`;
    if (this.deliveryProvisioners) {
      const staging = `/tmp/smartstack-${this.hostname}`;
      // Before the last provisioner, the one that runs the apply script.
      this.deliveryProvisioners.splice(this.deliveryProvisioners.length - 1, 0, { type: 'file', source: agentsAsset(TerraformStack.of(this)).path, destination: `${staging}/agents.tgz` });
    }
    return this.agentsArchive;
  }

  /**
   * Forgets the rollout's order, before the synth step works it out again from the whole mesh.
   * @internal
   */
  public _resetRollout(): void {
    this.appliedAfter.clear();
    this.dependents = 0;
    if (this.delivery && this.rolloutDependsOn.length > 0) {
      const ours = new Set(this.rolloutDependsOn);
      this.delivery.dependsOn = (this.delivery.dependsOn ?? []).filter((d) => !ours.has(d));
    }
    this.rolloutDependsOn = [];
  }

  /**
   * Applies this host only after `other` has been applied (and its readiness checks passed), when
   * both are delivered over SSH. An order that would close a cycle is left out with a warning.
   * Called by the synth step that orders the rollout.
   *
   * @internal
   */
  public _applyAfter(other: VdsNode, reason: string): void {
    if (!this.delivery || !other.delivery || other === this || this.appliedAfter.has(other)) return;
    // Only a host that others already wait for can close a cycle.
    if (this.dependents > 0 && other.waitsFor(this)) {
      const warning = `VdsNode '${this.node.path}': not applied after ${other.hostname} (${reason}): ${other.hostname} already waits for ${this.hostname}`;
      // The step runs at each synth of the app: the warning is given once.
      if (!this.warned.has(warning)) addConstructWarning(this, warning);
      this.warned.add(warning);
      return;
    }
    this.appliedAfter.add(other);
    other.dependents++;
    // depends_on takes a bare address (`null_resource.name`), not an interpolation.
    const address = `${other.delivery.terraformResourceType}.${other.delivery.friendlyUniqueId}`;
    this.rolloutDependsOn.push(address);
    this.delivery.dependsOn = [...(this.delivery.dependsOn ?? []), address];
  }

  private claimPort(ports: Map<number, string>, port: number, owner: IConstruct, field: string): void {
    const kind = owner.constructor.name;
    tcpPort((f, v, r) => new ValidationError(owner, kind, f, v, r), field, port);
    const user = `${owner.node.path} (${field})`;
    const existing = ports.get(port);
    if (existing !== undefined && existing !== user) {
      throw new ValidationError(owner, kind, field, port, `port ${port} on host ${this.hostname} is already used by ${existing}`);
    }
    ports.set(port, user);
  }

  /** Whether this host's delivery waits, directly or not, for `host`'s. */
  private waitsFor(host: VdsNode, seen = new Set<VdsNode>()): boolean {
    for (const before of this.appliedAfter) {
      if (before === host) return true;
      if (!seen.has(before)) {
        seen.add(before);
        if (before.waitsFor(host, seen)) return true;
      }
    }
    return false;
  }

  /**
   * Runs a script on this host over SSH after the host's own delivery, whenever the script changes.
   * Returns undefined when the host is not delivered over SSH.
   *
   * @internal
   */
  public _runScriptOverSsh(scope: Construct, id: string, name: string, render: () => string, secrets: ApplyTimeSecrets): TerraformResource | undefined {
    if (!this.sshConnection || !this.delivery) return undefined;
    const staging = `/tmp/smartstack-${name}-${this.hostname}`;
    const resource = this.sshResource(scope, id, {
      triggers: secretAwareTriggers(scope, secrets, { script_sha256: render }),
      connection: this.sshConnection,
      dependsOn: [this.delivery],
      provisioners: [
        { type: 'remote-exec', inline: [prepareStaging(staging)] },
        { type: 'file', content: stringAtSynth(() => secrets.resolveIn(scope, escapeTerraformTemplate(render()))), destination: `${staging}/${name}.sh` },
        { type: 'remote-exec', inline: [`sh ${staging}/${name}.sh; status=$?; rm -rf ${staging}; exit $status`] },
      ],
    });
    this.scripts.push({ name, resource, destination: `${staging}/${name}.sh` });
    return resource;
  }

  /**
   * Tells the manifest about the host; its roles tell theirs.
   * @internal
   */
  public _describeInto(manifest: ManifestBuilder): void {
    manifest.addHost(this.describe());
  }

  private describe(): Omit<ManifestHost, 'roles' | 'sidecar' | 'zookeeper'> {
    const delivery = this.delivery;
    const files = this.deliveredFiles;
    // Logical ids are final only at synth (they can be overridden until then).
    const address = (resource: TerraformResource) => `${resource.terraformResourceType}.${resource.friendlyUniqueId}`;
    return {
      name: this.hostname,
      construct: this.node.path,
      privateAddress: this.privateAddress,
      privateNetwork: this.privateNetwork,
      memoryMiB: this.memoryMiB,
      operatingSystem: this.operatingSystem,
      disks: this.disks.map((d) => ({ name: d.name, device: d.device })),
      ...(delivery && files ? {
        delivery: {
          sshAddress: this.sshAddress,
          sshUser: this.sshUser,
          sshPort: files.sshPort,
          userData: { resource: address(delivery), destination: `${files.staging}/user-data` },
          applyScript: { resource: address(delivery), destination: `${files.staging}/apply.sh` },
        },
      } : {}),
      scripts: this.scripts
        .map((x) => ({ name: x.name, resource: address(x.resource), destination: x.destination }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    };
  }

  private validateDisks(fail: (field: string, value: unknown, reason: string) => Error): void {
    const names = new Set<string>();
    const devices = new Set<string>();
    this.disks.forEach((disk, i) => {
      configSafe(fail, `disks[${i}].name`, disk.name, 'diskName');
      if (names.has(disk.name)) throw fail(`disks[${i}].name`, disk.name, 'two disks have this name');
      names.add(disk.name);
      configSafe(fail, `disks[${i}].device`, disk.device, 'devicePath');
      if (devices.has(disk.device)) throw fail(`disks[${i}].device`, disk.device, 'two disks name this device');
      devices.add(disk.device);
      if (!STABLE_DEVICE.test(disk.device)) {
        addConstructWarning(
          this,
          `VdsNode '${this.node.path}': disks[${i}].device = "${disk.device}" is not a stable path: kernel names such as /dev/vdb ` +
            'follow probe order and can change when disks are added or the VM restarts, and the wrong disk would be formatted ' +
            'or mounted. Use /dev/disk/by-id/... (the virtio serial) instead.',
        );
      }
    });
  }

  private deliverOverSsh(sshPort: number, sshPrivateKey?: string, sshHostKey?: string): TerraformResource {
    const stack = TerraformStack.of(this);
    // The stack is searched once for a NullProvider of the user's; a second one would clash.
    const records = MeshRecords.of(stack);
    if (this.deliveryResource === DeliveryResource.NULL_RESOURCE && !records.hasNullProvider) {
      if (!stack.node.findAll().some((c) => c instanceof nullProvider.NullProvider)) new nullProvider.NullProvider(stack, NULL_PROVIDER_ID);
      records.hasNullProvider = true;
    }
    const privateKey = sshPrivateKey ?? sshKeyVariable(stack).stringValue;
    const staging = `/tmp/smartstack-${this.hostname}`;
    this.sshConnection = {
      type: 'ssh',
      host: this.sshAddress,
      port: sshPort,
      user: this.sshUser,
      privateKey,
      hostKey: sshHostKey,
    };
    const secrets = this.cloudConfig.secrets;
    // Kept to add the agents' package upload once a sidecar asks for it.
    this.deliveryProvisioners = [
      { type: 'remote-exec', inline: [prepareStaging(staging)] },
      { type: 'file', content: this.userData, destination: `${staging}/user-data` },
      {
        type: 'file',
        content: stringAtSynth(() => secrets.resolveIn(this, escapeTerraformTemplate(this.renderApplyScript()))),
        destination: `${staging}/apply.sh`,
      },
      { type: 'remote-exec', inline: [`sh ${staging}/apply.sh`] },
    ];
    const resource = this.sshResource(this, 'cloud-init', {
      triggers: secretAwareTriggers(this, secrets, {
        cloud_init_sha256: () => this.renderUserData(),
        apply_script_sha256: () => this.renderApplyScript(),
      }, (): Record<string, string> => (this.agentsArchive === undefined ? {} : { agents_sha256: agentsPackage().sha256 })),
      connection: this.sshConnection,
      provisioners: this.deliveryProvisioners,
    });
    this.deliveredFiles = { sshPort, staging };
    return resource;
  }

  /**
   * A resource that runs provisioners over SSH whenever its triggers change: a `null_resource`, or
   * a `terraform_data` (whose `triggers_replace` does what the null resource's `triggers` do) with a
   * `moved` block from the `null_resource` it replaces.
   */
  private sshResource(scope: Construct, id: string, config: nullResource.ResourceConfig): TerraformResource {
    if (this.deliveryResource === DeliveryResource.NULL_RESOURCE) return new nullResource.Resource(scope, id, config);
    const { triggers, ...rest } = config;
    const resource = new DataResource(scope, id, { ...rest, triggersReplace: triggers });
    resource.moveFromId(`null_resource.${resource.friendlyUniqueId}`);
    return resource;
  }
}

/**
 * A fresh directory only the SSH user can read, for files that may hold secrets. An existing one is
 * removed first; if another user recreates it in between, mkdir fails and so does the apply.
 */
function prepareStaging(directory: string): string {
  return `rm -rf ${directory} && mkdir -m 0700 ${directory}`;
}

/**
 * Triggers that are the SHA-256 of rendered texts, values given as they are, and `secrets_sha256`
 * when the texts use secrets: a new secret value then changes the trigger (its hash is sensitive in
 * the plan, like the value).
 */
function secretAwareTriggers(
  scope: IConstruct,
  secrets: ApplyTimeSecrets,
  texts: Record<string, () => string>,
  values: () => Record<string, string> = () => ({}),
): { [key: string]: string } {
  // Each text is hashed once while it stays the same: cdktf resolves the triggers twice.
  const hashed = new Map<string, { text: string; sha256: string; expressions: string[] }>();
  let secretsHash: { of: string; hash: string } | undefined;
  return valueAtSynth((): { [key: string]: string } => {
    // Rendered before the values are taken: a rendering completes what roles add late.
    const rendered = Object.entries(texts).map(([key, render]): [string, string] => [key, render()]);
    const triggers: Record<string, string> = { ...values() };
    const expressions = new Set<string>();
    for (const [key, text] of rendered) {
      let known = hashed.get(key);
      if (known?.text !== text) {
        known = { text, sha256: sha256Hex(text), expressions: secrets.expressionsIn(text) };
        hashed.set(key, known);
      }
      triggers[key] = known.sha256;
      known.expressions.forEach((e) => expressions.add(e));
    }
    if (expressions.size > 0) {
      const of = [...expressions].join('\n');
      if (secretsHash?.of !== of) secretsHash = { of, hash: secrets.hashIn(scope, [...expressions]) };
      triggers.secrets_sha256 = secretsHash.hash;
    }
    return triggers;
  });
}

/** The agents' package as a file of the stack's output, once per stack. */
function agentsAsset(stack: TerraformStack): TerraformAsset {
  const existing = stack.node.tryFindChild(AGENTS_ASSET_ID);
  if (existing instanceof TerraformAsset) return existing;
  const agents = agentsPackage();
  return new TerraformAsset(stack, AGENTS_ASSET_ID, { path: agentsArchiveFile(), type: AssetType.FILE, assetHash: agents.sha256 });
}

let agentsFile: string | undefined;

/**
 * The archive as a file for TerraformAsset to copy at synth: in a folder of this process's own
 * (mode 0700, removed at exit), so no other user of the machine can put another file in its place.
 */
function agentsArchiveFile(): string {
  if (agentsFile === undefined) {
    const agents = agentsPackage();
    const dir = mkdtempSync(join(tmpdir(), 'cdktf-smartstack-agents-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    agentsFile = join(dir, `cdktf-smartstack-agents-${agents.version}.tgz`);
    writeFileSync(agentsFile, agents.archive, { mode: 0o600 });
  }
  return agentsFile;
}

function sshKeyVariable(stack: TerraformStack): TerraformVariable {
  const existing = stack.node.tryFindChild(SSH_KEY_VARIABLE_ID);
  if (existing instanceof TerraformVariable) return existing;
  return new TerraformVariable(stack, SSH_KEY_VARIABLE_ID, {
    type: 'string',
    sensitive: true,
    description: 'SSH private key (PEM) that Terraform uses to deliver cloud-init documents to the VDS hosts',
  });
}
