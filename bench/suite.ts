/**
 * The benchmark suite behind `bench/run.ts`: runs the chosen benchmarks, prints one table and writes
 * every figure, with the machine's facts, to bench/results.json.
 */
import { writeFileSync } from 'fs';
import { join } from 'path';
import { runAgentFootprint } from './agent-footprint';
import { runConvergence } from './convergence';
import { runFanout } from './fanout';
import { machineFacts } from './machine';
import { runSidecarOverhead } from './sidecar-overhead';
import { round } from './stats';
import { runSynthScale } from './synth-scale';
import { renderTable, Row } from './table';
import { removeTranspiledTree } from './transpile';

const BENCHMARKS = ['synth', 'overhead', 'fanout', 'convergence', 'footprint'] as const;
type BenchName = (typeof BENCHMARKS)[number];

/** Seconds each benchmark may start new work in; each finishes what it started. */
const BUDGET_S: Record<'quick' | 'full', Record<BenchName, number>> = {
  quick: { synth: 50, overhead: 40, fanout: 45, convergence: 45, footprint: 60 },
  full: { synth: 330, overhead: 150, fanout: 210, convergence: 210, footprint: 180 },
};

/** What every benchmark gets. */
export interface BenchContext {
  readonly quick: boolean;
  /** Epoch ms after which the benchmark starts nothing new. */
  readonly deadline: number;
  readonly log: (line: string) => void;
}

type Runner = (ctx: BenchContext) => Promise<{ rows: Row[]; result: unknown }>;

const RUNNERS: Record<BenchName, Runner> = {
  synth: runSynthScale,
  overhead: runSidecarOverhead,
  fanout: runFanout,
  convergence: runConvergence,
  footprint: runAgentFootprint,
};

export function parseArgs(argv: string[]): { quick: boolean; only: BenchName[] } {
  let quick = false;
  let only: BenchName[] = [...BENCHMARKS];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const list = arg.includes('=') ? arg.slice('--only='.length) : argv[++i] ?? '';
      const names = list.split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = names.filter((n) => !(BENCHMARKS as readonly string[]).includes(n));
      if (unknown.length > 0 || names.length === 0) usage(`unknown benchmark ${unknown.join(', ') || '(none)'}`);
      only = names as BenchName[];
    } else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  return { quick, only };
}

function usage(error?: string): never {
  if (error) console.error(`bench: ${error}`);
  console.error(`usage: ts-node -P tsconfig.dev.json bench/run.ts [--quick] [--only ${BENCHMARKS.join(',')}]`);
  process.exit(error ? 2 : 0);
}

export async function runSuite(argv: string[]): Promise<void> {
  const { quick, only } = parseArgs(argv);
  const started = Date.now();
  const log = (line: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);
  const machine = await machineFacts();
  log(`machine: ${machine.cores} cores, ${machine.memoryMiB} MiB, node ${machine.node}, ${machine.haproxy}, ${machine.wrk}, load ${machine.loadAverage1m}`);

  const rows: Row[] = [];
  const results: Record<string, unknown> = {};
  const durations: Record<string, number> = {};
  for (const name of only) {
    const t0 = Date.now();
    const deadline = t0 + BUDGET_S[quick ? 'quick' : 'full'][name] * 1000;
    log(`${name}: start`);
    try {
      const r = await RUNNERS[name]({ quick, deadline, log });
      rows.push(...r.rows);
      results[name] = r.result;
    } catch (e) {
      const message = (e as Error).message.split('\n')[0];
      log(`${name}: failed: ${(e as Error).stack ?? message}`);
      rows.push({ bench: name, scenario: '', metric: 'error', ours: message.slice(0, 160), baseline: '', ratio: '' });
      results[name] = { error: (e as Error).message };
    }
    durations[name] = round((Date.now() - t0) / 1000, 1);
    log(`${name}: done in ${durations[name]} s`);
  }
  removeTranspiledTree();

  const table = renderTable(rows);
  const command = `ts-node -P tsconfig.dev.json bench/run.ts${quick ? ' --quick' : ''}${only.length < BENCHMARKS.length ? ` --only ${only.join(',')}` : ''}`;
  const totalSeconds = round((Date.now() - started) / 1000, 1);
  // The full run's figures are kept in the repository; a quick run (the CI smoke) must not replace them.
  const file = join(__dirname, quick ? 'results.quick.json' : 'results.json');
  writeFileSync(file, `${JSON.stringify({ command, mode: quick ? 'quick' : 'full', startedAt: new Date(started).toISOString(), totalSeconds, durationsSeconds: durations, machine, rows, results }, null, 2)}\n`);

  console.log(`\ncdktf-smartstack benchmarks (${quick ? 'quick' : 'full'}) on ${machine.cores} cores, ${Math.round(machine.memoryMiB / 1024)} GiB, node ${machine.node}, ${machine.haproxy}, ${machine.zookeeper}, ${machine.wrk}`);
  console.log(`command: ${command}    total ${totalSeconds} s\n`);
  console.log(table);
  printProfile(results.synth);
  console.log(`\nall figures: ${file}`);
  // A benchmark that fails is a failed run: a smoke in CI must not pass over one that no longer runs.
  const failed = only.filter((name) => (results[name] as { error?: string } | undefined)?.error !== undefined);
  if (failed.length > 0) {
    console.error(`bench: ${failed.length} of ${only.length} benchmarks failed: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

/** The synth profile's details, when one was taken: where the time goes, by TypeScript line. */
function printProfile(synth: unknown): void {
  type Spot = { function: string; location: string; hottestLine?: string; percent: number };
  const profile = (synth as { profile?: { hosts: number; totalMs: number; oursByInnermostFrame: Spot[]; oursByInclusiveTime: Spot[]; bySelfTime: Spot[] } } | undefined)?.profile;
  if (!profile) return;
  const print = (title: string, spots: Spot[]) => {
    console.log(title);
    for (const h of spots.slice(0, 8)) console.log(`  ${h.percent.toFixed(1).padStart(5)}%  ${h.function}  ${h.location}${h.hottestLine ? ` (hottest line ${h.hottestLine})` : ''}`);
  };
  console.log(`\nsynth profile of ${profile.hosts} hosts (${(profile.totalMs / 1000).toFixed(1)} s sampled)`);
  print('time charged to the innermost lib/ function on the stack (the call that costs):', profile.oursByInnermostFrame);
  print('lib/ functions by inclusive time:', profile.oursByInclusiveTime);
  print('all functions by self time:', profile.bySelfTime);
}

