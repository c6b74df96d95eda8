/**
 * Runs the benchmarks and prints one table; writes every figure to bench/results.json.
 *
 *   ts-node -P tsconfig.dev.json bench/run.ts [--quick] [--only synth,overhead,fanout,convergence]
 *
 * Nothing here asserts a timing: each benchmark measures ours beside its baseline in the same run
 * and reports the ratios. --quick is small enough for CI (about 3 minutes); the full run takes
 * about 15 minutes.
 *
 * The suite must load the library's TypeScript sources, not build output that may sit beside them
 * (lib/*.js from the jsii build), so this file starts it in a child with ts-node told to prefer
 * `.ts` files, and passes its exit status on.
 */
import { spawn } from 'child_process';
import { tsNodeArgs, tsNodeEnv } from './subprocess';

if (process.env.TS_NODE_PREFER_TS_EXTS === 'true') {
  (require('./suite') as typeof import('./suite')).runSuite(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  const child = spawn(process.execPath, [...tsNodeArgs(), __filename, ...process.argv.slice(2)], { env: tsNodeEnv(), stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
