import { spawn } from 'child_process';
import { appendFileSync } from 'fs';
import { signalProcessGroup } from '../agent/process-group';

/** What a finished program left behind. */
export interface CommandResult {
  /** The exit status; `null` when a signal ended it (then `signal` says which). */
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Standard output and standard error, interleaved in arrival order. */
  readonly output: string;
  readonly stdout: string;
  readonly stderr: string;
  /** True when the time bound ran out and the program (and its process group) was killed. */
  readonly timedOut: boolean;
  readonly seconds: number;
}

export interface CommandOptions {
  /** The bound: after it the whole process group gets SIGKILL. */
  readonly timeoutMs: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the program's standard input, which is then closed. */
  readonly input?: string;
  /** Every chunk of output is also appended to this file, as it arrives. */
  readonly logFile?: string;
  /** Called with the program's PID (also its process group's id) once it runs, e.g. to record it. */
  readonly onStart?: (pid: number) => void;
}

/**
 * Runs a program (argv, no shell) in its own process group and waits for it, at most `timeoutMs`.
 * The group is killed on timeout so helpers it started (debootstrap's, ssh's) do not outlive it.
 */
export function runBounded(argv: readonly string[], options: CommandOptions): Promise<CommandResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    if (child.pid !== undefined) options.onStart?.(child.pid);
    let output = '';
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const collect = (which: 'out' | 'err') => (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      if (which === 'out') stdout += text;
      else stderr += text;
      if (options.logFile) appendFileSync(options.logFile, text);
    };
    child.stdout.on('data', collect('out'));
    child.stderr.on('data', collect('err'));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      if (!signalProcessGroup(child.pid, 'SIGKILL')) child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${argv[0]}: ${error.message}`));
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, output, stdout, stderr, timedOut, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** Like {@link runBounded}, but a non-zero exit or a timeout is an error naming the command and its output. */
export async function runChecked(argv: readonly string[], options: CommandOptions): Promise<CommandResult> {
  const result = await runBounded(argv, options);
  if (result.status !== 0) {
    const why = result.timedOut ? `did not finish within ${options.timeoutMs / 1000} s` : `exited ${result.status ?? result.signal}`;
    throw new Error(`${argv.join(' ')} ${why}:\n${tail(result.output, 4000)}`);
  }
  return result;
}

/** The last `max` characters of a text, marked when cut. */
export function tail(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max)}`;
}
