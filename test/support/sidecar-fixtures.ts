import { Testing, TerraformStack } from 'cdktf';
import { VdsNode, ZookeeperEnsemble, ZookeeperEnsembleProps } from '../../lib';

export interface MeshFixture {
  readonly stack: TerraformStack;
  readonly zk: ZookeeperEnsemble;
  /** Creates an application host at 10.10.0.<n>. */
  host(id: string, n: number): VdsNode;
}

/** A stack (a new one unless given) with the article's 3-member ensemble, ready for services and sidecars. */
export function meshFixture(ensemble: Partial<ZookeeperEnsembleProps> = {}, stack = new TerraformStack(Testing.app(), 'test')): MeshFixture {
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
  const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog', ...ensemble });
  return {
    stack,
    zk,
    host: (id: string, n: number) => new VdsNode(stack, id, { privateAddress: `10.10.0.${n}`, memoryMiB: 2048 }),
  };
}

/** Runs `fn` and returns the message it throws; fails the test when it does not throw. */
export function thrownMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error, none was thrown');
}
