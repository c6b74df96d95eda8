import { TerraformStack } from 'cdktf';
import { Construct, IConstruct } from 'constructs';
import type { HaproxySidecar } from './haproxy-sidecar';
import { Fail } from './schema/config-safe';
import type { SmartStackService } from './smartstack-service';
import type { VdsNode } from './vds-node';

const RECORDS_ID = 'smartstack-mesh';

/**
 * What the constructs of one stack record about each other, so that none has to walk the construct
 * tree (which makes synth quadratic in the number of hosts): the hosts by address and name, the
 * services, each host's sidecar, and the services that name a host as a provider. One per stack,
 * a construct of its own under the stack; it adds nothing to the synthesized Terraform.
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
  private readonly hostsByAddress = new Map<string, VdsNode>();
  private readonly hostsByName = new Map<string, VdsNode>();
  private readonly sidecars = new Map<VdsNode, HaproxySidecar>();
  private readonly declared = new Map<VdsNode, SmartStackService[]>();

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
  }

  /** Records a service, and the hosts it names as providers. */
  public addService(service: SmartStackService): void {
    this.services.push(service);
    for (const host of service.providers ?? []) this.declared.set(host, [...(this.declared.get(host) ?? []), service]);
  }

  /** The services that name the host in their `providers`. */
  public servicesDeclaredOn(host: VdsNode): SmartStackService[] {
    return this.declared.get(host) ?? [];
  }

  public addSidecar(host: VdsNode, sidecar: HaproxySidecar): void {
    this.sidecars.set(host, sidecar);
  }

  public sidecarOf(host: VdsNode): HaproxySidecar | undefined {
    return this.sidecars.get(host);
  }
}
