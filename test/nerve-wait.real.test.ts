/**
 * A provider's apply waits only for what the host served before it: the apply script asks nerve's
 * metrics which services it had registered before the document is applied, and afterwards waits
 * for exactly those to be registered again, failing with the host and service when one is not.
 * Run with the real shell and node against a stand-in for nerve's metrics endpoint.
 */
import { spawn } from 'child_process';
import { createServer, Server } from 'http';
import { AddressInfo } from 'net';
import { AgentRuntime, HaproxySidecar, HealthCheck, SmartStackService } from '../lib';
import { meshFixture } from './support/sidecar-fixtures';

/** nerve's metrics as the stand-in serves them: registered or not, by request number. */
type Registered = (request: number) => boolean | 'down';

function startMetrics(registered: Registered): Promise<{ server: Server; port: number; requests: () => number }> {
  let requests = 0;
  const server = createServer((_req, res) => {
    const state = registered(requests++);
    if (state === 'down') {
      res.socket?.destroy();
      return;
    }
    res.end(`nerve_registered{service="users"} ${state ? 1 : 0}\n`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, requests: () => requests })));
}

/** The apply script's two parts of nerve's check, for a provider whose nerve serves metrics on `port`. */
function checkParts(port: number): { before: string; after: string } {
  const f = meshFixture();
  const users = new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 1, rise: 1, timeoutSeconds: 1 }) });
  const app1 = f.host('app1', 21);
  new HaproxySidecar(app1, 'sidecar', { provides: [users], runtime: AgentRuntime.node({ nerveMetricsPort: port }) });
  const script = app1.renderApplyScript();
  const section = (start: string, end: string) => {
    const from = script.indexOf(start);
    const to = script.indexOf(end, from + start.length);
    expect({ start, found: from >= 0 && to > from }).toEqual({ start, found: true });
    return script.slice(from, to);
  };
  return {
    before: section("begin 'before the apply: '", '\nbegin '),
    after: section("begin 'nerve registers users again'", '\necho "app1: '),
  };
}

/** Runs before, then after, in one shell as the apply script does; `deadline` shortens the wait's bound. */
function run(parts: { before: string; after: string }, deadlineSeconds?: number): Promise<{ status: number | null; output: string; seconds: number }> {
  let after = parts.after;
  if (deadlineSeconds !== undefined) after = after.replace(/deadline=\$\(\( \$\(date \+%s\) \+ [0-9]+ \)\)/, `deadline=$(( $(date +%s) + ${deadlineSeconds} ))`);
  const program = `set -eu\nbegin() { echo "step: $1"; }\nfail() { echo "FAIL: $*"; exit 1; }\n${parts.before}\n${after}\n`;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', program], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}

describe("a provider's apply waits only for what it served before", () => {
  const servers: Server[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  test('a service not registered before the apply is not waited for', async () => {
    const metrics = await startMetrics(() => false);
    servers.push(metrics.server);
    const r = await run(checkParts(metrics.port));
    expect(r.status).toBe(0);
    expect(r.output).toContain('users was not registered on app1 before the apply: not waited for');
    // Asked once, before the apply; nothing after.
    expect(metrics.requests()).toBe(1);
  }, 60000);

  test('nerve not running before the apply (a first deploy): not waited for', async () => {
    const metrics = await startMetrics(() => 'down');
    servers.push(metrics.server);
    const r = await run(checkParts(metrics.port));
    expect(r.status).toBe(0);
    expect(r.output).toContain('registered by nerve on app1 before the apply:\n');
    expect(r.output).toContain('not waited for');
  }, 60000);

  test('a service registered before is waited for until it is registered again', async () => {
    // Registered before; then gone for the next three answers (the restart), then back.
    const metrics = await startMetrics((n) => n === 0 || n > 3);
    servers.push(metrics.server);
    const r = await run(checkParts(metrics.port));
    expect(r.status).toBe(0);
    expect(r.output).toContain('registered by nerve on app1 before the apply: users');
    expect(r.output).toContain('nerve on app1 has registered users again');
    expect(metrics.requests()).toBeGreaterThanOrEqual(5);
  }, 60000);

  test('one that served before and does not come back fails the apply, naming the host and the service', async () => {
    const metrics = await startMetrics((n) => n === 0);
    servers.push(metrics.server);
    const r = await run(checkParts(metrics.port), 3);
    expect(r.status).toBe(1);
    expect(r.output).toMatch(/FAIL: nerve on app1 has not registered users again within [0-9]+ s; it served before the apply: see journalctl -u smartstack-nerve.service/);
  }, 60000);
});
