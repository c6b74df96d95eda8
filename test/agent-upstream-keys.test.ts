/**
 * Every key of upstream synapse (v0.18.9) and nerve (v0.9.7) is implemented, refused at start
 * naming the key, or accepted with a warning naming it; unknown keys are warned about. The key
 * lists below are taken from upstream's code and README, independently of our rule table.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ConfigError } from '../lib/schema/config-error';
import { decodeRegistration } from '../lib/schema/registration-codec';
import { loadNerveConfig, parseNerveConfig } from '../lib/agent/nerve-config-loader';
import { loadSynapseConfig, parseSynapseConfig } from '../lib/agent/synapse-config-loader';
import { compatibilityTable, NERVE_KEYS, SYNAPSE_KEYS } from '../lib/schema/upstream-keys';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';

const FIXTURES = join(__dirname, 'fixtures', 'upstream');

/** Upstream synapse's keys by scope, each with a value a real config might hold. */
const SYNAPSE_UPSTREAM: { [scope: string]: { [key: string]: unknown } } = {
  '(top level)': { services: undefined, service_conf_dir: undefined, haproxy: undefined, file_output: { output_directory: '/tmp/synapse-out' }, statsd: { host: 'localhost', port: 8125 } },
  'services.*': {
    discovery: undefined, haproxy: undefined, default_servers: [{ name: 'd', host: '127.0.0.1', port: 80 }], keep_default_servers: true,
    use_previous_backends: false, backend_port_override: 8080, leader_election: true, load_test_concurrency: 3, name: 'svc',
  },
  'services.*.discovery': {
    method: 'zookeeper', path: '/services/svc', hosts: ['127.0.0.1:2181'], retry_policy: { max_attempts: 3 }, decode: { method: 'serverset' },
    discovery_jitter: 5, generator_config_path: '/config/svc', label_filters: [{ label: 'az', value: 'a', condition: 'equals' }],
    label_filter: { label: 'az', value: 'a', condition: 'equals' },
  },
  'services.*.haproxy': {
    disabled: true, port: 3210, bind_address: '127.0.0.2', bind_options: 'accept-proxy', server_port_override: 8080,
    server_options: 'check port %{port}', frontend: ['mode http'], backend: ['mode http'], backend_name: 'svc-be', listen: ['mode http'],
    backend_order: 'asc', shared_frontend: ['acl is_svc hdr_dom(host) -i svc.lb'], cookie_value_method: 'hash', use_nerve_weights: true,
  },
  'haproxy': {
    do_checks: true, check_command: 'haproxy -c -f /tmp/c.cfg', candidate_config_file_path: '/tmp/c.cfg', do_reloads: true,
    reload_command: 'true', do_writes: true, config_file_path: '/tmp/haproxy.cfg', do_socket: true, socket_file_path: ['/tmp/a.sock', '/tmp/b.sock'],
    global: ['daemon'], defaults: ['mode tcp'], extra_sections: { 'listen stats :3212': ['mode http'] }, bind_address: '127.0.0.1',
    shared_frontend: ['bind 127.0.0.1:80'], restart_interval: 2, restart_jitter: 0.1, state_file_path: '/tmp/synapse-state.json',
    state_file_ttl: 86400, server_order_seed: 42, max_server_id: 65535, use_nerve_weights: true,
  },
};

const NERVE_UPSTREAM: { [scope: string]: { [key: string]: unknown } } = {
  '(top level)': { instance_id: 'app1', services: undefined, service_conf_dir: undefined, heartbeat_path: '/tmp/nerve-heartbeat', max_repeated_report_failures: 10, statsd: { host: 'localhost' } },
  'services.*': {
    host: '127.0.0.1', port: 3000, reporter_type: 'zookeeper', zk_hosts: ['127.0.0.1:2181'], zk_path: '/services/svc', check_interval: 2, checks: undefined,
    check_mocked: true, weight: 2, haproxy_server_options: 'backup', labels: { az: 'a', rack: 7 }, use_path_encoding: true,
    node_type: 'persistent', ttl_seconds: 30, rate_limiting: { average_rate: 1 }, max_repeated_report_failures: 5, load_test_concurrency: 2,
    etcd_host: 'localhost', etcd_port: 4001, etcd_path: '/nerve',
  },
  'services.*.checks[]': {
    type: 'tcp', name: 'c', host: '127.0.0.1', port: 3001, timeout: 0.2, rise: 3, fall: 2, uri: '/health', ssl: true, headers: { Host: 'svc' },
    expect: 'OK', open_timeout: 0.3, read_timeout: 0.4, ssl_timeout: 0.5, module: 'nerve-watcher-x', username: 'guest', password: 'guest',
  },
};

