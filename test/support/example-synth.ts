import { randomBytes } from 'crypto';
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { readSynthesizedDocuments, readSynthesizedStack, synthesizedDocumentVariables, SynthesizedHostDocument } from '../../lib/cloud-init/synthesized-documents';
import { buildApp } from '../../examples/main';

export interface SynthesizedExample {
  readonly outdir: string;
  readonly stackJson: Record<string, unknown>;
  /** The documents as the hosts receive them, with `variables` as the values given at apply. */
  readonly documents: SynthesizedHostDocument[];
  /** A fresh random value for each variable the documents use (the ZooKeeper secret). */
  readonly variables: Record<string, string>;
}

/** Synthesizes the default example into a fresh directory, as `cdktf synth` would. */
export function synthesizeExample(): SynthesizedExample {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-synth-'));
  buildApp(outdir).synth();
  const stackJson = readSynthesizedStack(outdir, 'oslo') as Record<string, unknown>;
  const variables = Object.fromEntries(synthesizedDocumentVariables(stackJson).map((name) => [name, randomBytes(32).toString('hex')]));
  return { outdir, stackJson, documents: readSynthesizedDocuments(stackJson, variables), variables };
}
