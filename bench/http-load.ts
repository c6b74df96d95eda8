/**
 * One bounded HTTP load against a loopback URL, the same client for every target: `wrk` (Debian
 * package `wrk`) when installed, else a Node keep-alive client in its own process. Both report
 * requests per second, latency percentiles in µs and failed requests.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { runCommand, runWorker } from './subprocess';

export interface LoadResult {
  readonly client: 'wrk' | 'node';
  readonly connections: number;
  readonly durationS: number;
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p50us: number;
  readonly p90us: number;
  readonly p99us: number;
  readonly maxUs: number;
  /** Socket errors, timeouts and non-2xx/3xx answers. */
  readonly failed: number;
}

export interface LoadSpec {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
}

/** Prints wrk's figures as one JSON line when the run ends. */
const WRK_REPORT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"failed":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`;

let wrkAvailable: boolean | undefined;

/** True when wrk is installed (BENCH_NO_WRK=1 pretends it is not, to try the Node client). */
export async function hasWrk(): Promise<boolean> {
  if (process.env.BENCH_NO_WRK === '1') return false;
  if (wrkAvailable === undefined) {
    const r = await runCommand('wrk', ['--version'], 5000);
    wrkAvailable = /wrk/.test(`${r.stdout}${r.stderr}`);
  }
  return wrkAvailable;
}

export const WRK_MISSING = 'wrk is not installed: the load came from a Node client, which costs more CPU per request than wrk and shrinks the differences. Install it with: sudo apt-get install -y wrk';

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return (await hasWrk()) ? runWrk(spec) : runNodeClient(spec);
}

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-wrk-'));
  try {
    const script = join(dir, 'report.lua');
    writeFileSync(script, WRK_REPORT);
    // One wrk thread: the client takes at most one of the two cores, the same for every target.
    const args = ['-t1', `-c${spec.connections}`, `-d${spec.durationS}s`, '--timeout', '2s', '-s', script, spec.url];
    const r = await runCommand('wrk', args, (spec.durationS + 15) * 1000);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{"requests"'));
    if (r.status !== 0 || !line) throw new Error(`wrk ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
    const j = JSON.parse(line) as { requests: number; duration_us: number; failed: number; p50: number; p90: number; p99: number; max: number };
    const seconds = j.duration_us / 1e6;
    return {
      client: 'wrk',
      connections: spec.connections,
      durationS: seconds,
      requests: j.requests,
      requestsPerSecond: j.requests / seconds,
      p50us: j.p50,
      p90us: j.p90,
      p99us: j.p99,
      maxUs: j.max,
      failed: j.failed,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runNodeClient(spec: LoadSpec): Promise<LoadResult> {
  const r = await runWorker<LoadResult>('http-load-worker.ts', [spec.url, String(spec.connections), String(spec.durationS)], {
    timeoutMs: (spec.durationS + 30) * 1000,
  });
  return r.value;
}
