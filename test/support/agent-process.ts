/**
 * Runs `smartstack <args>` as a child process the way tests need it: the TypeScript entry point
 * through ts-node (one place to switch to the built bin later), JSON-lines logs collected and
 * searchable, stopped by pid.
 */
import { ChildProcess, spawn } from 'child_process';
import { join } from 'path';

const REPO = join(__dirname, '..', '..');

/** One JSON log line of an agent. */
export type LogRecord = { readonly level: string; readonly msg: string; readonly [key: string]: unknown };

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Parsed JSON log lines so far. */
  logs(): LogRecord[];
  /** Everything printed to stdout so far. */
  stdout(): string;
  /** Everything printed to stderr so far. */
  stderr(): string;
  /** Waits for a log line matching `match`; fails after `timeoutMs` with the logs so far. */
  waitForLog(match: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Resolves with the exit code once the process has ended. */
  exited(): Promise<number | null>;
  /** Sends `signal` (SIGTERM by default), SIGKILL after 10 s, and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => running.forEach((c) => c.kill('SIGKILL')));

/**
 * Spawns `smartstack <args>` from the sources. With SMARTSTACK_AGENT_JS set to a directory of
 * compiled JavaScript (holding lib/cli/main.js), that runs instead: the footprint measurement
 * uses it, so ts-node's compiler is not counted.
 */
export function spawnAgent(args: string[]): AgentProcess {
  const compiled = process.env.SMARTSTACK_AGENT_JS;
  const entry = compiled ? [join(compiled, 'lib', 'cli', 'main.js')] : ['-r', 'ts-node/register/transpile-only', join('lib', 'cli', 'main.ts')];
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TS_NODE_PROJECT: join(REPO, 'tsconfig.dev.json'), NODE_PATH: join(REPO, 'node_modules') },
  });
  running.add(child);
  const records: LogRecord[] = [];
  let partial = '';
  let errors = '';
  let output = '';
  const waiters: { match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }[] = [];
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        record = { level: 'raw', msg: line };
      }
      records.push(record);
      for (const w of [...waiters]) {
        if (w.match(record)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(record);
        }
      }
    }
  });
  child.stderr?.on('data', (d: Buffer) => (errors += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    running.delete(child);
    resolve(code);
  }));

  return {
    child,
    pid: child.pid ?? -1,
    logs: () => [...records],
    stdout: () => output,
    stderr: () => errors,
    exited: () => exit,
    waitForLog(match, timeoutMs = 30000) {
      const found = records.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (r: LogRecord) => {
          clearTimeout(timer);
          resolve(r);
        } };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no matching log line within ${timeoutMs} ms; logs:\n${records.slice(-30).map((r) => JSON.stringify(r)).join('\n')}\nstderr:\n${errors}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
        const code = await exit;
        clearTimeout(timer);
        return code;
      }
      return exit;
    },
  };
}
