/**
 * Instructions HAProxy executes per proxied request, counted by valgrind's callgrind: unlike
 * throughput and latency on a shared 2-core machine, the count does not move with the load other
 * processes put on the cores, so it shows what a config itself costs.
 *
 * The config runs single-threaded in the foreground (no master-worker, no privilege drop, which
 * concern neither requests nor the count); a fixed number of keep-alive requests is sent after a
 * warm-up, between a zeroing and a dump of the counters.
 */
import { ChildProcess, spawn } from 'child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { Agent, get } from 'http';
import { connect } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { runCommand, sleep } from './subprocess';

export async function hasCallgrind(): Promise<boolean> {
  const r = await runCommand('valgrind', ['--version'], 5000);
  return /valgrind/.test(r.stdout) && (await runCommand('callgrind_control', ['-h'], 5000)).status !== null;
}

/** The config as callgrind runs it: one thread, foreground, the invoking user, no sockets of the master. */
export function singleThreaded(config: string): string {
  return config
    .split('\n')
    // Sockets and state files of the master and of the measured instances stay theirs alone.
    .filter((l) => !/^\s*(master-worker|user|group|nbthread|stats socket|server-state-file|load-server-state-from-file)\b/.test(l))
    .join('\n')
    .replace(/^global\n/m, 'global\n  nbthread 1\n');
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Sends `count` GETs over `connections` keep-alive connections; resolves with the number of 2xx answers. */
function sendRequests(port: number, count: number, connections: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let left = count;
  let ok = 0;
  const one = (): Promise<void> => new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: '/', agent, timeout: 10_000 }, (res) => {
      if ((res.statusCode ?? 0) < 300) ok++;
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve());
  });
  const worker = async () => {
    while (left > 0) {
      left--;
      await one();
    }
  };
  return Promise.all(Array.from({ length: connections }, worker)).then(() => {
    agent.destroy();
    return ok;
  });
}

export interface InstructionCount {
  readonly requests: number;
  readonly ok: number;
  readonly instructionsPerRequest: number;
}

/** Runs `config` (listening on 127.0.0.1:port) under callgrind and counts instructions per request. */
export async function instructionsPerRequest(config: string, port: number, requests: number): Promise<InstructionCount> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-callgrind-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, singleThreaded(config));
  const out = join(dir, 'callgrind.out');
  const child: ChildProcess = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, 'haproxy', '-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    const deadline = Date.now() + 60_000;
    while (!(await portOpen(port))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`haproxy under callgrind did not listen on ${port}:\n${stderr.slice(-2000)}`);
      await sleep(200);
    }
    await sendRequests(port, Math.max(200, requests / 10), 8);
    const pid = String(child.pid);
    await runCommand('callgrind_control', ['-z', pid], 30_000);
    const ok = await sendRequests(port, requests, 8);
    await runCommand('callgrind_control', ['-d', pid], 30_000);
    // The dump is the counter file with a part suffix; its `totals:` (or `summary:`) line is the count.
    const dumps = readdirSync(dir).filter((f) => f.startsWith('callgrind.out.') || f === 'callgrind.out');
    let total = NaN;
    for (const f of dumps) {
      const m = /^(?:totals|summary): (\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
      if (m && f !== 'callgrind.out') total = Number(m[1]);
    }
    if (!Number.isFinite(total)) throw new Error(`no callgrind dump found in ${dir}: ${dumps.join(', ')}\n${stderr.slice(-2000)}`);
    return { requests, ok, instructionsPerRequest: total / requests };
  } finally {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}
