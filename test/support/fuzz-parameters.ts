import { execFileSync } from 'child_process';
import * as fc from 'fast-check';

/**
 * fast-check parameters for the fuzz suites: bounded runs, and a seed that is FUZZ_SEED when set
 * (fast-check prints the seed and path of any counterexample, to replay it), else, under CI, taken
 * from the commit (so a CI run is reproducible and each commit explores other inputs), else random.
 */
export function fuzzParameters<T>(numRuns: number, examples: T[] = []): fc.Parameters<T> {
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : process.env.CI ? commitSeed() : undefined;
  return { numRuns, examples, ...(seed !== undefined ? { seed } : {}) };
}

function commitSeed(): number | undefined {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return parseInt(head.slice(0, 8), 16) | 0;
  } catch {
    return undefined;
  }
}
