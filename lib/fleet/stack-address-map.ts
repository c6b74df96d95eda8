import { cidrContains } from '../model/address';
import { SynthesizedStack } from '../cloud-init/synthesized-documents';
import { Manifest } from '../model/manifest';

/**
 * A synthesized stack's hosts moved onto a fleet: every private address of the stack replaced by a
 * fleet address, every SSH connection pointed at the fleet host with the fleet host's key. Pure: it
 * reads and rewrites Terraform JSON; booting and applying are the rehearsal's.
 */

/** One VdsNode of a synthesized stack, as the fleet needs it. */
export interface StackHost {
  readonly hostname: string;
  /** The host's address on the user's private network. */
  readonly privateAddress: string;
  /** The private network (CIDR) of the host file. */
  readonly privateNetwork: string;
  /** The `/dev/disk/by-id/` names of the disks the document formats and mounts. */
  readonly diskIds: string[];
}

/** What a fleet host is for a stack host. */
export interface FleetPlacement {
  /** The fleet address that stands in for the private address. */
  readonly address: string;
  /** The fleet host's SSH host key (`ssh-ed25519 AAAA…`). */
  readonly sshHostKey: string;
}

const BY_ID = '/dev/disk/by-id/';
/** An IPv4 literal with an optional prefix length, not part of a longer dotted or word token. */
const IPV4 = /(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?(?![\w]|\.\d)/g;

interface TerraformJson {
  resource?: Record<string, Record<string, TerraformResource>>;
  variable?: Record<string, unknown>;
  [key: string]: unknown;
}

interface TerraformResource {
  connection?: Record<string, unknown>;
  provisioner?: Array<Record<string, Record<string, unknown>>>;
  [key: string]: unknown;
}

/**
 * The hosts of a synthesized stack that it delivers over SSH, as its manifest describes them: name,
 * private address and network, and disks. Throws, naming the host and the device, for a disk the
 * fleet cannot make (only `/dev/disk/by-id/` names).
 */
export function stackHosts(stack: SynthesizedStack): StackHost[] {
  const hosts = stack.manifest.hosts.filter((h) => h.delivery !== undefined).map((h): StackHost => ({
    hostname: h.name,
    privateAddress: h.privateAddress,
    privateNetwork: h.privateNetwork,
    diskIds: h.disks.map(({ device }) => {
      if (!device.startsWith(BY_ID) || device.length === BY_ID.length || device.slice(BY_ID.length).includes('/')) {
        throw new Error(`host ${h.name}: disk device = ${JSON.stringify(device)}: the rehearsal makes disks by their /dev/disk/by-id/ name only; use such a name in the VdsNode's disks`);
      }
      return device.slice(BY_ID.length);
    }),
  }));
  if (hosts.length === 0) throw new Error('the stack has no VdsNode delivered over SSH: nothing to rehearse');
  return hosts;
}

/**
 * Host numbers (2-254) of a fleet /24 for the hosts: the private address's last octet where it is
 * free, else the lowest free one. `taken` are numbers already given (by hostname), kept as they are.
 */
export function fleetHostNumbers(hosts: readonly StackHost[], taken: ReadonlyMap<string, number> = new Map()): Map<string, number> {
  const numbers = new Map(taken);
  const used = new Set(numbers.values());
  const pending = hosts.filter((h) => !numbers.has(h.hostname));
  const later: StackHost[] = [];
  for (const h of pending) {
    const last = Number(h.privateAddress.split('.')[3]);
    if (last >= 2 && last <= 254 && !used.has(last)) {
      numbers.set(h.hostname, last);
      used.add(last);
    } else later.push(h);
  }
  for (const h of later) {
    let n = 2;
    while (used.has(n)) n++;
    if (n > 254) throw new Error(`the stack has ${hosts.length} hosts; a fleet's /24 holds 253`);
    numbers.set(h.hostname, n);
    used.add(n);
  }
  return numbers;
}

/**
 * The stack rewritten for the fleet: each host's private address (alone or as `/32`) becomes its
 * fleet address, each host's private network its fleet's CIDR, everywhere in the JSON (documents,
 * zoo.cfg, firewall rules, outputs); each SSH connection goes to the fleet host of the resource, as
 * root with `var.ssh_private_key`, with the fleet host's key pinned. Then checked: an address of the
 * user's private networks (or any private range) left anywhere throws, naming it and where it is.
 */
export function mapStackOntoFleet(
  stack: SynthesizedStack,
  hosts: readonly StackHost[],
  placements: ReadonlyMap<string, FleetPlacement>,
  fleetCidr: string,
): Record<string, unknown> {
  const addresses = new Map<string, string>();
  const networks = new Map<string, string>();
  for (const h of hosts) {
    const placement = placements.get(h.hostname);
    if (!placement) throw new Error(`host ${h.hostname}: no fleet host stands in for it`);
    if (!cidrContains(fleetCidr, placement.address)) throw new Error(`host ${h.hostname}: fleet address ${placement.address} is outside ${fleetCidr}`);
    addresses.set(h.privateAddress, placement.address);
    networks.set(canonicalCidr(h.privateNetwork), fleetCidr);
  }
  // The networks the stack opens ports to besides its hosts (operators, other callers) are the
  // fleet's network in the rehearsal: the fleet's hosts stand in for every caller.
  const clientNetworks = [...stack.manifest.ensembles.flatMap((e) => e.clientNetworks), ...stack.manifest.services.flatMap((s) => s.clientNetworks)];
  for (const cidr of clientNetworks) networks.set(canonicalCidr(cidr), fleetCidr);
  const mapText = (text: string) =>
    text.replace(IPV4, (literal: string, address: string, prefix?: string) => {
      if (prefix !== undefined) {
        const network = networks.get(canonicalCidr(literal));
        if (network !== undefined) return network;
        if (prefix === '32' && addresses.has(address)) return `${addresses.get(address)}/32`;
        return literal;
      }
      return addresses.get(address) ?? literal;
    });
  const json = mapStrings(stack.terraform, mapText) as TerraformJson;
  const byAddress = new Map([...placements.entries()].map(([hostname, p]) => [p.address, hostname]));
  const hostOfResource = resourceHosts(stack.manifest);

  for (const [type, resources] of Object.entries(json.resource ?? {})) {
    for (const [name, resource] of Object.entries(resources)) {
      if (!resource.connection) continue;
      const hostname = hostOfResource.get(`${type}.${name}`) ?? byAddress.get(String(resource.connection.host));
      if (hostname === undefined) {
        throw new Error(`${type}.${name} connects to ${JSON.stringify(resource.connection.host)}, which is no VdsNode's address in the stack: the rehearsal cannot tell which fleet host stands in for it`);
      }
      const placement = placements.get(hostname)!;
      resource.connection = { ...resource.connection, host: placement.address, port: 22, user: 'root', private_key: '${var.ssh_private_key}', host_key: placement.sshHostKey };
    }
  }
  json.variable = { ...(json.variable ?? {}) };
  json.variable.ssh_private_key ??= { type: 'string', sensitive: true };

  const left = unmappedAddresses(json, [...hosts.map((h) => h.privateNetwork), ...hosts.map((h) => `${h.privateAddress}/32`), ...clientNetworks]);
  if (left.length > 0) {
    throw new Error(
      `the stack still holds addresses the rehearsal does not map onto the fleet (it never sends traffic to them): ${left.slice(0, 10).map((l) => `${l.address} at ${l.where}`).join('; ')}${left.length > 10 ? `; and ${left.length - 10} more` : ''}`,
    );
  }
  return json;
}

/** Ranges no rehearsal may reach: the user's networks and every private or shared range. */
const FORBIDDEN = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];

