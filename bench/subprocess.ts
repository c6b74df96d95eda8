/**
 * Child processes for the benchmarks: TypeScript workers run under ts-node (the library's
 * TypeScript sources, not stale build output), each bounded by a deadline.
 */
import { ChildProcess, fork, ForkOptions, spawn } from 'child_process';
import { mkdirSync, mkdtempSync } from 'fs';
import { join } from 'path';

export const REPO_ROOT = join(__dirname, '..');

/** Environment that makes a child load `.ts` sources through ts-node, as `ts-node -P tsconfig.dev.json` does. */
export function tsNodeEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TS_NODE_PROJECT: join(REPO_ROOT, 'tsconfig.dev.json'),
    TS_NODE_TRANSPILE_ONLY: 'true',
    // The jsii build leaves lib/*.js beside lib/*.ts; the sources are the truth.
    TS_NODE_PREFER_TS_EXTS: 'true',
    CHECKPOINT_DISABLE: '1',
    ...extra,
  };
}

/** Node arguments that load ts-node before the worker. */
export function tsNodeArgs(nodeArgs: string[] = []): string[] {
  return [...nodeArgs, '-r', 'ts-node/register'];
}

export interface WorkerResult<T> {
  readonly value: T;
  /** Wall time of the whole child, from spawn to exit, in ms. */
  readonly wallMs: number;
  readonly stderr: string;
}

export interface WorkerOptions {
  readonly timeoutMs: number;
  /** Arguments for node itself, e.g. `--cpu-prof`. */
  readonly nodeArgs?: string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Root of a transpiled tree (see `transpileSources`): run its JavaScript instead of the TypeScript. */
  readonly jsRoot?: string;
}

/**
 * Runs a worker script to completion and parses the last line it prints on stdout as JSON.
 * Kills it (SIGKILL) after `timeoutMs`.
 */
export function runWorker<T>(script: string, args: string[], options: WorkerOptions): Promise<WorkerResult<T>> {
  const started = process.hrtime.bigint();
  // Plain JavaScript from `transpileSources` when given, so that no compiler is in the measured process.
  const argv = options.jsRoot
    ? [...(options.nodeArgs ?? []), join(options.jsRoot, 'bench', script.replace(/\.ts$/, '.js')), ...args]
    : [...tsNodeArgs(options.nodeArgs), join(__dirname, script), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      cwd: REPO_ROOT,
      env: tsNodeEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || last === '') {
        const why = signal === 'SIGKILL' ? `killed after ${options.timeoutMs} ms` : `exit ${code ?? signal}`;
        reject(new Error(`${script} ${args.join(' ')}: ${why}\n${stderr.slice(-3000)}`));
        return;
      }
      try {
        resolve({ value: JSON.parse(last) as T, wallMs, stderr });
      } catch {
        reject(new Error(`${script}: last line is not JSON: ${last.slice(0, 300)}\n${stderr.slice(-2000)}`));
      }
    });
  });
}

/** Forks a long-lived TypeScript worker with an IPC channel (for workers that take commands). */
export function forkWorker(script: string, args: string[], options: ForkOptions = {}): ChildProcess {
  return fork(join(__dirname, script), args, {
    cwd: REPO_ROOT,
    execArgv: tsNodeArgs(),
    env: tsNodeEnv(options.env),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...options,
  });
}

/** Runs a command, returns its exit status and output; never throws. Killed after `timeoutMs`. */
export function runCommand(command: string, args: string[], timeoutMs: number): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let child: ChildProcess;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ status: null, stdout: '', stderr: (e as Error).message });
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: null, stdout, stderr: stderr + e.message });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A new scratch directory under the repository's (ignored) .tmp folder. */
export function scratchDir(prefix: string): string {
  mkdirSync(join(REPO_ROOT, '.tmp'), { recursive: true });
  return mkdtempSync(join(REPO_ROOT, '.tmp', prefix));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
