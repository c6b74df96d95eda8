import { readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';
import { HOST_FILE_PATH, parseHostFile } from './host-file';

/** One host's cloud-init document as found in a synthesized stack. */
export interface SynthesizedHostDocument {
  readonly hostname: string;
  /** The host's address on the private network. */
  readonly privateAddress: string;
  /** The `#cloud-config` text as the host receives it (Terraform escapes undone). */
  readonly userData: string;
  /** The apply script as the host receives it. */
  readonly applyScript: string;
}

const STAGED = /^\/tmp\/smartstack-([a-z0-9-]+)\.(user-data|apply\.sh)$/;

/** Undoes the escaping of literal `${` and `%{` in a Terraform JSON string. */
export function unescapeTerraformTemplate(text: string): string {
  return text.replace(/([$%])\1\{/g, (_match, sigil: string) => `${sigil}{`);
}

/**
 * Reads every host's document from a synthesized stack (`cdktf.out/stacks/<name>/cdk.tf.json`):
 * the content of the file provisioners that VdsNode emits.
 */
export function readSynthesizedDocuments(stackJson: unknown): SynthesizedHostDocument[] {
  const resources = (stackJson as { resource?: { null_resource?: Record<string, { provisioner?: unknown[] }> } }).resource?.null_resource ?? {};
  const hosts = new Map<string, { userData?: string; applyScript?: string }>();
  for (const resource of Object.values(resources)) {
    for (const provisioner of resource.provisioner ?? []) {
      const file = (provisioner as { file?: { content?: string; destination?: string } }).file;
      const match = file?.destination ? STAGED.exec(file.destination) : null;
      if (!file?.content || !match) continue;
      const entry = hosts.get(match[1]) ?? {};
      if (match[2] === 'user-data') entry.userData = unescapeTerraformTemplate(file.content);
      else entry.applyScript = unescapeTerraformTemplate(file.content);
      hosts.set(match[1], entry);
    }
  }
  return [...hosts.entries()]
    .filter(([, e]) => e.userData !== undefined && e.applyScript !== undefined)
    .map(([hostname, e]) => ({ hostname, privateAddress: hostFileOf(hostname, e.userData!).privateAddress, userData: e.userData!, applyScript: e.applyScript! }))
    .sort((a, b) => a.hostname.localeCompare(b.hostname));
}

/** Reads a stack's synthesized JSON from a cdktf output directory. */
export function readSynthesizedStack(outdir: string, stack: string): unknown {
  return JSON.parse(readFileSync(join(outdir, 'stacks', stack, 'cdk.tf.json'), 'utf8'));
}

function hostFileOf(hostname: string, userData: string) {
  const files = ((parse(userData) ?? {}) as { write_files?: Array<{ path: string; content?: string }> }).write_files ?? [];
  const file = files.find((f) => f.path === HOST_FILE_PATH);
  if (!file?.content) throw new Error(`the document of host ${hostname} writes no ${HOST_FILE_PATH}`);
  return parseHostFile(file.content);
}
