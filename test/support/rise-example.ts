import { App, TerraformStack } from 'cdktf';
import { HaproxySidecar, HealthCheck, ServiceMode, SmartStackService, VdsNode, ZookeeperEnsemble } from '../../lib';

/**
 * The default example (examples/main.ts: stack `oslo`, 10.10.0.x) with another health-check `rise`:
 * a change every sidecar host receives, as a second synthesis to rehearse.
 */
export function buildExampleWithRise(outdir: string, rise: number): App {
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'oslo');
  const members = [11, 12, 13].map(
    (n, i) =>
      new VdsNode(stack, `zk${i + 1}`, {
        privateAddress: `10.10.0.${n}`,
        memoryMiB: 4096,
        disks: [
          { name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i + 1}-data` },
          { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i + 1}-txlog` },
        ],
      }),
  );
  const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
  const app1 = new VdsNode(stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048 });
  const app2 = new VdsNode(stack, 'app2', { privateAddress: '10.10.0.56', memoryMiB: 2048 });
  const web1 = new VdsNode(stack, 'web1', { privateAddress: '10.10.0.30', memoryMiB: 2048 });
  const userService = new SmartStackService(stack, 'user-service', {
    ensemble: zk,
    port: 8080,
    localPort: 3210,
    mode: ServiceMode.HTTP,
    healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise, fall: 2 }),
  });
  new HaproxySidecar(app1, 'sidecar', { provides: [userService] });
  new HaproxySidecar(app2, 'sidecar', { provides: [userService] });
  new HaproxySidecar(web1, 'sidecar', { consumes: [userService] });
  return app;
}
