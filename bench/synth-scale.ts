/**
 * Benchmark 1, synth scale: our fleet stack against a bare cdktf stack of as many null_resources
 * carrying documents of the same sizes, at 10, 100, 1,000 and 3,000 hosts. Each synthesis runs in
 * its own process (peak RSS per run); runs of ours and bare alternate. Two syntheses of our stack
 * must give byte-identical Terraform JSON. When ours is far above 1.5x bare, a CPU profile of ours
 * names the hot spots.
 */
import { createHash } from 'crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { summarizeCpuProfile, ProfileSummary } from './cpu-profile';
import { documentSizes, fleetShape, STACK_NAME } from './fleet-stack';
import { growthPer10x, median, ratio, round } from './stats';
import { REPO_ROOT, runWorker, scratchDir } from './subprocess';
import { SynthWorkerResult } from './synth-worker';
import { mib, ms, Row, times } from './table';
import { transpiledTree } from './transpile';

export interface SynthOptions {
  readonly quick: boolean;
  /** Epoch ms after which no new size is started. */
  readonly deadline: number;
  readonly log: (line: string) => void;
}

interface Run extends SynthWorkerResult {
  /** The child's wall time from spawn to exit. */
  readonly processMs: number;
  /** SHA-256 of the stack's cdk.tf.json (ours only). */
  readonly sha256?: string;
  readonly stackBytes: number;
}

interface SizeResult {
  readonly hosts: number;
  readonly services: number;
  readonly ours: Run[];
  readonly bare: Run[];
  /** null when only one synthesis of ours was made. */
  readonly byteIdentical: boolean | null;
}

/** How many syntheses of each kind per size: at least two of ours, for the byte-identity check. */
function repetitions(hosts: number, quick: boolean): number {
  if (quick) return 2;
  return hosts <= 100 ? 3 : 2;
}

/** Milliseconds of work the construct library does: building the tree plus synth (process start-up excluded). */
const work = (r: Run) => r.constructMs + r.synthMs;

