import { spawnSync } from 'child_process';
import { writeFileSync } from 'fs';
import { parse } from 'yaml';
import { readSynthesizedDocuments, readSynthesizedStack, synthesizedDocumentVariables } from '../cloud-init/synthesized-documents';
import { describeMesh, DescribedHost } from '../local/mesh-description';
import { renderDot, renderMermaid } from './mesh-graph';
import { ParsedCommand, UsageError } from './command-line';
import { chooseStack } from './synth-output';

const FORMATS = ['mermaid', 'dot', 'svg'];

/** `smartstack graph`: the synthesized mesh as a Mermaid diagram, Graphviz source, or SVG. */
export function runGraph(args: ParsedCommand): number {
  const outdir = args.positionals[0] ?? 'cdktf.out';
  const format = (args.values.format as string | undefined) ?? 'mermaid';
  if (!FORMATS.includes(format)) throw new UsageError(`--format ${format}: expected one of ${FORMATS.join(', ')}`, 'graph');
  const stack = chooseStack('graph', outdir, args.values.stack as string | undefined);
  const synthesized = readSynthesizedStack(outdir, stack);
  // The picture needs no secret: any value lets the documents be read.
  const variables = Object.fromEntries(synthesizedDocumentVariables(synthesized).map((name) => [name, 'x'.repeat(64)]));
  const hosts = readSynthesizedDocuments(synthesized, variables).map((doc): DescribedHost => {
    const writeFiles = ((parse(doc.userData) ?? {}) as { write_files?: Array<{ path: string; content?: string }> }).write_files ?? [];
    return { hostname: doc.hostname, address: doc.privateAddress, privateAddress: doc.privateAddress, files: new Map(writeFiles.map((f) => [f.path, f.content ?? ''])) };
  });
  const mesh = describeMesh(hosts);
  let output: string | Buffer = format === 'mermaid' ? renderMermaid(mesh) : renderDot(mesh);
  if (format === 'svg') {
    const dot = spawnSync('dot', ['-Tsvg'], { input: output, timeout: 60000 });
    if (dot.error) {
      process.stderr.write(`smartstack graph: --format svg needs Graphviz's dot (${dot.error.message}): sudo apt-get install -y graphviz, or use --format mermaid\n`);
      return 1;
    }
    if (dot.status !== 0) {
      process.stderr.write(`smartstack graph: dot failed (exit ${dot.status}): ${dot.stderr.toString()}\n`);
      return 1;
    }
    output = dot.stdout;
  }
  const file = args.values.out as string | undefined;
  if (file === undefined) process.stdout.write(output);
  else writeFileSync(file, output);
  return 0;
}
