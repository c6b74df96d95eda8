/**
 * `smartstack local` as a user runs it: the command itself, on a stack whose services are checked
 * at paths other than /health. It must say what runs where, answer each service's own check, run a
 * relative backend command from the folder it was started in, leave nothing behind when SIGTERM
 * reaches it alone, and refuse a port that something else holds.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'fs';
import { connect, createServer, Server } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, TerraformStack } from 'cdktf';
import { HaproxySidecar, HealthCheck, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';
import { eventually, httpGet } from './support/eventually';

jest.setTimeout(5 * 60000);

const bin = join(__dirname, '..', 'bin', 'smartstack');

/** Three members; app1 provides two services checked at their own paths; web1 consumes both. */
function synthesize(): string {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-local-cli-synth-'));
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'oslo');
  const members = [11, 12, 13].map((n, i) => new VdsNode(stack, `zk${i + 1}`, {
    privateAddress: `10.10.0.${n}`, memoryMiB: 4096,
    disks: [{ name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i + 1}-data` }, { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i + 1}-txlog` }],
  }));
  const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
  const check = (path: string, expectBody: string) => HealthCheck.http({ path, expectStatus: 200, expectBody, intervalSeconds: 0.5, timeoutSeconds: 0.5, rise: 1, fall: 1 });
  const ready = new SmartStackService(stack, 'ready-svc', { ensemble: zk, port: 8080, localPort: 3210, healthCheck: check('/_status/ready', 'READY') });
  const other = new SmartStackService(stack, 'other-svc', { ensemble: zk, port: 8081, localPort: 3211, healthCheck: check('/_status/ok', 'FINE') });
  new HaproxySidecar(new VdsNode(stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048 }), 'sidecar', { provides: [ready, other] });
  new HaproxySidecar(new VdsNode(stack, 'web1', { privateAddress: '10.10.0.30', memoryMiB: 2048 }), 'sidecar', { consumes: [ready, other] });
  app.synth();
  return outdir;
}

const outdir = synthesize();

