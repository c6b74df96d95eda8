import { HealthCheck } from '../lib';
import { ConsumedServiceSpec, haproxyDuration, renderSynapseConfig, synapseConfig, SynapseSpec } from '../lib/render/synapse-config';
import { SynapseConfig, SynapseServiceConfig } from '../lib/schema/synapse-config';

const zkHosts = ['10.10.0.11:2181', '10.10.0.12:2181', '10.10.0.13:2181'];

const users: ConsumedServiceSpec = {
  name: 'user-service',
  localPort: 3210,
  mode: 'http',
  zkHosts,
  zkPath: '/services/user-service',
  healthCheck: HealthCheck.http({ path: '/health', intervalSeconds: 2, rise: 3, fall: 2 }),
  balance: 'roundrobin',
  retries: 3,
  redispatch: true,
  retryOn: ['conn-failure', 'empty-response', 'response-timeout'],
  retryNonIdempotent: false,
  connectTimeoutMs: 1000,
  clientTimeoutSeconds: 60,
  serverTimeoutSeconds: 60,
  queueTimeoutSeconds: 5,
  serverSlots: 16,
  defaultServers: [],
  keepDefaultServers: false,
};

const spec: SynapseSpec = {
  services: [users],
  haproxy: {
    maxConnections: 4096,
    statsPort: 3212,
    configFilePath: '/var/lib/smartstack/haproxy/haproxy.cfg',
    adminSocketPath: '/run/smartstack-haproxy/admin.sock',
    masterSocketPath: '/run/smartstack-haproxy/master.sock',
    serverStateFilePath: '/var/lib/smartstack/haproxy/server-state',
    synapseStateFilePath: '/var/lib/smartstack/synapse/state.json',
    socketOwner: 'synapse',
  },
  metricsPort: 3214,
};

/** The article's synapse.conf.json, verbatim. */
const ARTICLE_EXAMPLE = `{
"service": {
"name": "user-service",
"default_servers": [
{ "name": "localhost", "host": "127.0.0.1", "port": "8080" }
],
"discovery": {
"method": "zookeeper",
"path": "/services/user-service",
"hosts": ["zk1.coolvds.net:2181", "zk2.coolvds.net:2181"]
},
"haproxy": {
"port": 3210,
"server_options": "check inter 2s rise 3 fall 2",
"listen": [
"mode http",
"option httpchk GET /health"
]
}
}
}`;