export async function runSynthScale(options: SynthOptions): Promise<{ rows: Row[]; result: unknown }> {
  const sizes = options.quick ? [10, 100] : [10, 100, 1000, 3000];
  options.log('synth: transpiling sources for the workers');
  const jsRoot = transpiledTree();
  const scratch = scratchDir('bench-synth-');
  const results: SizeResult[] = [];
  const skipped: number[] = [];
  try {
    for (const hosts of sizes) {
      if (Date.now() > options.deadline) {
        skipped.push(hosts);
        continue;
      }
      results.push(await measureSize(hosts, repetitions(hosts, options.quick), jsRoot, scratch, options.log));
    }
    const profile = await profileIfSlow(results, jsRoot, scratch, options);
    return { rows: rows(results, skipped, profile), result: { sizes: results.map(jsonOf), skipped, profile: profile ?? null } };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function measureSize(hosts: number, reps: number, jsRoot: string, scratch: string, log: (line: string) => void): Promise<SizeResult> {
  const timeoutMs = 60_000 + hosts * 200;
  const ours: Run[] = [];
  const bare: Run[] = [];
  const sizesFile = join(scratch, `sizes-${hosts}.json`);
  for (let rep = 0; rep < reps; rep++) {
    const outdir = join(scratch, `ours-${hosts}-${rep}`);
    const o = await runWorker<SynthWorkerResult>('synth-worker.ts', ['ours', String(hosts), outdir], { timeoutMs, jsRoot });
    const stackFile = join(outdir, 'stacks', STACK_NAME, 'cdk.tf.json');
    const text = readFileSync(stackFile);
    if (rep === 0) writeFileSync(sizesFile, JSON.stringify(documentSizes(JSON.parse(text.toString('utf8')))));
    ours.push({ ...o.value, processMs: o.wallMs, sha256: createHash('sha256').update(text).digest('hex'), stackBytes: text.length });
    rmSync(outdir, { recursive: true, force: true });

    const bareDir = join(scratch, `bare-${hosts}-${rep}`);
    const b = await runWorker<SynthWorkerResult>('synth-worker.ts', ['bare', String(hosts), bareDir, sizesFile], { timeoutMs, jsRoot });
    const bareBytes = readFileSync(join(bareDir, 'stacks', STACK_NAME, 'cdk.tf.json')).length;
    bare.push({ ...b.value, processMs: b.wallMs, stackBytes: bareBytes });
    rmSync(bareDir, { recursive: true, force: true });
    log(`synth: ${hosts} hosts run ${rep + 1}/${reps}: ours ${ms(work(ours[rep]))} ${mib(ours[rep].maxRssKiB)}, bare ${ms(work(bare[rep]))} ${mib(bare[rep].maxRssKiB)}`);
  }
  const hashes = new Set(ours.map((r) => r.sha256));
  return { hosts, services: fleetShape(hosts).services, ours, bare, byteIdentical: ours.length < 2 ? null : hashes.size === 1 };
}

/** Profiles one synthesis of ours at the largest size measured when ours costs more than 1.5x bare there or below. */
async function profileIfSlow(results: SizeResult[], jsRoot: string, scratch: string, options: SynthOptions): Promise<(ProfileSummary & { hosts: number; ratio: number }) | undefined> {
  const worst = results.map((r) => ({ hosts: r.hosts, ratio: ratio(median(r.ours.map(work)), median(r.bare.map(work))) }));
  if (!worst.some((w) => w.ratio > 1.5) || Date.now() > options.deadline) return undefined;
  const hosts = results[results.length - 1]?.hosts;
  if (hosts === undefined) return undefined;
  options.log(`synth: ours is above 1.5x bare; profiling a synthesis of ${hosts} hosts`);
  const profDir = join(scratch, 'profile');
  const outdir = join(scratch, 'profile-out');
  await runWorker<SynthWorkerResult>('synth-worker.ts', ['ours', String(hosts), outdir], {
    timeoutMs: 120_000 + hosts * 300,
    jsRoot,
    nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir],
  });
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return undefined;
  const summary = summarizeCpuProfile(join(profDir, file), { root: REPO_ROOT, jsRoot, top: 12 });
  return { hosts, ratio: worst.find((w) => w.hosts === hosts)?.ratio ?? NaN, ...summary };
}

function rows(results: SizeResult[], skipped: number[], profile: (ProfileSummary & { hosts: number }) | undefined): Row[] {
  const out: Row[] = [];
  for (const r of results) {
    const scenario = `${r.hosts} hosts`;
    const oursWork = median(r.ours.map(work));
    const bareWork = median(r.bare.map(work));
    const oursRss = Math.max(...r.ours.map((x) => x.maxRssKiB));
    const bareRss = Math.max(...r.bare.map((x) => x.maxRssKiB));
    out.push({ bench: 'synth', scenario, metric: 'build+synth time (median)', ours: ms(oursWork), baseline: ms(bareWork), ratio: times(ratio(oursWork, bareWork)), note: 'target <= 1.5x' });
    const oursProc = median(r.ours.map((x) => x.processMs));
    const bareProc = median(r.bare.map((x) => x.processMs));
    out.push({ bench: 'synth', scenario, metric: 'process wall (median)', ours: ms(oursProc), baseline: ms(bareProc), ratio: times(ratio(oursProc, bareProc)) });
    out.push({
      bench: 'synth',
      scenario,
      metric: 'peak RSS',
      ours: mib(oursRss),
      baseline: mib(bareRss),
      ratio: times(ratio(oursRss, bareRss)),
      note: r.hosts === 3000 ? 'target < 1 GiB' : undefined,
    });
  }
  for (let i = 1; i < results.length; i++) {
    const a = results[i - 1];
    const b = results[i];
    const gOurs = growthPer10x(a.hosts, median(a.ours.map(work)), b.hosts, median(b.ours.map(work)));
    const gBare = growthPer10x(a.hosts, median(a.bare.map(work)), b.hosts, median(b.bare.map(work)));
    out.push({
      bench: 'synth',
      scenario: `${a.hosts}->${b.hosts} hosts`,
      metric: 'time growth per 10x hosts',
      ours: times(gOurs),
      baseline: times(gBare),
      ratio: times(ratio(gOurs, gBare)),
      note: 'target: ours <= bare (10x = linear)',
    });
  }
  const checked = results.filter((r) => r.byteIdentical !== null);
  const identical = checked.every((r) => r.byteIdentical);
  out.push({
    bench: 'synth',
    scenario: checked.map((r) => r.hosts).join(', ') + ' hosts',
    metric: 'two syntheses byte-identical',
    ours: checked.length === 0 ? 'not checked' : identical ? 'yes' : `NO (${checked.filter((r) => !r.byteIdentical).map((r) => r.hosts).join(', ')})`,
    baseline: '',
    ratio: '',
  });
  for (const hosts of skipped) {
    out.push({ bench: 'synth', scenario: `${hosts} hosts`, metric: 'skipped', ours: 'time budget spent', baseline: '', ratio: '' });
  }
  if (profile) {
    const hot = profile.oursByInnermostFrame.slice(0, 3).map((h) => `${h.function} ${h.location} ${h.percent.toFixed(0)}%`).join('; ');
    out.push({ bench: 'synth', scenario: `profile ${profile.hosts} hosts`, metric: 'hot spots (innermost lib frame)', ours: hot, baseline: '', ratio: '', note: 'details below the table' });
  }
  return out;
}

function jsonOf(r: SizeResult): unknown {
  const pick = (runs: Run[]) => runs.map((x) => ({
    loadMs: round(x.loadMs, 1),
    constructMs: round(x.constructMs, 1),
    synthMs: round(x.synthMs, 1),
    processMs: round(x.processMs, 1),
    rssAfterLoadKiB: Math.round(x.rssAfterLoadKiB),
    maxRssKiB: x.maxRssKiB,
    stackBytes: x.stackBytes,
    ...(x.sha256 ? { sha256: x.sha256 } : {}),
  }));
  return {
    hosts: r.hosts,
    services: r.services,
    ours: pick(r.ours),
    bare: pick(r.bare),
    medianWorkMs: { ours: round(median(r.ours.map(work)), 1), bare: round(median(r.bare.map(work)), 1) },
    ratioWork: round(ratio(median(r.ours.map(work)), median(r.bare.map(work)))),
    ratioPeakRss: round(ratio(Math.max(...r.ours.map((x) => x.maxRssKiB)), Math.max(...r.bare.map((x) => x.maxRssKiB)))),
    byteIdentical: r.byteIdentical,
  };
}
