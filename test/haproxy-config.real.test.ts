import { isInService } from '../lib/agent/haproxy-runtime';
import { HaproxyServerSlot, renderHaproxyConfig } from '../lib/render/haproxy-config';
import { SynapseConfig } from '../lib/schema/synapse-config';
import { parseSynapseConfig } from '../lib/agent/synapse-config-loader';
import { ARTICLE_SYNAPSE_CONF } from './support/haproxy-fixtures';
import { checkHaproxyConfig, freePort, startHaproxy } from './support/haproxy-process';

/** A sidecar config shaped like the one the HaproxySidecar construct renders. */
function sidecarConfig(port: number, statsPort: number, paths: { admin: string; state: string }): SynapseConfig {
  return {
    services: {
      'user-service': {
        discovery: { method: 'zookeeper', path: '/services/user-service', hosts: ['10.10.0.11:2181', '10.10.0.12:2181', '10.10.0.13:2181'] },
        haproxy: {
          port,
          bind_address: '127.0.0.1',
          server_options: 'check inter 2s rise 3 fall 2 observe layer4 error-limit 3 on-error mark-down',
          frontend: ['mode http', 'timeout client 60s'],
          backend: ['mode http', 'balance roundrobin', 'retries 3', 'option redispatch 1', 'retry-on conn-failure empty-response response-timeout',
            'http-request disable-l7-retry if !METH_GET !METH_OPTIONS', 'option httpchk GET /health', 'http-check expect status 200',
            'timeout connect 1s', 'timeout server 60s', 'timeout queue 5s', 'timeout check 1s'],
          server_slots: 16,
        },
        default_servers: [{ name: 'fallback', host: '127.0.0.1', port: 8080 }],
        use_previous_backends: true,
      },
      'billing': {
        discovery: { method: 'zookeeper', path: '/services/billing', hosts: ['10.10.0.11:2181'] },
        haproxy: { port: port + 1, server_options: 'check', listen: ['mode tcp', 'option tcplog', 'balance leastconn'] },
      },
    },
    haproxy: {
      global: ['master-worker', 'maxconn 2000', `stats socket ${paths.admin} mode 600 level admin`, 'stats timeout 30s', `server-state-file ${paths.state}`, 'hard-stop-after 30s'],
      defaults: ['mode http', 'option dontlognull', 'timeout connect 1s', 'timeout client 60s', 'timeout server 60s', 'load-server-state-from-file global'],
      extra_sections: {
        'listen haproxy-stats': [`bind 127.0.0.1:${statsPort}`, 'mode http', 'no log', 'http-request use-service prometheus-exporter if { path /metrics }', 'stats enable', 'stats uri /stats'],
      },
      socket_file_path: paths.admin,
      master_socket_file_path: '/run/haproxy/master.sock',
    },
  };
}

describe('renderHaproxyConfig output passes haproxy -c', () => {
  test("the article's synapse.conf.json (string ports, single-service form)", () => {
    const loaded = parseSynapseConfig(ARTICLE_SYNAPSE_CONF, 'article.json');
    const text = renderHaproxyConfig(loaded.config, {});
    const r = checkHaproxyConfig(text);
    expect(r.output).toContain('Configuration file is valid');
    expect(r.ok).toBe(true);
    expect(text).toContain('bind 127.0.0.1:3210');
    expect(text).toContain('server slot1 127.0.0.1:8080 check inter 2s rise 3 fall 2');
  });

  test('a sidecar config with stats, Prometheus and two services; bootstrap and with registrations', () => {
    const c = sidecarConfig(3210, 3212, { admin: '/tmp/admin.sock', state: '/tmp/server-state' });
    const everyShape: { [service: string]: HaproxyServerSlot[] }[] = [{}, {
      'user-service': [{ slot: 3, host: '10.10.0.21', port: 8080, weight: 10 }, { host: '::1', port: 8081 }, { host: 'app-2.example.invalid', port: 8080 }],
      'billing': Array.from({ length: 40 }, (_, i) => ({ host: `10.20.0.${i + 1}`, port: 9000, haproxyServerOptions: i === 0 ? 'backup' : undefined })),
    }];
    for (const backends of everyShape) {
      const r = checkHaproxyConfig(renderHaproxyConfig(c, backends));
      expect(r.output).toContain('Configuration file is valid');
      expect(r.ok).toBe(true);
    }
  });

  test('the bootstrap file runs in master-worker mode and its empty slots are in maintenance', async () => {
    const port = await freePort();
    const haproxy = await startHaproxy((p) => renderHaproxyConfig({
      services: { users: { discovery: { method: 'zookeeper', path: '/u', hosts: ['127.0.0.1:2181'] }, haproxy: { port, server_options: 'check', server_slots: 3 },
        default_servers: [{ name: 'd', host: '127.0.0.1', port: '1' }] } },
      haproxy: { socket_file_path: p.adminSocket, state_file_path: p.stateFile },
    }, {}));
    try {
      const servers = await haproxy.runtime.serversState('users');
      expect(servers.map((s) => [s.server, s.address, s.port, isInService(s)])).toEqual([
        ['slot1', '127.0.0.1', 1, true],
        ['slot2', '127.0.0.1', 1, false],
        ['slot3', '127.0.0.1', 1, false],
      ]);
      const procs = await haproxy.processes();
      expect(procs.reloads).toBe(0);
      expect(procs.workers.length).toBe(1);
    } finally {
      await haproxy.stop();
    }
  });
});
