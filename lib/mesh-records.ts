import { Aspects, TerraformStack } from './cdktf-edge';
import { Construct, IConstruct } from 'constructs';
import type { HaproxySidecar } from './haproxy-sidecar';
import { Fail } from './schema/config-safe';
import type { SmartStackService } from './smartstack-service';
import type { VdsNode } from './vds-node';
import type { ZookeeperEnsemble } from './zookeeper-ensemble';

const RECORDS_ID = 'smartstack-mesh';

/** A host that provides a service, with the port and weight it has there. */
export interface ServiceProvider {
  readonly host: VdsNode;
  readonly port: number;
  readonly weight?: number;
}

/** Who provides and consumes what, worked out from the sidecars. */
interface MeshIndex {
  readonly version: number;
  /** Per service, its providers in the order their sidecars were created (the rollout order). */
  readonly providers: Map<SmartStackService, ServiceProvider[]>;
  /** Per service, the hosts that consume it, in the order their sidecars were created. */
  readonly consumers: Map<SmartStackService, VdsNode[]>;
  /** Per ensemble, the hosts whose agents use it, in the order their sidecars were created. */
  readonly clients: Map<ZookeeperEnsemble, VdsNode[]>;
}

/**
 * The mesh of one stack as its constructs record it: the hosts by address and name, the ensembles,
 * the services, each host's sidecar, and the services that name a host as a provider. Constructs
 * record what they are when they are created; everything that depends on the whole mesh (the
 * documents' parts, who provides and consumes what, the rollout order) is worked out from these
 * records when it is read, and at synth. One per stack, a construct of its own under the stack; it
 * adds nothing to the synthesized Terraform. Keeping the records here, rather than walking the
 * construct tree, keeps synth linear in the number of hosts.
 */
export class MeshRecords extends Construct {
  /** The records of the stack of `scope`, made on first use. */
  public static of(scope: IConstruct): MeshRecords {
    const stack = TerraformStack.of(scope);
    const existing = stack.node.tryFindChild(RECORDS_ID);
    return existing instanceof MeshRecords ? existing : new MeshRecords(stack, RECORDS_ID);
  }

  /** The stack's services, in the order they were created. */
  public readonly services: SmartStackService[] = [];
  /** Whether a null provider was found in or added to the stack. */
  public hasNullProvider = false;
  private readonly hosts: VdsNode[] = [];
  private readonly ensembles: ZookeeperEnsemble[] = [];
  private readonly hostsByAddress = new Map<string, VdsNode>();
  private readonly hostsByName = new Map<string, VdsNode>();
  private readonly sidecars = new Map<VdsNode, HaproxySidecar>();
  private readonly declared = new Map<VdsNode, SmartStackService[]>();
  private changes = 0;
  private index?: MeshIndex;

  private constructor(stack: TerraformStack, id: string) {
    super(stack, id);
    // The one synth step: the rollout order from the complete mesh, before any resource is rendered
    // (aspects run first, in `app.synth()` and in `Testing.synth`), since `depends_on` is a plain field.
    Aspects.of(stack).add({ visit: (node) => (node === stack ? this.orderRollout() : undefined) });
  }

  /** Changes whenever a host, ensemble, service or sidecar is recorded. */
  public get version(): number {
    return this.changes;
  }

  /**
   * Records a host, or throws `fail` naming the field and the host that has the value already: a
   * second host with the same address would receive the first one's delivery, and two with the
   * same name would register the same nerve instance id.
   */
  public claimHost(host: VdsNode, fail: Fail): void {
    const sameAddress = this.hostsByAddress.get(host.privateAddress);
    if (sameAddress) {
      throw fail('privateAddress', host.privateAddress, `already the private address of VdsNode '${sameAddress.node.path}': each host of a stack needs its own (Terraform delivers to the address, so one host would receive both documents); give this host its address`);
    }
    const sameName = this.hostsByName.get(host.hostname);
    if (sameName) {
      throw fail('hostname', host.hostname, `already the host name of VdsNode '${sameName.node.path}': each host of a stack needs its own (nerve registers the host name as its instance id); set hostname, or give the construct another id`);
    }
    this.hostsByAddress.set(host.privateAddress, host);
    this.hostsByName.set(host.hostname, host);
    this.hosts.push(host);
    this.changes++;
  }

