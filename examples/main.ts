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
import { ArticleTopology, ArticleTopologyOptions, buildArticleTopology } from './smartstack-topology';

/** Variants of the default example: the changes the change figures apply one after the other. */
export interface OsloStackOptions extends ArticleTopologyOptions {
  /** Members of the ensemble: zk1-zk3, or zk1-zk5 (10.10.0.14, 10.10.0.15). @default 3 */
  readonly members?: 3 | 5;
  /** ZooKeeper's `snapCount`, a change to zoo.cfg that rolls the ensemble. @default ZooKeeper's */
  readonly snapCount?: number;
}

export class OsloStack extends TerraformStack {
  public readonly ensemble: ZookeeperEnsemble;
  public readonly topology: ArticleTopology;

  public constructor(scope: Construct, id: string, options: OsloStackOptions = {}) {
    super(scope, id);
    const zkHosts = [11, 12, 13, 14, 15].slice(0, options.members ?? 3).map(
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
    this.ensemble = new ZookeeperEnsemble(this, 'zk', { members: zkHosts, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog', snapCount: options.snapCount });
    this.topology = buildArticleTopology(this, this.ensemble, options);
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
