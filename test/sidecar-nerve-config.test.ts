import { HealthCheck } from '../lib';
import { nerveConfig, NerveSpec, renderNerveConfig } from '../lib/render/nerve-config';
import { NerveConfig } from '../lib/schema/nerve-config';

const zkHosts = ['10.10.0.11:2181', '10.10.0.12:2181', '10.10.0.13:2181'];

const spec: NerveSpec = {
  instanceId: 'app1',
  services: [
    {
      name: 'user-service',
      host: '10.10.0.55',
      port: 8080,
      zkHosts,
      zkPath: '/services/user-service',
      healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: 3, fall: 2, expectBody: 'ok' }),
      weight: 10,
      labels: { zone: 'oslo-1', az: 'a' },
    },
    {
      name: 'cache',
      host: '10.10.0.55',
      port: 6379,
      zkHosts,
      zkPath: '/services/cache',
      healthCheck: HealthCheck.tcp({ intervalSeconds: 0.5, timeoutSeconds: 0.2 }),
    },
  ],
  metricsPort: 3213,
};

describe('nerve.conf.json renderer', () => {
  test('writes the upstream keys, in order, services sorted by name', () => {
    const parsed = JSON.parse(renderNerveConfig(spec)) as NerveConfig;
    expect(Object.keys(parsed)).toEqual(['instance_id', 'services', 'metrics_port']);
    expect(parsed.instance_id).toBe('app1');
    expect(Object.keys(parsed.services)).toEqual(['cache', 'user-service']);

    const users = parsed.services['user-service'];
    expect(Object.keys(users)).toEqual(['host', 'port', 'reporter_type', 'zk_hosts', 'zk_path', 'check_interval', 'checks', 'weight', 'labels']);
    expect(users).toMatchObject({
      host: '10.10.0.55',
      port: 8080,
      reporter_type: 'zookeeper',
      zk_hosts: zkHosts,
      zk_path: '/services/user-service',
      check_interval: 2,
      weight: 10,
      labels: { az: 'a', zone: 'oslo-1' },
    });
    expect(Object.keys(users.labels!)).toEqual(['az', 'zone']);
    expect(users.checks).toEqual([{ type: 'http', name: 'user-service http /health', uri: '/health', timeout: 1, rise: 3, fall: 2, expect: 'ok' }]);
  });

  test('a TCP check has no uri, and durations stay in seconds', () => {
    const cache = nerveConfig(spec).services.cache;
    expect(cache.check_interval).toBe(0.5);
    expect(cache.checks).toEqual([{ type: 'tcp', name: 'cache tcp', timeout: 0.2, rise: 3, fall: 2 }]);
    expect(cache).not.toHaveProperty('weight');
    expect(cache).not.toHaveProperty('labels');
  });

  test('the Ruby gem gets no metrics_port when none is given', () => {
    expect(nerveConfig({ ...spec, metricsPort: undefined })).not.toHaveProperty('metrics_port');
  });

  test('is deterministic: the same spec in any order gives the same bytes', () => {
    const reordered: NerveSpec = { ...spec, services: [...spec.services].reverse() };
    expect(renderNerveConfig(reordered)).toBe(renderNerveConfig(spec));
    expect(renderNerveConfig(spec).endsWith('}\n')).toBe(true);
  });
});
