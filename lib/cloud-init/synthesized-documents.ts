import { readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';
import { HOST_FILE_PATH, parseHostFile } from './host-file';
import { evaluateTerraformTemplate, templateVariables } from './terraform-template';

/** One host's cloud-init document as found in a synthesized stack. */
export interface SynthesizedHostDocument {
  readonly hostname: string;
  /** The host's address on the private network. */
  readonly privateAddress: string;
  /** The `#cloud-config` text as the host receives it (Terraform escapes undone). */
  readonly userData: string;
  /** The apply script as the host receives it. */
  readonly applyScript: string;
  /** Further scripts Terraform runs on the host (such as `zookeeper-acl`), by name. */
  readonly scripts: Map<string, string>;
}

const STAGED = /^\/tmp\/smartstack-([a-z0-9-]+)\/(user-data|apply\.sh)$/;
// `_runScriptOverSsh` stages script NAME for HOST at /tmp/smartstack-NAME-HOST/NAME.sh.
const STAGED_SCRIPT = /^\/tmp\/smartstack-([a-z0-9-]+)\/([a-z0-9-]+)\.sh$/;

/** Undoes the escaping of literal `${` and `%{` in a Terraform JSON string. */
export function unescapeTerraformTemplate(text: string): string {
  return text.replace(/\$\{"(\$+)"\}\{/g, '$1{').replace(/%%\{/g, '%{');
}

/**
 * Reads every host's document from a synthesized stack (`cdktf.out/stacks/<name>/cdk.tf.json`):
 * the content of the file provisioners that VdsNode emits, evaluated as Terraform would at apply.
 *
 * @param variables values of the Terraform variables the contents refer to (secrets)
 */
export function readSynthesizedDocuments(stackJson: unknown, variables: Record<string, string> = {}): SynthesizedHostDocument[] {
  const hosts = new Map<string, { userData?: string; applyScript?: string; scripts: Map<string, string> }>();
  const entry = (hostname: string) => hosts.get(hostname) ?? hosts.set(hostname, { scripts: new Map() }).get(hostname)!;
  for (const file of stagedFiles(stackJson)) {
    const content = evaluateTerraformTemplate(file.content, variables);
    const document = STAGED.exec(file.destination);
    const script = STAGED_SCRIPT.exec(file.destination);
    if (document?.[2] === 'user-data') entry(document[1]).userData = content;
    else if (document?.[2] === 'apply.sh') entry(document[1]).applyScript = content;
    else if (script && script[1].startsWith(`${script[2]}-`)) entry(script[1].slice(script[2].length + 1)).scripts.set(script[2], content);
  }
  return [...hosts.entries()]
    .filter(([, e]) => e.userData !== undefined && e.applyScript !== undefined)
    .map(([hostname, e]) => ({
      hostname,
      privateAddress: hostFileOf(hostname, e.userData!).privateAddress,
      userData: e.userData!,
      applyScript: e.applyScript!,
      scripts: e.scripts,
    }))
    .sort((a, b) => a.hostname.localeCompare(b.hostname));
}

/** The Terraform variables that the staged files of a synthesized stack refer to. */
export function synthesizedDocumentVariables(stackJson: unknown): string[] {
  return [...new Set(stagedFiles(stackJson).flatMap((f) => templateVariables(f.content)))].sort();
}

function stagedFiles(stackJson: unknown): Array<{ content: string; destination: string }> {
  const resources = (stackJson as { resource?: { null_resource?: Record<string, { provisioner?: unknown[] }> } }).resource?.null_resource ?? {};
  const files: Array<{ content: string; destination: string }> = [];
  for (const resource of Object.values(resources)) {
    for (const provisioner of resource.provisioner ?? []) {
      const file = (provisioner as { file?: { content?: string; destination?: string } }).file;
      if (file?.content && file.destination) files.push({ content: file.content, destination: file.destination });
    }
  }
  return files;
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
