import { createHash } from 'crypto';
import { runBounded, runChecked } from './bounded-command';
import { FleetState, linkMac } from './fleet-state';

/** The only addresses the fleet uses: 198.18.0.0/15, reserved for benchmark tests (RFC 2544). */
export const FLEET_RANGE = '198.18.0.0/15';

/** Throws unless `address` is a dotted IPv4 address inside 198.18.0.0/15. */
export function assertFleetAddress(address: string, field = 'address'): void {
  const octets = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address)?.slice(1).map(Number);
  if (!octets || octets.some((o) => o > 255)) throw new Error(`fleet: ${field} = ${JSON.stringify(address)}: expected an IPv4 address in ${FLEET_RANGE}`);
  if (octets[0] !== 198 || (octets[1] !== 18 && octets[1] !== 19)) {
    throw new Error(`fleet: ${field} = ${JSON.stringify(address)}: outside ${FLEET_RANGE}; the fleet never sends traffic to any other address`);
  }
}

export interface FleetNetworkOptions {
  /**
   * The third octet of the fleet's /24, 198.18.N.0/24 (0-255).
   * @default one derived from the run id that no interface of this machine uses yet
   */
  readonly subnet?: number;
}

/**
 * A Linux bridge the harness creates for one run, with 198.18.N.1/24 on it and a fixed MAC (a bridge
 * otherwise takes its lowest port's MAC, and when that host dies the change stalls the others' TCP
 * sessions for minutes). Hosts get 198.18.N.2-254, no default route and no name server.
 */
export class FleetNetwork {
  public static async create(state: FleetState, options: FleetNetworkOptions = {}): Promise<FleetNetwork> {
    const runId = state.record.runId;
    const subnet = options.subnet ?? (await freeSubnet(runId));
    if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) {
      throw new Error(`fleet: subnet = ${JSON.stringify(subnet)}: expected the third octet of 198.18.N.0/24, an integer 0-255`);
    }
    const prefix = `198.18.${subnet}`;
    const taken = await addressesInUse();
    const clash = taken.find((a) => a.startsWith(`${prefix}.`));
    if (clash) throw new Error(`fleet: subnet = ${subnet}: ${prefix}.0/24 is already in use on this machine (${clash})`);
    const name = `ssfl${runId.slice(0, 8)}`;
    // Locally administered (0x02), unicast, and fixed for the run.
    const mac = `02:5f:${runId.slice(0, 2)}:${runId.slice(2, 4)}:${runId.slice(4, 6)}:01`;
    if (linkMac(name) !== undefined) throw new Error(`fleet: a link named ${name} already exists; run ids must be unique`);
    state.update((r) => {
      r.bridge = { name, mac };
    });
    await runChecked(['ip', 'link', 'add', 'name', name, 'address', mac, 'type', 'bridge'], { timeoutMs: 10_000 });
    await runChecked(['ip', 'link', 'set', name, 'address', mac], { timeoutMs: 10_000 });
    // Bridged frames skip this machine's iptables/arptables (br_netfilter), whatever rules it has.
    await runBounded(['ip', 'link', 'set', name, 'type', 'bridge', 'nf_call_iptables', '0', 'nf_call_ip6tables', '0', 'nf_call_arptables', '0'], { timeoutMs: 10_000 });
    // No IPv6 on the bridge: the fleet speaks IPv4 in its own /24 only.
    await runBounded(['sysctl', '-q', '-w', `net.ipv6.conf.${name}.disable_ipv6=1`], { timeoutMs: 10_000 });
    await runChecked(['ip', 'addr', 'add', `${prefix}.1/24`, 'dev', name], { timeoutMs: 10_000 });
    await runChecked(['ip', 'link', 'set', name, 'up'], { timeoutMs: 10_000 });
    return new FleetNetwork(name, mac, prefix);
  }

  /** The bridge's address (this machine, as the hosts see it). */
  public readonly gatewayAddress: string;
  /** The fleet's network, e.g. 198.18.7.0/24. */
  public readonly cidr: string;

  private constructor(
    /** The bridge's interface name. */
    public readonly bridge: string,
    /** The bridge's fixed MAC address. */
    public readonly mac: string,
    /** The first three octets, e.g. 198.18.7. */
    public readonly prefix: string,
  ) {
    this.gatewayAddress = `${prefix}.1`;
    this.cidr = `${prefix}.0/24`;
  }

  /** Host number `n` (2-254) of the fleet: `198.18.N.n`. */
  public hostAddress(n: number): string {
    if (!Number.isInteger(n) || n < 2 || n > 254) throw new Error(`fleet: host number = ${JSON.stringify(n)}: expected an integer 2-254 (.1 is the bridge)`);
    return `${this.prefix}.${n}`;
  }

  /** Throws unless `address` is in this fleet's /24 (and so in 198.18.0.0/15), not the bridge itself. */
  public assertHostAddress(address: string, field = 'address'): void {
    assertFleetAddress(address, field);
    const last = Number(address.split('.')[3]);
    if (!address.startsWith(`${this.prefix}.`) || last < 2 || last > 254) {
      throw new Error(`fleet: ${field} = ${JSON.stringify(address)}: expected a host address in ${this.cidr} (.2-.254)`);
    }
  }

  /**
   * Checks, before any traffic, that the kernel routes `address` out through this fleet's bridge
   * (`ip route get`). Throws otherwise, naming the route found.
   */
  public async assertRoute(address: string): Promise<void> {
    this.assertHostAddress(address);
    const r = await runChecked(['ip', '-j', 'route', 'get', address], { timeoutMs: 10_000 });
    const routes = JSON.parse(r.stdout) as Array<{ dst?: string; dev?: string; gateway?: string }>;
    const route = routes[0];
    if (!route || route.dev !== this.bridge || route.gateway !== undefined) {
      throw new Error(`fleet: ${address} is routed ${JSON.stringify(route)}, not directly via the fleet's bridge ${this.bridge}: no traffic sent`);
    }
  }
}

/** Every IPv4 address on this machine's interfaces. */
async function addressesInUse(): Promise<string[]> {
  const r = await runChecked(['ip', '-j', '-4', 'addr', 'show'], { timeoutMs: 10_000 });
  const links = JSON.parse(r.stdout) as Array<{ ifname: string; addr_info?: Array<{ local: string; prefixlen: number }> }>;
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen} on ${l.ifname}`));
}

/** A /24 of 198.18.0.0/16 not used on this machine, starting from one derived from the run id. */
async function freeSubnet(runId: string): Promise<number> {
  const taken = await addressesInUse();
  const start = createHash('sha256').update(runId).digest()[0];
  for (let i = 0; i < 256; i++) {
    const n = (start + i) % 256;
    if (!taken.some((a) => a.startsWith(`198.18.${n}.`))) return n;
  }
  throw new Error('fleet: every /24 of 198.18.0.0/16 is in use on this machine');
}