function synapseWith(scope: string, key: string, value: unknown): unknown {
  const service: { [k: string]: unknown } = { discovery: { method: 'zookeeper', path: '/services/svc', hosts: ['127.0.0.1:2181'] }, haproxy: { port: 3210 } };
  const top: { [k: string]: unknown } = { services: { svc: service }, haproxy: {} };
  if (scope === '(top level)') top[key] = value;
  else if (scope === 'services.*') service[key] = value;
  else if (scope === 'services.*.discovery') (service.discovery as { [k: string]: unknown })[key] = value;
  else if (scope === 'services.*.haproxy') (service.haproxy as { [k: string]: unknown })[key] = value;
  else (top.haproxy as { [k: string]: unknown })[key] = value;
  if (key === 'shared_frontend' && scope === 'services.*.haproxy') (top.haproxy as { [k: string]: unknown }).shared_frontend = ['bind 127.0.0.1:80'];
  return top;
}

function nerveWith(scope: string, key: string, value: unknown): unknown {
  const check: { [k: string]: unknown } = { type: 'http', uri: '/health' };
  const service: { [k: string]: unknown } = { host: '127.0.0.1', port: 3000, zk_hosts: ['127.0.0.1:2181'], zk_path: '/services/svc', checks: [check] };
  const top: { [k: string]: unknown } = { instance_id: 'app1', services: { svc: service } };
  if (scope === '(top level)') top[key] = value;
  else if (scope === 'services.*') service[key] = value;
  else check[key] = value;
  return top;
}

type Outcome = { kind: 'ok'; warnings: string[] } | { kind: 'refused'; message: string };
function outcome(parse: () => { warnings: string[] }): Outcome {
  try {
    return { kind: 'ok', warnings: parse().warnings };
  } catch (e) {
    if (e instanceof ConfigError) return { kind: 'refused', message: e.message };
    throw e;
  }
}

function pathOf(scope: string, key: string): string {
  if (scope === '(top level)') return key;
  return `${scope.replace('services.*', 'services.svc').replace('[]', '[0]')}.${key}`;
}

describe.each([
  ['synapse', SYNAPSE_UPSTREAM, SYNAPSE_KEYS, (raw: unknown) => parseSynapseConfig(raw, 'synapse.conf.json'), synapseWith],
  ['nerve', NERVE_UPSTREAM, NERVE_KEYS, (raw: unknown) => parseNerveConfig(raw, 'nerve.conf.json'), nerveWith],
] as const)('%s: every upstream key is accounted for', (agent, upstream, rules, parse, withKey) => {
  const cases = Object.entries(upstream).flatMap(([scope, keys]) => Object.entries(keys).map(([key, value]) => [scope, key, value] as const));

  test.each(cases)('%s %s', (scope, key, value) => {
    const rule = rules[scope]?.[key];
    expect(rule).toBeDefined();
    if (value === undefined) return; // structural keys, exercised by every other case
    const file = `${agent}.conf.json`;
    const result = outcome(() => parse(withKey(scope, key, value)));
    const path = pathOf(scope, key);
    if (rule!.use === 'refused') {
      expect(result).toEqual({ kind: 'refused', message: expect.stringContaining(`${file}: ${path}`) });
    } else if (rule!.use === 'warned') {
      expect(result.kind).toBe('ok');
      expect((result as { warnings: string[] }).warnings.filter((w) => w.startsWith(`${file}: ${path} = `))).toHaveLength(1);
    } else {
      // Implemented: accepted, and never reported as ignored.
      if (result.kind === 'refused') throw new Error(`${path} refused: ${result.message}`);
      expect(result.warnings.filter((w) => w.startsWith(`${file}: ${path} = `) && !w.includes('only the first is used'))).toEqual([]);
    }
  });

  test('an unknown key is accepted with one warning naming it', () => {
    const result = outcome(() => parse(withKey('(top level)', 'no_such_key', 1)));
    expect(result).toEqual({ kind: 'ok', warnings: [`${agent}.conf.json: no_such_key = 1: unknown key, ignored`] });
  });
});

