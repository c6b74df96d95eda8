import { TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';
import { Fail } from './schema/config-safe';

/**
 * The hosts of each stack by private address and by host name. Both identify a host to the mesh:
 * a second host with the same address would receive the first one's delivery, and two with the same
 * name would register the same nerve instance id, so each is refused where it is created.
 */
interface StackHosts {
  readonly byAddress: Map<string, IConstruct>;
  readonly byHostname: Map<string, IConstruct>;
}

const hostsByStack = new WeakMap<TerraformStack, StackHosts>();

/** Records the host, or throws `fail` naming the field and the host that has the value already. */
export function claimHostIdentity(host: IConstruct, hostname: string, privateAddress: string, fail: Fail): void {
  const stack = TerraformStack.of(host);
  let hosts = hostsByStack.get(stack);
  if (!hosts) {
    hosts = { byAddress: new Map(), byHostname: new Map() };
    hostsByStack.set(stack, hosts);
  }
  const sameAddress = hosts.byAddress.get(privateAddress);
  if (sameAddress) {
    throw fail('privateAddress', privateAddress, `already the private address of VdsNode '${sameAddress.node.path}': each host of a stack needs its own (Terraform delivers to the address, so one host would receive both documents); give this host its address`);
  }
  const sameName = hosts.byHostname.get(hostname);
  if (sameName) {
    throw fail('hostname', hostname, `already the host name of VdsNode '${sameName.node.path}': each host of a stack needs its own (nerve registers the host name as its instance id); set hostname, or give the construct another id`);
  }
  hosts.byAddress.set(privateAddress, host);
  hosts.byHostname.set(hostname, host);
}
