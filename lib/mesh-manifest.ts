import { renameSync, writeFileSync } from 'fs';
import { join } from 'path';
import { IStackSynthesizer, ISynthesisSession, TerraformStack } from './cdktf-edge';
import { IConstruct } from 'constructs';
import { PACKAGE } from './package-info';
import { Manifest, MANIFEST_FILE, MANIFEST_VERSION, ManifestEnsemble, ManifestHost, ManifestMember, ManifestRole, ManifestService, ManifestSidecar } from './model/manifest';

/**
 * What the constructs of a stack tell the manifest, collected at synth. Each construct describes
 * itself; the manifest is put together from the whole tree, so the order they were created in does
 * not matter.
 */
export class ManifestBuilder {
  private readonly hosts = new Map<string, Omit<ManifestHost, 'roles' | 'sidecar' | 'zookeeper'>>();
  private readonly roles = new Map<string, Set<ManifestRole>>();
  private readonly sidecars = new Map<string, ManifestSidecar>();
  private readonly members = new Map<string, NonNullable<ManifestHost['zookeeper']>>();
  private readonly ensembles: ManifestEnsemble[] = [];
  private readonly services: ManifestService[] = [];

  public constructor(private readonly stack: string) {}

  public addHost(host: Omit<ManifestHost, 'roles' | 'sidecar' | 'zookeeper'>): void {
    this.hosts.set(host.name, host);
  }

  public addSidecar(host: string, sidecar: ManifestSidecar): void {
    this.sidecars.set(host, sidecar);
    if (sidecar.nerveConfig !== undefined) this.role(host, 'nerve');
    if (sidecar.synapseConfig !== undefined) this.role(host, 'synapse');
  }

  public addEnsemble(ensemble: ManifestEnsemble, member: Omit<ManifestMember, 'ensemble' | 'id'>): void {
    this.ensembles.push(ensemble);
    for (const m of ensemble.members) {
      this.members.set(m.host, { ensemble: ensemble.construct, id: m.id, ...member });
      this.role(m.host, 'zookeeper-member');
    }
  }

  public addService(service: ManifestService): void {
    this.services.push(service);
  }

  public build(): Manifest {
    const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const order: ManifestRole[] = ['zookeeper-member', 'nerve', 'synapse'];
    return {
      manifestVersion: MANIFEST_VERSION,
      generator: { name: PACKAGE.name, version: PACKAGE.version },
      stack: this.stack,
      hosts: [...this.hosts.values()].sort(byName).map(({ disks, delivery, scripts, ...identity }) => ({
        ...identity,
        roles: order.filter((r) => this.roles.get(identity.name)?.has(r)),
        disks,
        ...(delivery ? { delivery } : {}),
        scripts,
        ...(this.sidecars.has(identity.name) ? { sidecar: this.sidecars.get(identity.name) } : {}),
        ...(this.members.has(identity.name) ? { zookeeper: this.members.get(identity.name) } : {}),
      })),
      ensembles: [...this.ensembles].sort((a, b) => (a.construct < b.construct ? -1 : 1)),
      services: [...this.services].sort(byName),
    };
  }

  private role(host: string, role: ManifestRole): void {
    const roles = this.roles.get(host) ?? new Set();
    roles.add(role);
    this.roles.set(host, roles);
  }
}

/** A construct that tells the manifest about itself. */
export interface IManifestPart extends IConstruct {
  /** @internal */
  _describeInto(manifest: ManifestBuilder): void;
}

function isManifestPart(c: IConstruct): c is IManifestPart {
  return typeof (c as Partial<IManifestPart>)._describeInto === 'function';
}

/** The manifest of a stack, from every construct of it that describes itself. */
export function buildManifest(stack: TerraformStack): Manifest {
  const builder = new ManifestBuilder(stack.node.id);
  stack.node.findAll().filter(isManifestPart).forEach((part) => part._describeInto(builder));
  return builder.build();
}

/** The stack's own synthesizer, then the manifest beside what it wrote. */
class ManifestWriter implements IStackSynthesizer {
  public constructor(private readonly stack: TerraformStack, private readonly inner: IStackSynthesizer) {}

  public synthesize(session: ISynthesisSession): void {
    // Aspects and validations run in there: the tree is complete when the manifest is built.
    this.inner.synthesize(session);
    const file = join(session.outdir, session.manifest.forStack(this.stack).workingDirectory, MANIFEST_FILE);
    writeFileSync(`${file}.tmp`, `${JSON.stringify(buildManifest(this.stack), null, 2)}\n`);
    renameSync(`${file}.tmp`, file);
  }
}

/**
 * Makes the stack of `scope` write its manifest, `smartstack.json`, beside its Terraform when it is
 * synthesized (once per stack; a no-op after the first call). Written whole or not at all.
 */
export function writeManifestAtSynth(scope: IConstruct): void {
  const stack = TerraformStack.of(scope);
  if (stack.synthesizer instanceof ManifestWriter) return;
  stack.synthesizer = new ManifestWriter(stack, stack.synthesizer);
}