/**
 * Every IPv4 literal in the JSON that lies in `networks` or in a private range, with the JSON path
 * where it is. The fleet's own 198.18.0.0/15, loopback and 0.0.0.0 are not reported.
 */
export function unmappedAddresses(json: unknown, networks: readonly string[]): Array<{ address: string; where: string }> {
  const ranges = [...networks, ...FORBIDDEN];
  const found: Array<{ address: string; where: string }> = [];
  const walk = (value: unknown, where: string): void => {
    if (typeof value === 'string') {
      for (const m of value.matchAll(IPV4)) {
        if (validAddress(m[1]) && ranges.some((r) => cidrContains(r, m[1]))) found.push({ address: m[0], where });
      }
    } else if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${where}[${i}]`));
    else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        walk(k, where);
        walk(v, where === '' ? k : `${where}.${k}`);
      }
    }
  };
  walk(json, '');
  return found;
}

/** The host each resource of the manifest acts on: its delivery, and the scripts run on it. */
function resourceHosts(manifest: Manifest): Map<string, string> {
  const hosts = new Map<string, string>();
  for (const h of manifest.hosts) {
    if (h.delivery) hosts.set(h.delivery.userData.resource, h.name);
    for (const script of h.scripts) hosts.set(script.resource, h.name);
  }
  return hosts;
}

/** A copy of the JSON value with `map` applied to every string, keys included. */
function mapStrings(value: unknown, map: (text: string) => string): unknown {
  if (typeof value === 'string') return map(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, map));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [map(k), mapStrings(v, map)]));
  }
  return value;
}

function validAddress(address: string): boolean {
  return address.split('.').every((o) => Number(o) <= 255);
}

/** `10.10.0.7/24` → `10.10.0.0/24`: a network written with a host address is the same network. */
function canonicalCidr(cidr: string): string {
  const [address, prefix] = cidr.split('/');
  const size = 2 ** (32 - Number(prefix));
  const network = Math.floor(address.split('.').reduce((v, o) => v * 256 + Number(o), 0) / size) * size;
  return `${[16777216, 65536, 256, 1].map((d) => Math.floor(network / d) % 256).join('.')}/${prefix}`;
}
