/**
 * The default example, the article's topology: a ZooKeeper ensemble (zk1-zk3) on three KVM VDS hosts
 * in Oslo, each with its snapshots and its transaction log on separate NVMe disks; user-service
 * provided on app1 and app2 and consumed on web1 at localhost:3210.
 *
 *   npm run synth     (or `cdktf synth`, which runs this file through cdktf.json)
 */
import { App, TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { VdsNode, ZookeeperEnsemble } from '../lib';
import { ArticleTopology, buildArticleTopology } from './smartstack-topology';

export interface OsloStackOptions {
  /** The health check's `rise` (3 in the article): a change every sidecar host receives. */
  readonly healthCheckRise?: number;
}

export class OsloStack extends TerraformStack {
  public readonly ensemble: ZookeeperEnsemble;
  public readonly topology: ArticleTopology;

  public constructor(scope: Construct, id: string, options: OsloStackOptions = {}) {
    super(scope, id);
    const zkHosts = [11, 12, 13].map(
      (n, i) =>
        new VdsNode(this, `zk${i + 1}`, {
          privateAddress: `10.10.0.${n}`,
          memoryMiB: 4096,
          disks: [
            { name: 'zk-data', device: `/dev/disk/by-id/virtio-zk${i + 1}-data` },
            { name: 'zk-txlog', device: `/dev/disk/by-id/virtio-zk${i + 1}-txlog` },
          ],
        }),
    );
    this.ensemble = new ZookeeperEnsemble(this, 'zk', { members: zkHosts, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
    this.topology = buildArticleTopology(this, this.ensemble, options.healthCheckRise);
  }
}

export function buildApp(outdir?: string, options: OsloStackOptions = {}): App {
  const app = new App({ outdir });
  new OsloStack(app, 'oslo', options);
  return app;
}

if (require.main === module) {
  buildApp().synth();
}
