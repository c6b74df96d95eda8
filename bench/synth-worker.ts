/**
 * One synthesis in its own process, so that its peak resident memory is its own.
 *
 *   synth-worker.ts ours <hosts> <outdir>
 *   synth-worker.ts bare <hosts> <outdir> <sizes.json>
 *
 * Prints one JSON line: module load, construct and synth times (ms) and peak RSS (KiB).
 */
import { readFileSync } from 'fs';
import { App } from 'cdktf';
import { buildBareStack, buildFleetStack, HostDocumentSizes } from './fleet-stack';

export interface SynthWorkerResult {
  readonly kind: 'ours' | 'bare';
  readonly hosts: number;
  /** Process start until the modules were loaded. */
  readonly loadMs: number;
  /** Building the construct tree. */
  readonly constructMs: number;
  /** `app.synth()`: validation, resolution and writing the JSON. */
  readonly synthMs: number;
  /** RSS after loading the modules, before building anything (KiB). */
  readonly rssAfterLoadKiB: number;
  /** Peak RSS of the whole process (KiB). */
  readonly maxRssKiB: number;
}

function main(): void {
  const loadMs = process.uptime() * 1000;
  const rssAfterLoadKiB = process.memoryUsage().rss / 1024;
  const [kind, hostsArg, outdir, sizesFile] = process.argv.slice(2);
  const hosts = Number(hostsArg);
  if ((kind !== 'ours' && kind !== 'bare') || !Number.isInteger(hosts) || !outdir) {
    throw new Error('usage: synth-worker.ts ours|bare <hosts> <outdir> [sizes.json]');
  }

  const t0 = process.hrtime.bigint();
  const app = new App({ outdir });
  if (kind === 'ours') {
    buildFleetStack(app, hosts);
  } else {
    const sizes = JSON.parse(readFileSync(sizesFile, 'utf8')) as HostDocumentSizes[];
    if (sizes.length !== hosts) throw new Error(`${sizesFile} has ${sizes.length} hosts, expected ${hosts}`);
    buildBareStack(app, sizes);
  }
  const t1 = process.hrtime.bigint();
  app.synth();
  const t2 = process.hrtime.bigint();

  const result: SynthWorkerResult = {
    kind,
    hosts,
    loadMs,
    constructMs: Number(t1 - t0) / 1e6,
    synthMs: Number(t2 - t1) / 1e6,
    rssAfterLoadKiB,
    maxRssKiB: process.resourceUsage().maxRSS,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