test('the README compatibility tables are the rule tables', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  expect(readme).toContain(compatibilityTable(SYNAPSE_KEYS));
  expect(readme).toContain(compatibilityTable(NERVE_KEYS));
});

describe("upstream's own sample configs", () => {
  test("synapse's config/synapse.conf.json loads: statsd and the check keys warned, bind_options on the bind line", () => {
    const c = loadSynapseConfig(join(FIXTURES, 'synapse.conf.json'));
    expect(c.services.map((s) => s.name)).toEqual(['service1', 'service2']);
    expect(c.warnings.map((w) => w.split(' = ')[0].split(': ')[1])).toEqual(['statsd', 'haproxy.do_checks', 'haproxy.candidate_config_file_path', 'haproxy.check_command']);
    expect(c.haproxy).toMatchObject({ doWrites: false, doReloads: false, doSocket: false });
    expect(renderHaproxyConfig(c.config, {})).toContain('bind 127.0.0.1:3213 ssl no-sslv3 crt /path/to/cert/example.pem ciphers ECDHE-ECDSA-CHACHA20-POLY1305');
  });

  test("synapse's svcdir_test.json reads its service_conf_dir, and refuses the dns watcher naming file and key", () => {
    const dir = mkdtempSync(join(tmpdir(), 'svcdir-'));
    try {
      const raw = JSON.parse(readFileSync(join(FIXTURES, 'svcdir_test.json'), 'utf8')) as { [k: string]: unknown };
      writeFileSync(join(dir, 'svcdir.json'), JSON.stringify({ ...raw, service_conf_dir: join(FIXTURES, 'synapse_services') }));
      expect(() => loadSynapseConfig(join(dir, 'svcdir.json'))).toThrow(`${join(dir, 'svcdir.json')}: services.service1.discovery.method = "dns": must be "zookeeper"`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("nerve's example/nerve.conf.json: refused for its rabbitmq check and its etcd service, naming each", () => {
    const dir = mkdtempSync(join(tmpdir(), 'nerve-sample-'));
    try {
      const raw = JSON.parse(readFileSync(join(FIXTURES, 'nerve.conf.json'), 'utf8')) as { services: { [k: string]: unknown } };
      const file = join(dir, 'nerve.conf.json');
      writeFileSync(file, JSON.stringify({ ...raw, service_conf_dir: join(FIXTURES, 'nerve_services') }));
      expect(() => loadNerveConfig(file)).toThrow(`${file}: services.etcd_service1.reporter_type = "etcd": must be "zookeeper"`);
      const { rabbitmq_service: rabbit, ...rest } = raw.services;
      writeFileSync(file, JSON.stringify({ ...raw, service_conf_dir: undefined, services: { rabbitmq_service: rabbit } }));
      expect(() => loadNerveConfig(file)).toThrow(`${file}: services.rabbitmq_service.checks[0].username = "guest": only for rabbitmq checks`);
      writeFileSync(file, JSON.stringify({ ...raw, service_conf_dir: undefined, services: rest }));
      const c = loadNerveConfig(file);
      expect(c.services.map((s) => s.name)).toEqual(['your_http_service', 'your_tcp_service']);
      expect(c.warnings.map((w) => w.split(' = ')[0].split(': ')[1])).toEqual(['max_repeated_report_failures', 'statsd']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('an unknown key of a default server is warned about, naming it', () => {
  const raw = synapseWith('services.*', 'default_servers', [{ name: 'd', host: '127.0.0.1', port: 80, labels: { az: 'a' } }]);
  expect(parseSynapseConfig(raw, 'f').warnings).toEqual(['f: services.svc.default_servers[0].labels = {"az":"a"}: unknown key, ignored']);
});

describe('inputs upstream accepts', () => {
  const base = { discovery: { method: 'zookeeper', path: '/services/svc', hosts: ['zk1:2181', 'zk2:2181/smartstack'] }, haproxy: { port: null, bind_address: '/run/svc.sock', frontend: 'mode http\ntimeout client 5s', backend: 'mode http' } };

  test('a chroot suffix prefixes the path; port null binds the address alone; string sections become lines', () => {
    const c = parseSynapseConfig({ services: { svc: base } });
    expect(c.services[0]).toMatchObject({ zkHosts: ['zk1:2181', 'zk2:2181'], zkPath: '/smartstack/services/svc' });
    const text = renderHaproxyConfig(c.config, {});
    expect(text).toContain('frontend svc\n  bind /run/svc.sock\n  mode http\n  timeout client 5s\n');
    expect(text).toContain('backend svc\n  mode http\n');
  });

  test('shared_frontend: the top-level lines open the shared frontend, each service adds its own', () => {
    const svc = { ...base, haproxy: { port: 3210, shared_frontend: ['acl is_svc hdr_dom(host) -i svc.lb', 'use_backend svc if is_svc'] } };
    const c = parseSynapseConfig({ services: { svc }, haproxy: { shared_frontend: ['bind 127.0.0.1:8081', 'mode http'] } });
    expect(renderHaproxyConfig(c.config, {})).toContain('frontend shared-frontend\n  bind 127.0.0.1:8081\n  mode http\n  acl is_svc hdr_dom(host) -i svc.lb\n  use_backend svc if is_svc\n');
    expect(() => parseSynapseConfig({ services: { svc } }, 'f')).toThrow('f: services.svc.haproxy.shared_frontend = ');
  });

  test('two different chroots are refused', () => {
    expect(() => parseSynapseConfig({ services: { svc: { ...base, discovery: { ...base.discovery, hosts: ['zk1:2181/a', 'zk2:2181/b'] } } } }, 'f'))
      .toThrow('f: services.svc.discovery.hosts[1] = "zk2:2181/b": names chroot /b, another entry /a');
  });

  test('YAML files and YAML service files in service_conf_dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'yaml-conf-'));
    try {
      mkdirSync(join(dir, 'services'));
      writeFileSync(join(dir, 'services', 'billing.yaml'), 'host: 127.0.0.1\nport: 9090\nzk_hosts: [127.0.0.1:2181]\nzk_path: /services/billing\nlabels: {az: oslo-1, rack: 7, canary: true}\nchecks:\n  - {type: tcp}\n');
      writeFileSync(join(dir, 'nerve.yaml'), `instance_id: app1\nservice_conf_dir: ${join(dir, 'services')}\nzk_session_timeout: 20\n`);
      const c = loadNerveConfig(join(dir, 'nerve.yaml'));
      expect(c.services[0]).toMatchObject({ name: 'billing', port: 9090, labels: { az: 'oslo-1', rack: 7, canary: true } });
      expect(c.zkSessionTimeoutMs).toBe(20000);
      expect(loadNerveConfig(join(dir, 'nerve.yaml')).warnings).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('session timeouts default to upstream: nerve 32 s, synapse 36 s', () => {
    expect(parseNerveConfig(nerveWith('(top level)', 'x', undefined)).zkSessionTimeoutMs).toBe(32000);
    expect(parseSynapseConfig(synapseWith('(top level)', 'x', undefined)).zkSessionTimeoutMs).toBe(36000);
  });
});

describe('per-instance haproxy_server_options: one whitelist for nerve and synapse', () => {
  test.each(['backup', 'check port 9000', 'weight 10', 'maxconn 50', 'slowstart 10s', 'backup check port 9000 weight 10 maxconn 50 slowstart 10s'])('%s is accepted by both', (options) => {
    expect(parseNerveConfig(nerveWith('services.*', 'haproxy_server_options', options)).services[0].haproxyServerOptions).toBe(options);
    expect(decodeRegistration(JSON.stringify({ host: '127.0.0.1', port: 80, haproxy_server_options: options })).ok).toBe(true);
  });

  test.each(['addr 10.0.0.1', 'crt /etc/passwd', 'check port 99999', 'backup\nserver x 1.2.3.4:80'])('%j is refused by both', (options) => {
    expect(() => parseNerveConfig(nerveWith('services.*', 'haproxy_server_options', options), 'n')).toThrow(`n: services.svc.haproxy_server_options = ${JSON.stringify(options)}`);
    expect(decodeRegistration(JSON.stringify({ host: '127.0.0.1', port: 80, haproxy_server_options: options })).ok).toBe(false);
  });
});
