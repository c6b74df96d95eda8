import { randomBytes } from 'crypto';
import { existsSync, readdirSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';
import { readSynthesizedStack, SynthesizedHostDocument, SynthesizedStack } from '../cloud-init/synthesized-documents';
import { NerveConfig } from '../schema/nerve-config';
import { SynapseConfig } from '../schema/synapse-config';

/**
 * What a rehearsal reads of a synthesized stack: the stack itself, its variables, and from the
 * hosts' documents (found where the manifest says) the roles, members, providers and the consumers'
 * local ports to send load through.
 */

/** A stack as the rehearsal reads it: its folder, manifest and Terraform. */
export type ReadStack = SynthesizedStack & { readonly dir: string };

/** Reads a stack of `cdktf.out/stacks/`; without a name, the only stack there is. */
export function readStack(outdir: string, stack?: string): ReadStack {
  const stacksDir = join(outdir, 'stacks');
  const stacks = existsSync(stacksDir) ? readdirSync(stacksDir).filter((s) => existsSync(join(stacksDir, s, 'cdk.tf.json'))) : [];
  if (stack === undefined) {
    if (stacks.length !== 1) {
      throw new Error(stacks.length === 0 ? `${outdir} holds no synthesized stack (no stacks/<name>/cdk.tf.json): run cdktf synth first` : `${outdir} holds ${stacks.length} stacks (${stacks.join(', ')}): choose one with --stack`);
    }
    stack = stacks[0];
  } else if (!stacks.includes(stack)) {
    throw new Error(`--stack ${stack}: ${outdir} has no such stack (it has ${stacks.join(', ') || 'none'})`);
  }
  return readSynthesizedStack(outdir, stack);
}

/**
 * The values the stack's variables are applied with: given ones, random ones for sensitive variables
 * without a value, none for those with a default; `ssh_private_key` is the fleet's and left out.
 */
export function stackVariables(stackJson: unknown, given: Record<string, string>): { values: Record<string, string>; generated: string[] } {
  const declared = ((stackJson as { variable?: Record<string, { sensitive?: boolean; default?: unknown }> }).variable) ?? {};
  const values: Record<string, string> = {};
  const generated: string[] = [];
  for (const [name, v] of Object.entries(declared)) {
    if (name === 'ssh_private_key') continue;
    if (given[name] !== undefined) values[name] = given[name];
    else if (v.default !== undefined) continue;
    else if (v.sensitive) {
      values[name] = randomBytes(32).toString('hex');
      generated.push(name);
    } else throw new Error(`variable ${name} has no default and no value: give it as TF_VAR_${name} in the environment`);
  }
  return { values, generated };
}

export interface LoadTarget {
  readonly hostname: string;
  readonly service: string;
  readonly url: string;
}

/** Each consumer's local port of each service it consumes in both syntheses, with a path its providers check. */
export function loadTargets(before: readonly SynthesizedHostDocument[], after: readonly SynthesizedHostDocument[]): LoadTarget[] {
  const checkUri = new Map<string, string>();
  for (const doc of after) {
    const nerve = sidecarFile(doc, 'nerveConfig');
    if (nerve === undefined) continue;
    for (const [service, s] of Object.entries((JSON.parse(nerve) as NerveConfig).services)) {
      const uri = (s.checks ?? []).find((c) => c.type === 'http' && c.uri)?.uri;
      if (uri && !checkUri.has(service)) checkUri.set(service, uri);
    }
  }
  const consumed = (doc: SynthesizedHostDocument | undefined) => {
    const text = doc && sidecarFile(doc, 'synapseConfig');
    return text === undefined ? {} : (JSON.parse(text) as SynapseConfig).services;
  };
  const targets: LoadTarget[] = [];
  for (const doc of after) {
    const now = consumed(doc);
    const then = consumed(before.find((d) => d.hostname === doc.hostname));
    for (const [service, s] of Object.entries(now)) {
      if (!then[service] || s.haproxy.port === undefined) continue;
      const address = s.haproxy.bind_address && s.haproxy.bind_address !== '0.0.0.0' ? s.haproxy.bind_address : '127.0.0.1';
      targets.push({ hostname: doc.hostname, service, url: `http://${address}:${s.haproxy.port}${checkUri.get(service) ?? '/'}` });
    }
  }
  return targets;
}

/** Every provider of each service (`address:port`) and its host, from the nerve configurations. */
export function providerHosts(documents: readonly SynthesizedHostDocument[]): Map<string, Array<{ hostname: string; provider: string }>> {
  const providers = new Map<string, Array<{ hostname: string; provider: string }>>();
  for (const doc of documents) {
    const nerve = sidecarFile(doc, 'nerveConfig');
    if (nerve === undefined) continue;
    for (const [service, s] of Object.entries((JSON.parse(nerve) as NerveConfig).services)) {
      providers.set(service, [...(providers.get(service) ?? []), { hostname: doc.hostname, provider: `${s.host}:${s.port}` }]);
    }
  }
  return providers;
}

export function memberDocuments(documents: readonly SynthesizedHostDocument[]): Array<{ doc: SynthesizedHostDocument; address: string; port: number }> {
  return documents.flatMap((doc) => {
    const member = doc.host.zookeeper;
    if (member === undefined) return [];
    const zooCfg = documentFile(doc, member.config) ?? '';
    return [{ doc, address: doc.privateAddress, port: Number(/^clientPort=(\d+)$/m.exec(zooCfg)?.[1] ?? 2181) }];
  });
}

export function roles(doc: SynthesizedHostDocument): string[] {
  const r: string[] = [];
  if (doc.host.roles.includes('zookeeper-member')) r.push('zookeeper member');
  const nerve = sidecarFile(doc, 'nerveConfig');
  if (nerve !== undefined) r.push(...Object.keys((JSON.parse(nerve) as NerveConfig).services).map((s) => `provides ${s}`));
  const synapse = sidecarFile(doc, 'synapseConfig');
  if (synapse !== undefined) r.push(...Object.keys((JSON.parse(synapse) as SynapseConfig).services).map((s) => `consumes ${s}`));
  return r;
}

function writeFiles(doc: SynthesizedHostDocument): Array<{ path: string; content?: string }> {
  return ((parse(doc.userData) ?? {}) as { write_files?: Array<{ path: string; content?: string }> }).write_files ?? [];
}

export function documentFile(doc: SynthesizedHostDocument, path: string): string | undefined {
  return writeFiles(doc).find((f) => f.path === path)?.content;
}

/** The content of an agent's config file, where the manifest says the host's sidecar has it. */
export function sidecarFile(doc: SynthesizedHostDocument, file: 'nerveConfig' | 'synapseConfig'): string | undefined {
  const path = doc.host.sidecar?.[file];
  return path === undefined ? undefined : documentFile(doc, path);
}
