import { renderNftables } from '../render/nftables';
import { shellQuote } from '../render/shell-word';
import { renderTemplate } from '../render/template';
import { configSafe, ConfigValueKind, tcpPort } from '../schema/config-safe';
import { ValidationError } from '../model/validation-error';
import { ApplyTimeSecrets } from './apply-time-secrets';
import { HOST_STEPS, unitPath } from './host-paths';
import { stringifyYaml11 } from './yaml-1-1';

/** A file that cloud-init writes (`write_files`). */
export interface CloudConfigFile {
  /** Absolute path on the host. */
  readonly path: string;
  /** The file's literal content. */
  readonly content: string;
  /**
   * Octal mode as a string.
   * @default '0644'
   */
  readonly permissions?: string;
  /**
   * `user:group` owning the file.
   * @default 'root:root'
   */
  readonly owner?: string;
  /**
   * Write the file late in the run, after users and packages exist. Needed when the owner is a
   * user that a package or cloud-init creates.
   * @default false
   */
  readonly defer?: boolean;
}

/** A data disk formatted on the whole device (no partition table) and mounted. */
export interface CloudConfigFilesystem {
  /** Device path, preferably stable (`/dev/disk/by-id/...`). */
  readonly device: string;
  /** Filesystem label (at most 16 characters for ext4). */
  readonly label: string;
  /** Where to mount it. */
  readonly mountPoint: string;
  /**
   * Filesystem type.
   * @default 'ext4'
   */
  readonly filesystem?: string;
  /**
   * Mount options.
   * @default ['defaults', 'noatime', 'nofail']
   */
  readonly mountOptions?: string[];
}

/** A systemd unit written to `/etc/systemd/system` and enabled. */
export interface SystemdUnit {
  /** Unit file name, e.g. `zookeeper.service`. */
  readonly name: string;
  /** The unit file's content. */
  readonly content: string;
  /**
   * Restart the unit each time the document is applied (after its files change).
   * @default true
   */
  readonly restartOnApply?: boolean;
  /**
   * Files the unit reads only when it starts (credentials, the program a link points to). With
   * this set an apply reloads the unit (its `ExecReload` must apply a new configuration) and
   * restarts it only when its unit file or one of these files changed since the last apply.
   * @default - restarted on each apply, as `restartOnApply` says
   */
  readonly startInputs?: string[];
}

/** An nftables rule that opens TCP ports to some sources and closes them to everyone else. */
export interface FirewallRule {
  /** What the rule is for, shown as an nftables comment. */
  readonly description: string;
  /** TCP ports. */
  readonly ports: number[];
  /** IPv4 addresses or CIDR blocks allowed to reach the ports. */
  readonly sources: string[];
}

/** A step of the document's apply: POSIX shell run after files, packages and disks, before units start. */
export interface HostStep {
  /** What the step does, named in the apply's output and in its error when it fails. */
  readonly description: string;
  /**
   * POSIX shell commands. A command that fails stops the apply (`set -e`); `fail "cause"` stops it
   * with a cause, and `run command args` names the command that failed.
   */
  readonly script: string;
}

/**
 * What has been added to one host's document, and its rendering. A `CloudConfig` fills one from
 * its additions; a role's part writes to one when the document is rendered.
 */
export class DocumentContent {
  public constructor(
    /** The document's secrets (see `CloudConfig.secrets`). */
    public readonly secrets: ApplyTimeSecrets,
  ) {}

  private readonly files = new Map<string, CloudConfigFile>();
  private readonly packages = new Set<string>();
  private readonly filesystems = new Map<string, CloudConfigFilesystem>();
  private readonly units = new Map<string, SystemdUnit>();
  /** By description and ports; sources kept as a set, since consumers widen a rule one by one. */
  private readonly firewallRules = new Map<string, { rule: FirewallRule; sources: Set<string> }>();
  /** The rules' keys in the order they were first added. */
  private readonly ruleOrder: string[] = [];
  private readonly steps: HostStep[] = [];
  /** The last rendering; synth asks for the document several times per host. */
  private rendered?: string;

  /**
   * Adds a file. Adding the same path twice with the same content is allowed; with different
   * content it is an error, since two roles would fight over it.
   */
  public addFile(file: CloudConfigFile): void {
    safe('file.path', file.path, 'filePath');
    if (typeof file.content !== 'string') throw fail('file.content', file.content, 'expected a string');
    this.checkLiteralText('file.content', file.content);
    if (file.owner !== undefined) safe('file.owner', file.owner, 'fileOwner');
    if (file.permissions !== undefined) safe('file.permissions', file.permissions, 'filePermissions');
    this.rendered = undefined;
    const existing = this.files.get(file.path);
    if (existing && JSON.stringify(existing) !== JSON.stringify(file)) {
      throw new Error(`CloudConfig: two roles write different content to ${file.path}`);
    }
    this.files.set(file.path, file);
  }