describe('synapse.conf.json renderer', () => {
  test('writes the upstream top-level and haproxy keys, with what the Ruby gem requires', () => {
    const parsed = JSON.parse(renderSynapseConfig(spec)) as SynapseConfig;
    expect(Object.keys(parsed)).toEqual(['services', 'haproxy', 'metrics_port']);
    expect(Object.keys(parsed.haproxy)).toEqual([
      'global', 'defaults', 'extra_sections', 'config_file_path', 'reload_command', 'socket_file_path',
      'do_writes', 'do_reloads', 'do_socket', 'use_nerve_weights', 'state_file_path', 'restart_interval', 'bind_address', 'master_socket_file_path',
    ]);
    // Upstream refuses to start without global, defaults and reload_command, and wants the path
    // that goes with each do_* switch.
    expect(parsed.haproxy).toMatchObject({
      do_writes: true,
      config_file_path: spec.haproxy.configFilePath,
      do_socket: true,
      socket_file_path: spec.haproxy.adminSocketPath,
      do_reloads: true,
      restart_interval: 2,
      bind_address: '127.0.0.1',
    });
    expect(parsed.haproxy.reload_command).toBe(
      '/usr/sbin/haproxy -c -q -f /var/lib/smartstack/haproxy/haproxy.cfg && echo reload | /usr/bin/socat -t 30 stdio unix-connect:/run/smartstack-haproxy/master.sock',
    );
  });

  test('global: master-worker, a 0600 admin socket owned by synapse, a server-state file, maxconn', () => {
    const { global, defaults, extra_sections } = synapseConfig(spec).haproxy;
    expect(global).toEqual(expect.arrayContaining([
      'master-worker',
      'maxconn 4096',
      'stats socket /run/smartstack-haproxy/admin.sock mode 600 level admin user synapse',
      'server-state-file /var/lib/smartstack/haproxy/server-state',
    ]));
    expect(defaults).toContain('load-server-state-from-file global');
    expect(extra_sections).toEqual({
      'listen haproxy-stats': expect.arrayContaining([
        'bind 127.0.0.1:3212',
        'http-request use-service prometheus-exporter if { path /metrics }',
        'stats uri /stats',
      ]),
    });
  });

  test('each service: discovery, a 127.0.0.1 frontend, and a backend tuned to hide a dying instance', () => {
    const service = synapseConfig(spec).services['user-service'];
    expect(Object.keys(service)).toEqual(['discovery', 'haproxy', 'use_previous_backends']);
    expect(service.discovery).toEqual({ method: 'zookeeper', path: '/services/user-service', hosts: zkHosts });
    expect(service.use_previous_backends).toBe(true);
    expect(service.haproxy).toEqual({
      port: 3210,
      bind_address: '127.0.0.1',
      server_options: 'check inter 2s rise 3 fall 2 observe layer4 error-limit 3 on-error mark-down',
      frontend: ['mode http', 'timeout client 60s'],
      backend: [
        'mode http',
        'balance roundrobin',
        'retries 3',
        'option redispatch 1',
        'retry-on conn-failure empty-response response-timeout',
        'http-request disable-l7-retry if !METH_GET !METH_OPTIONS',
        'option httpchk GET /health',
        'timeout connect 1s',
        'timeout server 60s',
        'timeout queue 5s',
        'timeout check 1s',
      ],
      server_slots: 16,
    });
  });

  test('TCP services, default servers and explicit checks', () => {
    const cache: ConsumedServiceSpec = {
      ...users,
      name: 'cache',
      localPort: 3300,
      mode: 'tcp',
      retryOn: [],
      balance: 'leastconn',
      redispatch: false,
      connectTimeoutMs: 250,
      healthCheck: HealthCheck.tcp({ intervalSeconds: 0.5, timeoutSeconds: 0.25 }),
      defaultServers: [{ name: 'legacy', host: '10.20.0.5', port: 6379 }],
      keepDefaultServers: true,
    };
    const checked: ConsumedServiceSpec = {
      ...users,
      name: 'orders',
      localPort: 3211,
      balance: 'source',
      retryNonIdempotent: true,
      healthCheck: HealthCheck.http({ path: '/ready?deep=1', expectStatus: 204, expectBody: 'ok' }),
    };
    const services = synapseConfig({ ...spec, services: [users, cache, checked] }).services;
    expect(Object.keys(services)).toEqual(['cache', 'orders', 'user-service']);
    expect(services.cache.haproxy.backend).toEqual([
      'mode tcp', 'balance leastconn', 'retries 3', 'no option redispatch',
      'timeout connect 250ms', 'timeout server 60s', 'timeout queue 5s', 'timeout check 250ms',
    ]);
    expect(services.cache.haproxy.server_options).toContain('inter 500ms');
    expect(services.cache.default_servers).toEqual([{ name: 'legacy', host: '10.20.0.5', port: 6379 }]);
    expect(services.cache.keep_default_servers).toBe(true);
    expect(services.orders.haproxy.backend).toEqual(expect.arrayContaining([
      'balance source',
      'hash-type consistent',
      'option httpchk GET /ready?deep=1', 'http-check expect status 204', 'http-check expect string ok',
    ]));
    expect(services.orders.haproxy.backend).not.toContain('http-request disable-l7-retry if !METH_GET !METH_OPTIONS');
  });

  test('the Ruby gem gets no metrics_port when none is given', () => {
    expect(synapseConfig({ ...spec, metricsPort: undefined })).not.toHaveProperty('metrics_port');
  });

  test('durations: whole seconds as s, anything finer as ms', () => {
    expect([haproxyDuration(2), haproxyDuration(0.5), haproxyDuration(1.25), haproxyDuration(60)]).toEqual(['2s', '500ms', '1250ms', '60s']);
  });

  test('is deterministic: the same spec in any order gives the same bytes', () => {
    const other = { ...users, name: 'orders', localPort: 3211 };
    expect(renderSynapseConfig({ ...spec, services: [users, other] })).toBe(renderSynapseConfig({ ...spec, services: [other, users] }));
  });

  test("the article's own synapse example maps onto the same schema", () => {
    const { service } = JSON.parse(ARTICLE_EXAMPLE) as { service: SynapseServiceConfig & { name: string } };
    const { name, ...rest } = service;
    // Upstream keys the service by name; with that, the article's file is a SynapseConfig service,
    // string ports included (the type says so at compile time, the keys at run time).
    const article: SynapseServiceConfig = rest;
    const ours = synapseConfig(spec).services[name];
    expect(name).toBe('user-service');
    const known = ['discovery', 'haproxy', 'default_servers', 'keep_default_servers', 'use_previous_backends'];
    expect(Object.keys(article).filter((k) => !known.includes(k))).toEqual([]);
    expect(Object.keys(article.discovery)).toEqual(Object.keys(ours.discovery));
    expect(article.discovery.method).toBe(ours.discovery.method);
    expect(article.discovery.path).toBe(ours.discovery.path);
    expect(article.default_servers).toEqual([{ name: 'localhost', host: '127.0.0.1', port: '8080' }]);
    const haproxyKeys = ['port', 'bind_address', 'server_options', 'listen', 'frontend', 'backend', 'backend_name', 'server_slots'];
    expect(Object.keys(article.haproxy).filter((k) => !haproxyKeys.includes(k))).toEqual([]);
    // The same service, rendered by us: same local port, the same check, mode and timing.
    expect(ours.haproxy.port).toBe(article.haproxy.port);
    expect(ours.haproxy.server_options!.startsWith(article.haproxy.server_options!)).toBe(true);
    for (const line of article.haproxy.listen!) {
      expect([...ours.haproxy.frontend!, ...ours.haproxy.backend!]).toContain(line);
    }
  });
});
