/**
 * `/etc/smartstack/host.json`: what the stack knows about the host, written on the host itself so
 * that tools on it (and `smartstack local`) need not guess its private address.
 */
export const HOST_FILE_PATH = '/etc/smartstack/host.json';

export interface HostFile {
  readonly hostname: string;
  readonly privateAddress: string;
  readonly privateNetwork: string;
}

export function renderHostFile(host: HostFile): string {
  const { hostname, privateAddress, privateNetwork } = host;
  return JSON.stringify({ hostname, privateAddress, privateNetwork }, null, 2) + '\n';
}

/** Reads the host file out of a rendered `#cloud-config` document's files. */
export function parseHostFile(content: string): HostFile {
  const value = JSON.parse(content) as Partial<HostFile>;
  if (typeof value.hostname !== 'string' || typeof value.privateAddress !== 'string' || typeof value.privateNetwork !== 'string') {
    throw new Error(`${HOST_FILE_PATH} lacks hostname, privateAddress or privateNetwork`);
  }
  return { hostname: value.hostname, privateAddress: value.privateAddress, privateNetwork: value.privateNetwork };
}