  /** Adds a Debian package to install. */
  public addPackage(name: string): void {
    // apt-get takes it as an argument: a leading '-' would be an option.
    safe('package', name, 'packageName');
    this.rendered = undefined;
    this.packages.add(name);
  }

  /** Adds a filesystem on a whole disk and its mount. */
  public addFilesystem(fs: CloudConfigFilesystem): void {
    safe('filesystem.device', fs.device, 'devicePath');
    safe('filesystem.label', fs.label, 'diskName');
    // Each mount is a line of /etc/fstab: a space or newline would add fields or mounts.
    safe('filesystem.mountPoint', fs.mountPoint, 'directory');
    if (fs.filesystem !== undefined) safe('filesystem.filesystem', fs.filesystem, 'filesystemType');
    (fs.mountOptions ?? []).forEach((option, i) => safe(`filesystem.mountOptions[${i}]`, option, 'mountOption'));
    this.rendered = undefined;
    const existing = this.filesystems.get(fs.device);
    if (existing && JSON.stringify(existing) !== JSON.stringify(fs)) {
      throw new Error(`CloudConfig: device ${fs.device} is claimed by two filesystems (${existing.mountPoint}, ${fs.mountPoint})`);
    }
    this.filesystems.set(fs.device, fs);
  }

  /** Adds a systemd unit, enabled and started on apply. */
  public addUnit(unit: SystemdUnit): void {
    // The name is a path under /etc/systemd/system and an argument of systemctl.
    safe('unit.name', unit.name, 'unitName');
    if (typeof unit.content !== 'string') throw fail('unit.content', unit.content, 'expected a string');
    this.checkLiteralText('unit.content', unit.content);
    (unit.startInputs ?? []).forEach((path, i) => safe(`unit.startInputs[${i}]`, path, 'filePath'));
    this.rendered = undefined;
    if (this.units.has(unit.name)) {
      throw new Error(`CloudConfig: systemd unit ${unit.name} is added twice`);
    }
    this.units.set(unit.name, unit);
  }

  /**
   * Adds a firewall rule to the host's `inet smartstack` nftables table. A rule with the same
   * description and ports as an earlier one adds its sources to it.
   */
  public addFirewallRule(rule: FirewallRule): void {
    safe('firewallRule.description', rule.description, 'text');
    rule.ports.forEach((port, i) => {
      tcpPort(fail, `firewallRule.ports[${i}]`, port);
    });
    rule.sources.forEach((source, i) => safe(`firewallRule.sources[${i}]`, source, 'ipv4OrCidr'));
    this.rendered = undefined;
    // A role that learns of more peers later widens its rule rather than adding a second one.
    const key = `${rule.description}\n${rule.ports.join()}`;
    const existing = this.firewallRules.get(key);
    if (existing) {
      rule.sources.forEach((s) => existing.sources.add(s));
    } else {
      this.firewallRules.set(key, { rule: { ...rule, ports: [...rule.ports] }, sources: new Set(rule.sources) });
      this.ruleOrder.push(key);
    }
  }

  /** Adds a command (argv form) run on every apply, after files, packages and disks; the apply fails if it fails. */
  public addRunCommand(argv: string[]): void {
    argv.forEach((arg, i) => this.checkLiteralText(`runCommand[${i}]`, arg));
    const description = argv.join(' ').replace(/\s+/g, ' ');
    this.addStep({
      description: description.length > 100 ? `${description.slice(0, 97)}...` : description,
      script: `run ${argv.map(shellQuote).join(' ')}`,
    });
  }

  /** Adds a step run on every apply, after files, packages and disks, in the order added. */
  public addStep(step: HostStep): void {
    const field = `steps[${this.steps.length}]`;
    safe(`${field}.description`, step.description, 'text');
    if (typeof step.script !== 'string') throw fail(`${field}.script`, step.script, 'expected POSIX shell commands');
    this.checkLiteralText(`${field}.script`, step.script);
    this.rendered = undefined;
    this.steps.push({ description: step.description, script: step.script });
  }

