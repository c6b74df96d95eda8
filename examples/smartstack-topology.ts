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

/**
 * @param healthCheckRise passes before an instance is up: 3 in the article; another value is a change
 * every sidecar host receives (a second synthesis to rehearse).
 */
export function buildArticleTopology(stack: Construct, zk: ZookeeperEnsemble, healthCheckRise = 3): ArticleTopology {
  // The article's user-service instances sit at 10.10.0.55 and 10.10.0.56.
  const app1 = new VdsNode(stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048 });
  const app2 = new VdsNode(stack, 'app2', { privateAddress: '10.10.0.56', memoryMiB: 2048 });
  const web1 = new VdsNode(stack, 'web1', { privateAddress: '10.10.0.30', memoryMiB: 2048 });

  const userService = new SmartStackService(stack, 'user-service', {
    ensemble: zk,
    port: 8080,
    localPort: 3210,
    mode: ServiceMode.HTTP,
    healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: healthCheckRise, fall: 2 }),
  });

  const sidecars = [
    new HaproxySidecar(app1, 'sidecar', { provides: [userService] }),
    new HaproxySidecar(app2, 'sidecar', { provides: [userService] }),
    new HaproxySidecar(web1, 'sidecar', { consumes: [userService] }),
  ];
  return { userService, app1, app2, web1, sidecars };
}
