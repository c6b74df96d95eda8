/** IPv4 address and CIDR checks shared by the constructs. */

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);

export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}

export function isIpv4Cidr(text: string): boolean {
  const [address, bits, ...rest] = text.split('/');
  return rest.length === 0 && isIpv4(address) && bits !== undefined && /^(3[0-2]|[12]?\d)$/.test(bits);
}

function toNumber(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

/** Whether the address lies in the CIDR block. */
export function cidrContains(cidr: string, address: string): boolean {
  const [base, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toNumber(address) / size) === Math.floor(toNumber(base) / size);
}

/** A strict DNS host name: labels of letters, digits and inner hyphens. */
export function isHostname(text: string): boolean {
  return text.length <= 253 && /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/.test(text);
}

/**
 * Why an address cannot be a host's own address on a network, or undefined when it can: the
 * blocks every host has or no host may hold (RFC 1122, RFC 5771, RFC 1112).
 */
export function unicastAddressProblem(address: string): string | undefined {
  const first = Number(address.split('.')[0]);
  if (first === 0) return 'an address in 0.0.0.0/8 means "this host" or "any address", not one host; give the host its address on the private network';
  if (first === 127) return "an address in 127.0.0.0/8 is loopback: every host has it as its own, so no other host could reach this one there; give the host its address on the private network";
  if (first >= 224 && first <= 239) return 'an address in 224.0.0.0/4 is multicast, not one host; give the host its address on the private network';
  if (first >= 240) return 'an address in 240.0.0.0/4 is reserved (255.255.255.255 is broadcast); give the host its address on the private network';
  return undefined;
}
