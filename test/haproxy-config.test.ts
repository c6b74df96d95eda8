import { renderHaproxyConfig, slotName } from '../lib/render/haproxy-config';
import { haproxySafe, haproxyUnsafeReason, isIpAddress } from '../lib/schema/haproxy-safe';
import { SynapseConfig } from '../lib/schema/synapse-config';
import { parseSynapseConfig } from '../lib/agent/synapse-config-loader';
import { ARTICLE_SYNAPSE_CONF } from './support/haproxy-fixtures';

function config(overrides: Partial<SynapseConfig['haproxy']> = {}): SynapseConfig {
  return {
    services: {
      users: {
        discovery: { method: 'zookeeper', path: '/services/users', hosts: ['127.0.0.1:2181'] },
        haproxy: { port: '3210', server_options: 'check inter 2s', listen: ['mode http', 'option httpchk GET /health'], server_slots: 4 },
        default_servers: [{ name: 'local', host: '127.0.0.1', port: '8080' }],
      },
    },
    haproxy: { socket_file_path: '/run/haproxy/admin.sock', state_file_path: '/var/lib/haproxy/state', ...overrides },
  };
}

describe('renderHaproxyConfig', () => {
  test('bootstrap: default servers fill the first slots, the rest are disabled, slot names are stable', () => {
    const text = renderHaproxyConfig(config(), {});
    expect(text).toContain('  bind 127.0.0.1:3210\n');
    expect(text).toContain('  server slot1 127.0.0.1:8080 check inter 2s\n');
    expect(text).toContain('  server slot4 127.0.0.1:1 check inter 2s disabled\n');
    expect(text).not.toContain('slot5');
    expect(text).toContain('  stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners\n');
    expect(text).toContain('  server-state-file /var/lib/haproxy/state\n');
    expect(text).toContain('  load-server-state-from-file global\n');
    expect(text).toContain('  retries 3\n');
    expect(text).toContain('  option redispatch 1\n');
    expect(slotName(3)).toBe('slot3');
  });

  test('is deterministic and free of timestamps', () => {
    const a = renderHaproxyConfig(config(), { users: [{ host: '10.0.0.2', port: 80 }] });
    const b = renderHaproxyConfig(config(), { users: [{ host: '10.0.0.2', port: 80 }] });
    expect(a).toBe(b);
    expect(a).not.toMatch(/20\d\d-\d\d-\d\d/);
  });

  test('listen lines go to the side that takes them; mode to both', () => {
    const text = renderHaproxyConfig(config(), {});
    const frontend = text.slice(text.indexOf('frontend users'), text.indexOf('\nbackend users'));
    const backend = text.slice(text.indexOf('\nbackend users'));
    expect(frontend).toContain('mode http');
    expect(frontend).not.toContain('httpchk');
    expect(frontend).toContain('default_backend users');
    expect(backend).toContain('mode http');
    expect(backend).toContain('option httpchk GET /health');
  });

  test('explicit slots keep their place; others take the lowest free; more servers than slots grow the backend', () => {
    const text = renderHaproxyConfig(config(), {
      users: [
        { slot: 2, host: '10.0.0.2', port: 80, weight: 50 },
        { host: '10.0.0.1', port: 81 },
        { slot: 6, host: '10.0.0.6', port: 86, haproxyServerOptions: 'backup' },
      ],
    });
    expect(text).toContain('server slot1 10.0.0.1:81 check inter 2s\n');
    expect(text).toContain('server slot2 10.0.0.2:80 check inter 2s weight 50\n');
    expect(text).toContain('server slot5 127.0.0.1:1 check inter 2s disabled\n');
    expect(text).toContain('server slot6 10.0.0.6:86 check inter 2s backup\n');
  });

  test("the config's own lines win over the defaults written here", () => {
    const text = renderHaproxyConfig(
      config({ global: ['maxconn 1000', 'server-state-file /tmp/other'], defaults: ['mode http', 'no option redispatch', 'timeout connect 1s'] }),
      {},
    );
    expect(text).toContain('maxconn 1000');
    expect(text).not.toContain('maxconn 4096');
    expect(text).not.toContain('server-state-file /var/lib/haproxy/state');
    expect(text).not.toContain('mode tcp');
    expect(text).not.toContain('option redispatch 1');
    expect(text).not.toContain('timeout connect 2s');
    expect(text).toContain('timeout client 60s');
  });

  test('a service without a port gets a backend only; extra sections are kept', () => {
    const c = config({ extra_sections: { 'listen stats': ['bind 127.0.0.1:3212', 'mode http', 'http-request use-service prometheus-exporter if { path /metrics }'] } });
    const text = renderHaproxyConfig({ ...c, services: { users: { ...c.services.users, haproxy: { backend_name: 'users_be' } } } }, {});
    expect(text).not.toContain('frontend users');
    expect(text).toContain('backend users_be\n');
    expect(text).toContain('listen stats\n  bind 127.0.0.1:3212\n');
  });

  test.each([
    ['newline in a host', { users: [{ host: '10.0.0.1\n  server evil 1.2.3.4:80', port: 80 }] }, 'backends.users[0].host'],
    ['; in a host', { users: [{ host: '10.0.0.1;shutdown', port: 80 }] }, 'backends.users[0].host'],
    ['port 0', { users: [{ host: '10.0.0.1', port: 0 }] }, 'backends.users[0].port'],
    ['port 70000', { users: [{ host: '10.0.0.1', port: 70000 }] }, 'backends.users[0].port'],
    ['# in options', { users: [{ host: '10.0.0.1', port: 80, haproxyServerOptions: 'check # x' }] }, 'backends.users[0].haproxyServerOptions'],
  ])('rejects %s, naming the field and value', (_what, backends, field) => {
    expect(() => renderHaproxyConfig(config(), backends)).toThrow(field);
  });

  test('rejects unsafe config lines with the key path', () => {
    const c = config({ global: ['daemon', 'log /dev/log local0\nuser root'] });
    expect(() => renderHaproxyConfig(c, {})).toThrow('haproxy.global[1] = "log /dev/log local0\\nuser root": contains control character 0x0a');
  });
});

