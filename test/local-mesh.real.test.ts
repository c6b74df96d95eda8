/**
 * End to end: the default example, synthesized, runs through `smartstack local` (the LocalMesh it is
 * built on) and heals itself under load; a second topology built through the public API runs the
 * same way.
 */
import { existsSync, mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, TerraformStack } from 'cdktf';
import { HaproxySidecar, HealthCheck, ServiceMode, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';
import { LocalMesh } from '../lib/local/local-mesh';
import { buildApp } from '../examples/main';
import { eventually } from './support/eventually';
import { registeredInstances, renderFigures, runSelfHealingScenario, sidecarOf, StepFigure } from './support/mesh-scenario';
import { startRequestLoop } from './support/agent-request-loop';

jest.setTimeout(10 * 60000);

function synthesize(build: (outdir: string) => App): string {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-e2e-synth-'));
  build(outdir).synth();
  return outdir;
}

describe('the default example on a local mesh', () => {
  let mesh: LocalMesh;
  let figures: StepFigure[] = [];

  beforeAll(async () => {
    mesh = new LocalMesh({ outdir: synthesize(buildApp), loopbackPrefix: '127.78' });
    await mesh.start();
  });

  afterAll(async () => {
    await mesh?.stop();
  });

  test('every host runs its part: members, backends, sidecar HAProxy, nerve and synapse', () => {
    expect(mesh.processNames).toEqual([
      'app1/backend:user-service', 'app1/nerve',
      'app2/backend:user-service', 'app2/nerve',
      'web1/haproxy', 'web1/synapse',
      'zk1/zookeeper', 'zk2/zookeeper', 'zk3/zookeeper',
    ]);
  });

  test('the application on web1 reaches user-service at its localhost:3210, on both instances', async () => {
    const sidecar = sidecarOf(mesh, 'web1', 'user-service');
    expect(sidecar.port).toBe(3210);
    await eventually('both instances registered', async () => (await registeredInstances(mesh, 'user-service'))?.length === 2, 60000);
    await eventually('both instances in service', async () => (await sidecar.serving()).length === 2, 60000);
    const loop = startRequestLoop(sidecar.host.address, sidecar.port, { maxRequests: 40, maxDurationMs: 20000 });
    const result = await loop.finished();
    expect(result.failures).toEqual([]);
    expect(Object.keys(result.answeredBy).sort()).toEqual(['user-service app1', 'user-service app2']);
  });

  test('heals itself under load: no failed request in any step, each step converging', async () => {
    figures = await runSelfHealingScenario(mesh, { consumer: 'web1', service: 'user-service', providers: ['app1', 'app2'], log: (l) => process.stderr.write(`${l}\n`) });
    process.stderr.write(`${renderFigures(figures)}\n`);
    expect(figures.map((f) => f.step)).toHaveLength(7);
    for (const f of figures) {
      expect({ step: f.step, failed: f.failed, failures: f.failures }).toEqual({ step: f.step, failed: 0, failures: [] });
      expect(f.requests).toBeGreaterThan(0);
      // Generous bounds: detection is fall x interval (4 s) and rise x interval (6 s) on this topology.
      expect(f.convergenceMs).toBeLessThan(f.step.startsWith('all ZooKeeper') ? 55000 : 30000);
    }
  });

  test('stopping the mesh ends every process and removes its files', async () => {
    const workdir = mesh.workdir;
    const children = mesh.processNames.map((n) => mesh.process(n).child);
    await mesh.stop();
    expect(children.every((c) => c.exitCode !== null || c.signalCode !== null)).toBe(true);
    expect(existsSync(workdir)).toBe(false);
  });
});

/** 5 members; three services; hosts that both provide and consume. */
function buildSecondTopology(outdir: string): App {
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'bergen');
  const members = [1, 2, 3, 4, 5].map((n) => new VdsNode(stack, `zk${n}`, {
    privateAddress: `10.20.0.${10 + n}`,
    memoryMiB: 2048,
    disks: [{ name: 'data', device: `/dev/disk/by-id/virtio-zk${n}-data` }, { name: 'txlog', device: `/dev/disk/by-id/virtio-zk${n}-txlog` }],
  }));
  const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'data', txnLogDisk: 'txlog' });
  const check = HealthCheck.http({ path: '/health', intervalSeconds: 1, rise: 2, fall: 2 });
  const orders = new SmartStackService(stack, 'orders', { ensemble: zk, port: 9001, localPort: 4001, healthCheck: check });
  const stock = new SmartStackService(stack, 'stock', { ensemble: zk, port: 9002, localPort: 4002, healthCheck: check });
  const ledger = new SmartStackService(stack, 'ledger', { ensemble: zk, port: 9003, localPort: 4003, mode: ServiceMode.TCP, healthCheck: HealthCheck.tcp({ intervalSeconds: 1, rise: 2, fall: 2 }) });
  const host = (name: string, n: number) => new VdsNode(stack, name, { privateAddress: `10.20.0.${n}`, memoryMiB: 2048 });
  new HaproxySidecar(host('a1', 31), 'sidecar', { provides: [orders], consumes: [stock, ledger] });
  new HaproxySidecar(host('a2', 32), 'sidecar', { provides: [orders, stock], consumes: [ledger] });
  new HaproxySidecar(host('b1', 33), 'sidecar', { provides: [stock, ledger], consumes: [orders] });
  new HaproxySidecar(host('c1', 34), 'sidecar', { consumes: [orders, stock, ledger] });
  return app;
}

describe('a second topology built through the public API on a local mesh', () => {
  let mesh: LocalMesh;

  beforeAll(async () => {
    mesh = new LocalMesh({ outdir: synthesize(buildSecondTopology), loopbackPrefix: '127.79' });
    await mesh.start();
  });

  afterAll(async () => {
    await mesh?.stop();
  });

  test('five members serve as one ensemble', async () => {
    // The mesh starts once a quorum serves; the last members may still be syncing with the leader.
    const modes = await eventually('five members serving', async () => {
      const m = (await mesh.status()).members.map((x) => x.mode).sort();
      return m.every((x) => x === 'leader' || x === 'follower') ? m : undefined;
    }, 60000, 500);
    expect(modes).toEqual(['follower', 'follower', 'follower', 'follower', 'leader']);
  });

  test.each([
    ['a1', 'stock', ['a2', 'b1']],
    ['a1', 'ledger', ['b1']],
    ['a2', 'ledger', ['b1']],
    ['b1', 'orders', ['a1', 'a2']],
    ['c1', 'orders', ['a1', 'a2']],
    ['c1', 'stock', ['a2', 'b1']],
    ['c1', 'ledger', ['b1']],
  ])('%s reaches %s on every provider (%j)', async (consumer, service, providers) => {
    const sidecar = sidecarOf(mesh, consumer, service);
    await eventually(`${service} in service at ${consumer}`, async () => (await sidecar.serving()).length === providers.length, 60000);
    const loop = startRequestLoop(sidecar.host.address, sidecar.port, { maxRequests: 20, maxDurationMs: 20000 });
    const result = await loop.finished();
    expect(result.failures).toEqual([]);
    expect(Object.keys(result.answeredBy).sort()).toEqual(providers.map((p) => `${service} ${p}`));
  });
});
