import { randomBytes } from 'crypto';
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { readSynthesizedDocuments, readSynthesizedStack, synthesizedDocumentVariables, SynthesizedHostDocument, SynthesizedStack } from '../../lib/cloud-init/synthesized-documents';
import { buildApp } from '../../examples/main';

export interface SynthesizedExample {
  readonly outdir: string;
  readonly stackJson: Record<string, unknown>;
  /** The manifest and the Terraform, as the tools read them. */
  readonly stack: SynthesizedStack;
  /** The documents as the hosts receive them, with `variables` as the values given at apply. */
  readonly documents: SynthesizedHostDocument[];
  /** A fresh random value for each variable the documents use (the ZooKeeper secret). */
  readonly variables: Record<string, string>;
}

/** Synthesizes the default example into a fresh directory, as `cdktf synth` would. */
export function synthesizeExample(): SynthesizedExample {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-synth-'));
  buildApp(outdir).synth();
  const stack = readSynthesizedStack(outdir, 'oslo');
  const variables = Object.fromEntries(synthesizedDocumentVariables(stack).map((name) => [name, randomBytes(32).toString('hex')]));
  return { outdir, stackJson: stack.terraform as Record<string, unknown>, stack, documents: readSynthesizedDocuments(stack, variables), variables };
}
