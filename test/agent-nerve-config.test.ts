import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { loadNerveConfig, parseNerveConfig } from '../lib/agent/nerve-config-loader';

const service = {
  host: '10.10.0.21',
  port: '8080',
  reporter_type: 'zookeeper',
  zk_hosts: ['10.10.0.11:2181', '10.10.0.12:2181'],
  zk_path: '/services/user-service',
  checks: [{ type: 'http', uri: '/health', rise: 3, fall: 2 }],
};

describe('parseNerveConfig', () => {
  test('accepts the upstream file (string port) and applies upstream defaults', () => {
    const c = parseNerveConfig({ instance_id: 'app1', services: { 'user-service': service } });
    expect(c.instanceId).toBe('app1');
    expect(c.services[0]).toMatchObject({ name: 'user-service', port: 8080, checkIntervalMs: 500, zkPath: '/services/user-service' });
    expect(c.services[0].checks[0]).toMatchObject({ type: 'http', host: '10.10.0.21', port: 8080, uri: '/health', timeoutMs: 100, rise: 3, fall: 2 });
  });

  test.each([
    [{ instance_id: 'app/1', services: { s: service } }, 'instance_id = "app/1"'],
    [{ instance_id: 'app1', services: { s: { ...service, host: 'a b' } } }, 'services.s.host = "a b"'],
    [{ instance_id: 'app1', services: { s: { ...service, zk_hosts: ['zk1'] } } }, 'services.s.zk_hosts[0] = "zk1"'],
    [{ instance_id: 'app1', services: { s: { ...service, zk_path: 'services/x/' } } }, 'services.s.zk_path = "services/x/"'],
    [{ instance_id: 'app1', services: { s: { ...service, checks: [{ type: 'ping' }] } } }, 'services.s.checks[0].type = "ping"'],
    [{ instance_id: 'app1', services: { s: { ...service, checks: [{ type: 'http', uri: '/h', rise: 0 }] } } }, 'services.s.checks[0].rise = 0'],
    [{ instance_id: 'app1', services: { s: { ...service, haproxy_server_options: 'backup;x' } } }, 'services.s.haproxy_server_options = "backup;x"'],
    [{ instance_id: 'app1', services: { s: { ...service, weight: 1.5 } } }, 'services.s.weight = 1.5'],
    [{ instance_id: 'app1', services: {} }, 'services = {}'],
  ])('rejects %j naming key and value', (raw, message) => {
    expect(() => parseNerveConfig(raw, 'nerve.conf.json')).toThrow(`nerve.conf.json: ${message}`);
  });
});

test('loadNerveConfig reads service_conf_dir files, one service each, named after the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nerve-conf-'));
  try {
    mkdirSync(join(dir, 'services'));
    writeFileSync(join(dir, 'services', 'billing.json'), JSON.stringify({ ...service, port: 9090, zk_path: '/services/billing' }));
    writeFileSync(join(dir, 'nerve.conf.json'), JSON.stringify({ instance_id: 'app1', services: { 'user-service': service }, service_conf_dir: join(dir, 'services') }));
    expect(loadNerveConfig(join(dir, 'nerve.conf.json')).services.map((s) => [s.name, s.port])).toEqual([['billing', 9090], ['user-service', 8080]]);
    writeFileSync(join(dir, 'broken.json'), '{"instance_id": ');
    expect(() => loadNerveConfig(join(dir, 'broken.json'))).toThrow('is not valid JSON');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