  /**
   * Checks literal text (file or unit content, a command argument): it must be something
   * cloud-init's YAML parser can carry, and may not hold a secret's placeholder that no role
   * registered (it would fail at synth).
   */
  public checkLiteralText(field: string, text: string): void {
    const unprintable = YAML_UNPRINTABLE.exec(text);
    if (unprintable) {
      const code = unprintable[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
      throw fail(field, text, `holds U+${code}, which cloud-init's YAML cannot carry (C0/C1 controls other than tab, newline and CR, DEL, U+2028/2029, U+FEFF, U+FFFE/FFFF, lone surrogates)`);
    }
    const unknown = this.secrets.unregisteredIn(text);
    if (unknown !== undefined) {
      throw fail(field, text, `holds ${unknown}, the form of an apply-time secret, but no secret of this document has that name (register it with secrets.placeholder)`);
    }
  }

  /** The firewall rules added so far, in order. */
  public get rules(): FirewallRule[] {
    return this.ruleOrder.map((key) => {
      const { rule, sources } = this.firewallRules.get(key)!;
      return { ...rule, sources: [...sources] };
    });
  }

  /** The Debian packages the document installs, sorted: those added, and those its firewall and disks need. */
  public get packageNames(): string[] {
    const packages = new Set(this.packages);
    if (this.firewallRules.size > 0) packages.add('nftables');
    // The tools that make each filesystem.
    this.filesystems.forEach((fs) => packages.add(MKFS_PACKAGES[fs.filesystem ?? 'ext4']));
    return [...packages].sort();
  }

  /** The systemd units added so far, sorted by name. */
  public get systemdUnits(): SystemdUnit[] {
    return [...this.units.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Renders the `#cloud-config` document. Deterministic: the same additions give the same bytes. */
  public render(): string {
    this.rendered ??= this.renderDocument();
    return this.rendered;
  }

  private renderDocument(): string {
    const files: CloudConfigFile[] = [...this.files.values()];
    const units = [...this.units.values()];
    const packages = this.packageNames;
    if (this.firewallRules.size > 0) {
      files.push({ path: FIREWALL_RULESET_PATH, content: renderNftables(this.rules), permissions: '0600' });
      units.push({ name: 'smartstack-firewall.service', content: FIREWALL_UNIT });
    }
    units.sort((a, b) => a.name.localeCompare(b.name));
    for (const unit of units) {
      files.push({ path: unitPath(unit.name), content: unit.content });
    }

    // Each apply is a first boot to cloud-init. Its defaults would then regenerate the SSH host
    // keys, lock root's SSH login (the usual delivery user) and rewrite the apt sources: keep all three.
    const doc: Record<string, unknown> = {
      disable_root: false,
      ssh_deletekeys: false,
      apt: { preserve_sources_list: true },
    };
    if (packages.length > 0) {
      doc.package_update = true;
      doc.packages = packages;
    }
    const filesystems = [...this.filesystems.values()].sort((a, b) => a.mountPoint.localeCompare(b.mountPoint));

    // Disks, commands and units are the steps script's, not cloud-init's modules': its fs_setup
    // formats a whole disk without looking for a filesystem, and its runcmd ignores failures.
    files.push({
      path: HOST_STEPS,
      permissions: '0700',
      content: renderTemplate('host-steps.sh', {
        packages,
        filesystems: filesystems.map((fs) => ({
          device: fs.device,
          label: fs.label,
          mountPoint: fs.mountPoint,
          type: fs.filesystem ?? 'ext4',
          options: (fs.mountOptions ?? DEFAULT_MOUNT_OPTIONS).join(','),
        })),
        steps: this.steps.map((step) => ({ quotedDescription: shellQuote(step.description), script: step.script })),
        units: units.map((u) => u.name),
        restart: units.filter((u) => (u.restartOnApply ?? true) && u.startInputs === undefined).map((u) => u.name),
        reloaded: units.filter((u) => u.startInputs !== undefined).map((u) => ({ name: u.name, inputs: u.startInputs })),
      }),
    });
    files.sort((a, b) => a.path.localeCompare(b.path));
    doc.write_files = files.map((f) => ({
      path: f.path,
      content: f.content,
      owner: f.owner ?? 'root:root',
      permissions: f.permissions ?? '0644',
      ...(f.defer ? { defer: true } : {}),
    }));
    doc.runcmd = [['sh', HOST_STEPS]];

    return '#cloud-config\n' + stringifyYaml11(doc);
  }
}


const DEFAULT_MOUNT_OPTIONS = ['defaults', 'noatime', 'nofail'];
const MKFS_PACKAGES: Record<string, string> = { ext2: 'e2fsprogs', ext3: 'e2fsprogs', ext4: 'e2fsprogs', xfs: 'xfsprogs', btrfs: 'btrfs-progs' };

// What PyYAML (cloud-init's parser) does not accept in a document, even escaped in a block scalar.
const YAML_UNPRINTABLE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const FIREWALL_RULESET_PATH = '/etc/smartstack/nftables.nft';
const FIREWALL_UNIT = `[Unit]
Description=smartstack firewall rules (nftables table inet smartstack)
Wants=network-pre.target
Before=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f ${FIREWALL_RULESET_PATH}
ExecStop=/usr/sbin/nft delete table inet smartstack

[Install]
WantedBy=multi-user.target
`;

// Everything added here lands in the YAML document, fstab, unit paths or nftables rules.
function fail(field: string, value: unknown, reason: string): Error {
  return new ValidationError(undefined, 'CloudConfig', field, value, reason);
}

function safe(field: string, value: unknown, kind: ConfigValueKind): string {
  return configSafe(fail, field, value, kind);
}
