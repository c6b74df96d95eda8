import * as fc from 'fast-check';

/**
 * fast-check parameters for the fuzz suites: bounded runs, and a seed that is random unless
 * FUZZ_SEED is set (fast-check prints the seed and path of any counterexample, to replay it).
 */
export function fuzzParameters<T>(numRuns: number, examples: T[] = []): fc.Parameters<T> {
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
  return { numRuns, examples, ...(seed !== undefined ? { seed } : {}) };
}
