/**
 * A real master-worker HAProxy for tests: `haproxy -W -S <master socket> -f <config>` on loopback,
 * in its own temp dir, stopped by pid. Also `haproxy -c` on a text and a free-port finder.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { createServer } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { HaproxyMaster, HaproxyProcessList, HaproxyRuntime } from '../../lib/agent/haproxy-runtime';

export const HAPROXY_BINARY = process.env.HAPROXY_BINARY ?? 'haproxy';

/** `haproxy -c -f` on the given text; `ok` is its verdict, `output` what it printed. */
export function checkHaproxyConfig(text: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-check-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, text);
    const r = spawnSync(HAPROXY_BINARY, ['-c', '-f', file], { encoding: 'utf8', timeout: 20000 });
    return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A TCP port nobody listens on right now, on the given loopback address. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Paths a test config should use; handed to the config function of {@link startHaproxy}. */
export interface HaproxyPaths {
  readonly dir: string;
  readonly configPath: string;
  readonly adminSocket: string;
  readonly masterSocket: string;
  readonly stateFile: string;
}

export interface HaproxyProcess extends HaproxyPaths {
  readonly pid: number;
  readonly runtime: HaproxyRuntime;
  readonly master: HaproxyMaster;
  /** Everything HAProxy printed so far. */
  output(): string;
  processes(): Promise<HaproxyProcessList>;
  /** Stops master and workers (SIGTERM, then SIGKILL) and removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Starts a master-worker HAProxy with the config `render(paths)` returns and waits until
 * both sockets answer.
 */
export async function startHaproxy(render: (paths: HaproxyPaths) => string, timeoutMs = 10000): Promise<HaproxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-'));
  const paths: HaproxyPaths = {
    dir,
    configPath: join(dir, 'haproxy.cfg'),
    adminSocket: join(dir, 'admin.sock'),
    masterSocket: join(dir, 'master.sock'),
    stateFile: join(dir, 'server-state'),
  };
  writeFileSync(paths.configPath, render(paths));
  const child: ChildProcess = spawn(HAPROXY_BINARY, ['-W', '-S', paths.masterSocket, '-f', paths.configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const runtime = new HaproxyRuntime(paths.adminSocket);
  const master = new HaproxyMaster(paths.masterSocket);

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`haproxy exited with ${child.exitCode}:\n${output}`);
    }
    const ready = await Promise.all([runtime.command('show info'), master.processes()]).then(() => true, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not answer on its sockets within ${timeoutMs} ms:\n${output}`);
    }
    await sleep(50);
  }
  return {
    ...paths,
    pid: child.pid ?? -1,
    runtime,
    master,
    output: () => output,
    processes: () => master.processes(),
    stop,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