describe('haproxySafe', () => {
  test.each([
    ['10.0.0.1', 'host'],
    ['::1', 'host'],
    ['fe80::1:2', 'host'],
    ['app-1.example.com', 'host'],
    ['user-service', 'name'],
    ['8080', 'port'],
    ['check inter 2s rise 3 fall 2', 'line'],
    ['http-request return status 200 content-type "text/plain" string "ok"', 'line'],
  ] as const)('accepts %j as %s', (value, kind) => {
    expect(haproxyUnsafeReason(value, kind)).toBeUndefined();
  });

  test.each([
    ['10.0.0.1;', 'host'],
    ['a b', 'host'],
    ['-bad.example', 'host'],
    ['999.1.1.1', 'host'],
    ['1:2:3:4:5:6:7:8:9', 'host'],
    ['x/y', 'name'],
    ['', 'name'],
    ['0', 'port'],
    ['65536', 'port'],
    ['80 ', 'port'],
    [8.5, 'port'],
    ['line\nnext', 'line'],
    ['a\tb', 'line'],
    ['a; b', 'line'],
    ['a # b', 'line'],
    ['caf\u00e9', 'line'],
  ] as const)('rejects %j as %s', (value, kind) => {
    expect(haproxyUnsafeReason(value, kind)).toBeDefined();
  });

  test('the error names field and value', () => {
    expect(() => haproxySafe('services.a.host', 'x;y', 'host')).toThrow('services.a.host = "x;y": contains \';\'');
    expect(isIpAddress('127.0.0.1')).toBe(true);
    expect(isIpAddress('localhost')).toBe(false);
  });
});

describe('parseSynapseConfig', () => {
  test("accepts the article's file: single-service form, string ports", () => {
    const loaded = parseSynapseConfig(ARTICLE_SYNAPSE_CONF, 'article.json');
    expect(loaded.services[0]).toMatchObject({ name: 'user-service', port: 3210, zkPath: '/services/user-service', bindAddress: '127.0.0.1' });
    expect(loaded.services[0].defaultServers).toEqual([{ name: 'localhost', host: '127.0.0.1', port: 8080 }]);
    expect(loaded.haproxy.doSocket).toBe(true);
  });

  test.each([
    [{ services: { a: { discovery: { method: 'dns', path: '/a', hosts: ['h:1'] }, haproxy: {} } } }, 'services.a.discovery.method = "dns"'],
    [{ services: { a: { discovery: { method: 'zookeeper', path: 'a', hosts: ['h:1'] }, haproxy: {} } } }, 'services.a.discovery.path = "a"'],
    [{ services: { a: { discovery: { method: 'zookeeper', path: '/a', hosts: ['h'] }, haproxy: {} } } }, 'services.a.discovery.hosts[0] = "h"'],
    [{ services: { a: { discovery: { method: 'zookeeper', path: '/a', hosts: ['h:1'] }, haproxy: { port: '99999' } } } }, 'services.a.haproxy.port = "99999"'],
    [{ services: { a: { discovery: { method: 'zookeeper', path: '/a', hosts: ['h:1'] }, haproxy: { listen: ['mode http;x'] } } } }, 'services.a.haproxy.listen[0] = "mode http;x"'],
    [{ services: {} }, 'services = {}'],
  ])('rejects %j', (raw, message) => {
    expect(() => parseSynapseConfig(raw, 'f.json')).toThrow(`f.json: ${message}`);
  });
});
