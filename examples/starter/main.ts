import { App, TerraformStack } from 'cdktf';
import { HaproxySidecar, HealthCheck, SmartStackService, VdsNode, ZookeeperEnsemble } from 'cdktf-smartstack';

const app = new App();
const stack = new TerraformStack(app, 'oslo');
const members = [11, 12, 13].map((n, i) => new VdsNode(stack, `zk${i + 1}`, {
  privateAddress: `10.10.0.${n}`,
  memoryMiB: 4096,
  disks: [
    { name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i + 1}-data` },
    { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i + 1}-txlog` },
  ],
}));
const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
// zk.connectionString === '10.10.0.11:2181,10.10.0.12:2181,10.10.0.13:2181' (also the output zk_connection_string)

const users = new SmartStackService(stack, 'user-service', {
  ensemble: zk, port: 8080, localPort: 3210,
  healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: 3, fall: 2 }),
});
const host = (name: string, address: string) => new VdsNode(stack, name, { privateAddress: address, memoryMiB: 2048 });
new HaproxySidecar(host('app1', '10.10.0.55'), 'sidecar', { provides: [users] });
new HaproxySidecar(host('app2', '10.10.0.56'), 'sidecar', { provides: [users] });
new HaproxySidecar(host('web1', '10.10.0.30'), 'sidecar', { consumes: [users] }); // web1's app calls localhost:3210
app.synth();
