import { existsSync, readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';
import { Manifest, MANIFEST_FILE, ManifestFile, ManifestHost, parseManifest } from '../model/manifest';
import { HOST_FILE_PATH, parseHostFile } from './host-file';
import { evaluateTerraformTemplate, templateVariables } from './terraform-template';

/** A synthesized stack as its tools read it: the manifest, and the Terraform it points into. */
export interface SynthesizedStack {
  readonly manifest: Manifest;
  /** The stack's `cdk.tf.json`, parsed. */
  readonly terraform: unknown;
}

/** One host's cloud-init document as found in a synthesized stack. */
export interface SynthesizedHostDocument {
  readonly hostname: string;
  /** The host's address on the private network, as its document's host file says. */
  readonly privateAddress: string;
  /** The host as the manifest describes it. */
  readonly host: ManifestHost;
  /** The `#cloud-config` text as the host receives it (Terraform escapes undone). */
  readonly userData: string;
  /** The apply script as the host receives it. */
  readonly applyScript: string;
  /** Further scripts Terraform runs on the host (such as `zookeeper-acl`), by name. */
  readonly scripts: Map<string, string>;
}

/** Undoes the escaping of literal `${` and `%{` in a Terraform JSON string. */
export function unescapeTerraformTemplate(text: string): string {
  return text.replace(/\$\{"(\$+)"\}\{/g, '$1{').replace(/%%\{/g, '%{');
}

/**
 * Reads the document, apply script and further scripts of every host the stack delivers over SSH,
 * where the manifest says Terraform places them, evaluated as Terraform would at apply.
 *
 * @param variables values of the Terraform variables the contents refer to (secrets)
 */
export function readSynthesizedDocuments(stack: SynthesizedStack, variables: Record<string, string> = {}): SynthesizedHostDocument[] {
  const read = (file: ManifestFile) => evaluateTerraformTemplate(placedFileContent(stack.terraform, file), variables);
  return stack.manifest.hosts
    .filter((host) => host.delivery !== undefined)
    .map((host) => {
      const userData = read(host.delivery!.userData);
      return {
        hostname: host.name,
        privateAddress: hostFileOf(host.name, userData).privateAddress,
        host,
        userData,
        applyScript: read(host.delivery!.applyScript),
        scripts: new Map(host.scripts.map((script) => [script.name, read(script)])),
      };
    });
}

/** The Terraform variables that the files the manifest points at refer to. */
export function synthesizedDocumentVariables(stack: SynthesizedStack): string[] {
  const files = stack.manifest.hosts.flatMap((h) => [...(h.delivery ? [h.delivery.userData, h.delivery.applyScript] : []), ...h.scripts]);
  return [...new Set(files.flatMap((f) => templateVariables(placedFileContent(stack.terraform, f))))].sort();
}

/**
 * The content of the file provisioner the manifest points at, as written in the Terraform JSON.
 * Also found under `terraform_data` when the JSON was rewritten from `null_resource` for a provider-less apply.
 */
export function placedFileContent(terraform: unknown, file: ManifestFile): string {
  const [type, name] = file.resource.split('.');
  const resources = (terraform as { resource?: Record<string, Record<string, { provisioner?: Array<{ file?: { destination?: string; content?: string } }> }>> }).resource ?? {};
  const resource = resources[type]?.[name] ?? (type === 'null_resource' ? resources.terraform_data?.[name] : undefined);
  if (!resource) throw new Error(`the manifest names ${file.resource}, which the stack's Terraform does not hold: synthesize the stack again`);
  const content = (resource.provisioner ?? []).find((p) => p.file?.destination === file.destination)?.file?.content;
  if (typeof content !== 'string') throw new Error(`${file.resource} has no file provisioner with destination ${file.destination}, where the manifest says it is: synthesize the stack again`);
  return content;
}

/**
 * Reads a stack of a cdktf output directory: its manifest (`smartstack.json`) and its Terraform.
 * A stack without a manifest was synthesized by another version, or holds no VdsNode.
 */
export function readSynthesizedStack(outdir: string, stack: string): SynthesizedStack & { readonly dir: string } {
  const dir = join(outdir, 'stacks', stack);
  const manifestFile = join(dir, MANIFEST_FILE);
  if (!existsSync(manifestFile)) {
    throw new Error(`${manifestFile} is missing: stack ${stack} was synthesized by another version of cdktf-smartstack, or has no VdsNode; synthesize it again`);
  }
  return {
    dir,
    manifest: parseManifest(readFileSync(manifestFile, 'utf8'), manifestFile),
    terraform: JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8')),
  };
}

function hostFileOf(hostname: string, userData: string) {
  const files = ((parse(userData) ?? {}) as { write_files?: Array<{ path: string; content?: string }> }).write_files ?? [];
  const file = files.find((f) => f.path === HOST_FILE_PATH);
  if (!file?.content) throw new Error(`the document of host ${hostname} writes no ${HOST_FILE_PATH}`);
  return parseHostFile(file.content);
}
