import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { readSynthesizedDocuments, readSynthesizedStack, SynthesizedHostDocument } from '../../lib/cloud-init/synthesized-documents';
import { buildApp } from '../../examples/main';

export interface SynthesizedExample {
  readonly outdir: string;
  readonly stackJson: Record<string, unknown>;
  readonly documents: SynthesizedHostDocument[];
}

/** Synthesizes the default example into a fresh directory, as `cdktf synth` would. */
export function synthesizeExample(): SynthesizedExample {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-synth-'));
  buildApp(outdir).synth();
  const stackJson = readSynthesizedStack(outdir, 'oslo') as Record<string, unknown>;
  return { outdir, stackJson, documents: readSynthesizedDocuments(stackJson) };
}
