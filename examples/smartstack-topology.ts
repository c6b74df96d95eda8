/**
 * The article's mesh on top of its ZooKeeper ensemble: user-service runs on app1 and app2
 * (port 8080, GET /health every 2 s, up after 3 passes, down after 2 failures), and the
 * application on web1 reaches it at localhost:3210 without knowing where it runs.
 */
import { Construct } from 'constructs';
import { HaproxySidecar, HealthCheck, ServiceMode, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';

/** What {@link buildArticleTopology} creates. */
export interface ArticleTopology {
  readonly userService: SmartStackService;
  readonly app1: VdsNode;
  readonly app2: VdsNode;
  readonly web1: VdsNode;
  readonly sidecars: HaproxySidecar[];
}

/** Changes to the article's mesh, each a second synthesis to rehearse. */
export interface ArticleTopologyOptions {
  /** Passes before an instance is up (3 in the article): a change every sidecar host receives. */
  readonly healthCheckRise?: number;
  /** user-service on a third host too, app3 (10.10.0.57). */
  readonly thirdProvider?: boolean;
  /** order-service (port 8081) on app1 and app2, consumed on web1 at localhost:3211. */
  readonly orderService?: boolean;
}

export function buildArticleTopology(stack: Construct, zk: ZookeeperEnsemble, options: ArticleTopologyOptions = {}): ArticleTopology {
  // The article's user-service instances sit at 10.10.0.55 and 10.10.0.56.
  const app1 = new VdsNode(stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048 });
  const app2 = new VdsNode(stack, 'app2', { privateAddress: '10.10.0.56', memoryMiB: 2048 });
  const web1 = new VdsNode(stack, 'web1', { privateAddress: '10.10.0.30', memoryMiB: 2048 });

  const userService = new SmartStackService(stack, 'user-service', {
    ensemble: zk,
    port: 8080,
    localPort: 3210,
    mode: ServiceMode.HTTP,
    healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: options.healthCheckRise ?? 3, fall: 2 }),
  });

  const orderService = options.orderService
    ? new SmartStackService(stack, 'order-service', {
      ensemble: zk,
      port: 8081,
      localPort: 3211,
      mode: ServiceMode.HTTP,
      healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: 3, fall: 2 }),
    })
    : undefined;
  const onApps = [userService, ...(orderService ? [orderService] : [])];
  const sidecars = [
    new HaproxySidecar(app1, 'sidecar', { provides: onApps }),
    new HaproxySidecar(app2, 'sidecar', { provides: onApps }),
    new HaproxySidecar(web1, 'sidecar', { consumes: onApps }),
  ];
  if (options.thirdProvider) {
    const app3 = new VdsNode(stack, 'app3', { privateAddress: '10.10.0.57', memoryMiB: 2048 });
    sidecars.push(new HaproxySidecar(app3, 'sidecar', { provides: [userService] }));
  }
  return { userService, app1, app2, web1, sidecars };
}