  public addEnsemble(ensemble: ZookeeperEnsemble): void {
    this.ensembles.push(ensemble);
    this.changes++;
  }

  /** Records a service, and the hosts it names as providers. */
  public addService(service: SmartStackService): void {
    this.services.push(service);
    for (const host of service.providers ?? []) this.declared.set(host, [...(this.declared.get(host) ?? []), service]);
    this.changes++;
  }

  /** The services that name the host in their `providers`. */
  public servicesDeclaredOn(host: VdsNode): SmartStackService[] {
    return this.declared.get(host) ?? [];
  }

  public addSidecar(host: VdsNode, sidecar: HaproxySidecar): void {
    this.sidecars.set(host, sidecar);
    this.changes++;
  }

  public sidecarOf(host: VdsNode): HaproxySidecar | undefined {
    return this.sidecars.get(host);
  }

  /** The hosts that provide the service, in rollout order, each with its port and weight. */
  public providersOf(service: SmartStackService): ServiceProvider[] {
    return this.current().providers.get(service) ?? [];
  }

  /** The hosts that consume the service, in the order their sidecars were created. */
  public consumersOf(service: SmartStackService): VdsNode[] {
    return this.current().consumers.get(service) ?? [];
  }

  /** The hosts whose agents use the ensemble, in the order their sidecars were created. */
  public clientsOf(ensemble: ZookeeperEnsemble): VdsNode[] {
    return this.current().clients.get(ensemble) ?? [];
  }

  private current(): MeshIndex {
    if (this.index?.version === this.changes) return this.index;
    const index: MeshIndex = { version: this.changes, providers: new Map(), consumers: new Map(), clients: new Map() };
    const add = <K, V>(map: Map<K, V[]>, key: K, value: V) => {
      const list = map.get(key);
      if (list) list.push(value);
      else map.set(key, [value]);
    };
    for (const [host, sidecar] of this.sidecars) {
      const provides = sidecar.provides;
      // A sidecar with nothing to do fails validation; it joins nothing.
      if (provides.length === 0 && sidecar.consumes.length === 0) continue;
      for (const service of provides) add(index.providers, service, { host, ...sidecar._placementOf(service) });
      for (const service of sidecar.consumes) add(index.consumers, service, host);
      for (const ensemble of new Set([...provides, ...sidecar.consumes].map((s) => s.ensemble))) add(index.clients, ensemble, host);
    }
    this.index = index;
    return index;
  }

  /**
   * Orders the deliveries: each ensemble's members one at a time in id order, then each service's
   * providers in batches of its `maxUnavailableProviders` (a count, or a share of its providers), in
   * the order their sidecars were created.
   */
  private orderRollout(): void {
    this.hosts.forEach((host) => host._resetRollout());
    for (const ensemble of this.ensembles) {
      const byId = ensemble.members.map((m, i) => ({ m, id: ensemble.memberIds[i] })).sort((a, b) => a.id - b.id).map(({ m }) => m);
      for (let i = 1; i < byId.length; i++) byId[i]._applyAfter(byId[i - 1], `members of ${ensemble.node.path} roll one at a time`);
    }
    const rolled = new Map<SmartStackService, VdsNode[]>();
    for (const [host, sidecar] of this.sidecars) {
      if (sidecar.consumes.length === 0 && sidecar.provides.length === 0) continue;
      for (const service of sidecar.provides) {
        const order = rolled.get(service) ?? [];
        rolled.set(service, order);
        order.push(host);
        // Each provider is applied after the one a batch's size places before it.
        const batch = service.providersAtOnce(this.providersOf(service).length);
        const previous = order[order.length - 1 - batch];
        if (previous !== undefined) host._applyAfter(previous, `providers of ${service.serviceName} roll ${batch} at a time`);
      }
    }
  }
}