interface Run {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

function startLocal(args: string[], cwd: string): Run {
  const child = spawn(process.execPath, [bin, 'local', outdir, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = { child, stdout: '', stderr: '', exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  child.stdout!.on('data', (d) => (run.stdout += d));
  child.stderr!.on('data', (d) => (run.stderr += d));
  return run;
}

/** The last status table printed. */
function lastTable(run: Run): string {
  const at = run.stdout.lastIndexOf('Hosts\n');
  return at < 0 ? '' : run.stdout.slice(at);
}

/** Every process descended from `pid`, whatever process group it moved to. */
function descendants(pid: number): number[] {
  const rows = spawnSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of rows) {
      if (ppid === parent) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function connects(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** host -> loopback address, from the table's Hosts section. */
function addresses(table: string): Map<string, string> {
  return new Map([...table.matchAll(/^ {2}(\w+) +(127\.\d+\.\d+\.\d+) /gm)].map((m) => [m[1], m[2]]));
}

/** Waits for the printed status to satisfy `ok`; on timeout the error shows the table and smartstack's stderr. */
async function untilTable(run: Run, what: string, ok: (table: string) => boolean): Promise<string> {
  try {
    const table = await eventually(what, () => (run.child.exitCode !== null || ok(lastTable(run)) ? lastTable(run) : undefined), 120000, 250);
    if (run.child.exitCode !== null) throw new Error(`smartstack exited (${run.child.exitCode}) before ${what}`);
    return table;
  } catch (e) {
    throw new Error(`${(e as Error).message}\nlast table:\n${lastTable(run)}\nstderr:\n${run.stderr.slice(-3000)}`);
  }
}

/** SIGTERM to smartstack alone; then nothing it started may be left, nor any of its ports. */
async function stopAndCheckNothingLeft(run: Run, atLeast = 8): Promise<void> {
  const started = descendants(run.child.pid!);
  expect(started.length).toBeGreaterThanOrEqual(atLeast);
  const table = lastTable(run);
  const listening = [...addresses(table).values()].flatMap((a) => [2181, 3210, 3211, 8080, 8081].map((p) => [a, p] as const));
  process.kill(run.child.pid!, 'SIGTERM');
  expect(await run.exited).toBe(0);
  expect(run.stderr).toContain('stopping the local mesh (SIGTERM)');
  expect(started.filter(alive)).toEqual([]);
  for (const [address, port] of listening) expect(await connects(address, port)).toBe(false);
}

describe('smartstack local, the command', () => {
  const runs: Run[] = [];
  afterAll(() => {
    // Only if a test failed half-way: smartstack is told to stop, as a user would.
    for (const run of runs) if (run.child.exitCode === null) run.child.kill('SIGTERM');
  });

  let firstTable = '';

  test('with the built-in backend: hosts, endpoints and services by name, and each service answers its own check', async () => {
    const run = startLocal(['--loopback-prefix', '127.83'], mkdtempSync(join(tmpdir(), 'smartstack-local-cli-')));
    runs.push(run);
    const table = await untilTable(run, 'both services registered', (t) => /^ {2}ready-svc +app1 +127\./m.test(t) && /^ {2}other-svc +app1 +127\./m.test(t));
    firstTable = table;
    const at = addresses(table);
    expect([...at.keys()].sort()).toEqual(['app1', 'web1', 'zk1', 'zk2', 'zk3']);
    expect(table).toMatch(new RegExp(`^ {2}app1 +${at.get('app1')} +10\\.10\\.0\\.55 +provides other-svc, provides ready-svc$`, 'm'));
    expect(table).toMatch(new RegExp(`^ {2}web1 +${at.get('web1')} +10\\.10\\.0\\.30 +consumes other-svc, consumes ready-svc$`, 'm'));
    expect(table).toMatch(/^ {2}zk1 +127\.83\.\d+\.\d+ +10\.10\.0\.11 +zookeeper member \((leader|follower)\)$/m);
    expect(table).toContain(`  web1 ${at.get('web1')}:3210 → ready-svc\n`);
    expect(table).toContain(`  web1 ${at.get('web1')}:3211 → other-svc\n`);
    // Through the consumer's HAProxy, which checks /_status/ready for READY as nerve does.
    expect(await eventually('a request through web1', () => httpGet(`http://${at.get('web1')}:3210/`), 30000, 250)).toBe('ready-svc app1\n');
    await stopAndCheckNothingLeft(run);
  });

  test('a relative backend command runs in the folder smartstack started in, and a failing check is explained', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'smartstack-local-cli-backend-'));
    // A shell that stays the parent of its server: stopping must reach the server too.
    writeFileSync(join(folder, 'serve.sh'), '#!/bin/sh\nnode "$(dirname "$0")/serve.js" "$@"\necho "server ended"\n');
    chmodSync(join(folder, 'serve.sh'), 0o755);
    writeFileSync(join(folder, 'serve.js'), `
const [address, port, service] = process.argv.slice(2);
require('http').createServer((req, res) => {
  if (req.url === '/_status/ready') return res.end('READY');
  if (req.url === '/_status/ok') { res.statusCode = 503; return res.end('not today'); }
  res.end(service + ' from serve.js');
}).listen(Number(port), address);
`);
    const run = startLocal(['--loopback-prefix', '127.84', '--backend-command', './serve.sh {address} {port} {service}'], folder);
    runs.push(run);
    const table = await untilTable(run, 'ready-svc registered and other-svc explained', (t) => /^ {2}ready-svc +app1 +127\./m.test(t) && /^ {2}other-svc +app1 +nerve: check failed: status 503/m.test(t));
    expect(table).toMatch(/^ {2}other-svc +- +none registered$/m);
    expect(table).toMatch(/^ {2}other-svc +app1 +nerve: check failed: status 503 \(other-svc http \/_status\/ok\)$/m);
    expect(await httpGet(`http://${addresses(table).get('web1')}:3210/`)).toBe('ready-svc from serve.js');
    await stopAndCheckNothingLeft(run);
  });

  test('a backend command that fails is reported on the console with the end of its log', async () => {
    const run = startLocal(['--loopback-prefix', '127.85', '--backend-command', './not-there.sh {port}'], mkdtempSync(join(tmpdir(), 'smartstack-local-cli-empty-')));
    runs.push(run);
    await eventually('the failed backend reported', () => /app1\/backend:ready-svc exited with code 127; the end of its log \(.*\):\n {2}.*not-there\.sh: not found/.test(run.stderr), 120000, 250);
    // Three members, HAProxy, synapse and nerve run; the two backends are gone.
    await stopAndCheckNothingLeft(run, 6);
  });

  test('a port held from an earlier run is reported, naming the port, its role and the holder, and nothing starts', async () => {
    const web1 = addresses(firstTable).get('web1')!;
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(3210, web1, resolve));
    try {
      const run = startLocal(['--loopback-prefix', '127.83'], mkdtempSync(join(tmpdir(), 'smartstack-local-cli-')));
      runs.push(run);
      expect(await run.exited).toBe(1);
      expect(run.stderr).toContain('ports the mesh needs are in use, perhaps by processes of an earlier run:');
      expect(run.stderr).toContain(`  ${web1}:3210 (web1's HAProxy for ready-svc): held by pid ${process.pid} (`);
      expect(run.stderr).not.toMatch(/started zk1\/zookeeper/);
    } finally {
      holder.close();
    }
  });
});
