import { chmodSync, mkdirSync, writeFileSync } from 'fs';
import { dirname, join } from 'path';
import { parse } from 'yaml';
import { SynthesizedHostDocument } from '../cloud-init/synthesized-documents';
import { ManifestHost } from '../model/manifest';

/**
 * One synthesized host laid out on this machine: its files under `root`, with every address of the
 * mesh mapped onto a 127.x loopback address of its own and every host directory under `root`.
 */
export interface LoopbackHost {
  readonly hostname: string;
  /** The host's private address in the synthesized stack. */
  readonly privateAddress: string;
  /** The loopback address that stands in for it (and for the host's own 127.0.0.1). */
  readonly address: string;
  /** Where the host's /etc, /var and /run live. */
  readonly root: string;
  /** Every file the document writes, by its path on the real host, content mapped. */
  readonly files: Map<string, string>;
  /** The host as the stack's manifest describes it. */
  readonly manifest: ManifestHost;
  /** Maps a path on the real host onto this machine. */
  hostPath(path: string): string;
  /** Maps addresses and host directories in a text written for the real host. */
  mapText(text: string): string;
}

/** Host directories that are moved under the host's root; everything else (/usr) is shared. */
const MOVED_DIRECTORIES = ['/etc', '/var', '/run', '/tmp'];

interface WriteFile {
  readonly path: string;
  readonly content?: string;
  readonly permissions?: string;
}

/**
 * Lays the hosts out under `workdir`: host i gets `<prefix>.<i / 250>.<i % 250 + 1>`.
 *
 * @param prefix the first two octets of the loopback range to use, e.g. '127.77'
 */
export function layOutLoopbackHosts(
  documents: SynthesizedHostDocument[],
  workdir: string,
  prefix = '127.77',
): LoopbackHost[] {
  const loopback = new Map<string, string>();
  documents.forEach((doc, i) => loopback.set(doc.privateAddress, `${prefix}.${Math.floor(i / 250)}.${(i % 250) + 1}`));

  return documents.map((doc) => {
    const privateAddress = doc.privateAddress;
    const address = loopback.get(privateAddress)!;
    const root = join(workdir, doc.hostname);
    const hostPath = (path: string) => (MOVED_DIRECTORIES.some((d) => path === d || path.startsWith(`${d}/`)) ? join(root, path) : path);
    // The host's own localhost is its loopback address, so two hosts' 127.0.0.1:3210 do not collide.
    const addresses = new Map([...loopback, ['127.0.0.1', address], ['localhost', address]]);
    const mapText = (text: string) =>
      text
        .replace(/(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3}|localhost)(?![\w.])/g, (a) => addresses.get(a) ?? a)
        .replace(new RegExp(`(?<=^|[\\s=:"',\\[])(${MOVED_DIRECTORIES.join('|')})(?=/)`, 'gm'), (d) => join(root, d));

    const files = new Map<string, string>();
    const writeFiles = ((parse(doc.userData) ?? {}) as { write_files?: WriteFile[] }).write_files ?? [];
    for (const file of writeFiles) {
      const content = mapText(file.content ?? '');
      files.set(file.path, content);
      const target = hostPath(file.path);
      mkdirSync(dirname(target), { recursive: true });
      // The mode the document gives: credentials files are the owner's alone, and the agents check.
      const mode = parseInt(file.permissions ?? '0644', 8);
      writeFileSync(target, content, { mode });
      chmodSync(target, mode);
    }
    for (const dir of MOVED_DIRECTORIES) mkdirSync(join(root, dir), { recursive: true });
    return { hostname: doc.hostname, privateAddress, address, root, files, manifest: doc.host, hostPath, mapText };
  });
}
