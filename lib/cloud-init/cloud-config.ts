import { ApplyTimeSecrets } from './apply-time-secrets';
import { CloudConfigFile, CloudConfigFilesystem, DocumentContent, FirewallRule, HostStep, SystemdUnit } from './document-content';

export type { CloudConfigFile, CloudConfigFilesystem, FirewallRule, HostStep, SystemdUnit } from './document-content';

/** A role's part of a document, written when the document is rendered, from the whole mesh as it is then. */
export type DocumentPart = (content: DocumentContent) => void;

/**
 * The whole of one host's cloud-init document, added to by every role the host has. What is added
 * is checked at once and kept in order; a role whose part depends on constructs that may come later
 * (a sidecar, on the services that name its host) adds a part, which writes its additions in its
 * place each time the document is rendered. The rendering is a function of the additions and the
 * mesh: reading the document changes nothing.
 */
export class CloudConfig {
  /**
   * Secrets the document's files use: a file's content holds `secrets.placeholder(...)`, and the
   * host receives the value, evaluated by Terraform at apply.
   */
  public readonly secrets = new ApplyTimeSecrets();
  /** Every addition, parts included, in order. */
  private readonly additions: DocumentPart[] = [];
  /** The additions made directly, applied at once: they are checked, against each other too, where they are made. */
  private readonly direct = new DocumentContent(this.secrets);
  private parts = 0;
  private filled?: { key: string; content: DocumentContent };
  private meshVersion: () => number = () => 0;

  /**
   * Tells the document where to see that the mesh its parts read has changed: a number that
   * changes with it.
   * @internal
   */
  public _followMesh(version: () => number): void {
    this.meshVersion = version;
  }

  /**
   * Adds a file. Adding the same path twice with the same content is allowed; with different
   * content it is an error, since two roles would fight over it.
   */
  public addFile(file: CloudConfigFile): void {
    this.direct.addFile(file);
    this.additions.push((content) => content.addFile(file));
  }

  /** Adds a Debian package to install. */
  public addPackage(name: string): void {
    this.direct.addPackage(name);
    this.additions.push((content) => content.addPackage(name));
  }

  /** Adds a filesystem on a whole disk and its mount. */
  public addFilesystem(fs: CloudConfigFilesystem): void {
    this.direct.addFilesystem(fs);
    this.additions.push((content) => content.addFilesystem(fs));
  }

  /** Adds a systemd unit, enabled and started on apply. */
  public addUnit(unit: SystemdUnit): void {
    this.direct.addUnit(unit);
    this.additions.push((content) => content.addUnit(unit));
  }

  /**
   * Adds a firewall rule to the host's `inet smartstack` nftables table. A rule with the same
   * description and ports as an earlier one adds its sources to it.
   */
  public addFirewallRule(rule: FirewallRule): void {
    this.direct.addFirewallRule(rule);
    const copy = { ...rule, ports: [...rule.ports], sources: [...rule.sources] };
    this.additions.push((content) => content.addFirewallRule(copy));
  }

  /** Adds a command (argv form) run on every apply, after files, packages and disks; the apply fails if it fails. */
  public addRunCommand(argv: string[]): void {
    this.direct.addRunCommand(argv);
    const copy = [...argv];
    this.additions.push((content) => content.addRunCommand(copy));
  }

  /** Adds a step run on every apply, after files, packages and disks, in the order added. */
  public addStep(step: HostStep): void {
    this.direct.addStep(step);
    const copy = { description: step.description, script: step.script };
    this.additions.push((content) => content.addStep(copy));
  }

  /**
   * Adds a role's part: it writes its additions here, in this place, whenever the document is rendered.
   * @internal
   */
  public _addPart(part: DocumentPart): void {
    this.parts++;
    this.additions.push(part);
  }

  /**
   * Checks literal text (file or unit content, a command argument): it must be something
   * cloud-init's YAML parser can carry, and may not hold a secret's placeholder that no role
   * registered (it would fail at synth).
   */
  public checkLiteralText(field: string, text: string): void {
    this.direct.checkLiteralText(field, text);
  }

  /** The firewall rules, in order. */
  public get rules(): FirewallRule[] {
    return this.content().rules;
  }

  /** The Debian packages the document installs, sorted: those added, and those its firewall and disks need. */
  public get packageNames(): string[] {
    return this.content().packageNames;
  }

  /** The systemd units, sorted by name. */
  public get systemdUnits(): SystemdUnit[] {
    return this.content().systemdUnits;
  }

  /** Renders the `#cloud-config` document. Deterministic: the same additions and mesh give the same bytes. */
  public render(): string {
    return this.content().render();
  }

  /** The additions written out; the parts' are written again only when the mesh or the additions changed. */
  private content(): DocumentContent {
    if (this.parts === 0) return this.direct;
    const key = `${this.additions.length}/${this.meshVersion()}`;
    if (this.filled?.key !== key) {
      const content = new DocumentContent(this.secrets);
      this.additions.forEach((add) => add(content));
      this.filled = { key, content };
    }
    return this.filled.content;
  }
}

