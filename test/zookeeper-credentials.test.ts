/**
 * The ZooKeeper credentials file: its loader refuses what ssh would refuse for a key and never
 * repeats the password; the digest matches ZooKeeper's own; the agents' config fields naming it.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parseNerveConfig } from '../lib/agent/nerve-config-loader';
import { parseSynapseConfig } from '../lib/agent/synapse-config-loader';
import { readZookeeperCredentials, zookeeperDigest } from '../lib/schema/zookeeper-credentials';

const PASSWORD = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

describe('readZookeeperCredentials', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'zk-credentials-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, text: string, mode = 0o600): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  }

  /** The loader's error for the file; fails the test when it mentions the password. */
  function refusal(path: string): string {
    let message = '';
    try {
      readZookeeperCredentials(path);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).not.toBe('');
    expect(message).not.toContain(PASSWORD);
    expect(message).not.toContain(PASSWORD.slice(0, 16));
    return message;
  }

  const good = JSON.stringify({ scheme: 'digest', user: 'registrar-user-service', password: PASSWORD });

  test('reads a file of mode 0600 or 0400', () => {
    expect(readZookeeperCredentials(file('ok.json', good))).toEqual({ scheme: 'digest', user: 'registrar-user-service', password: PASSWORD });
    expect(readZookeeperCredentials(file('ok-ro.json', good, 0o400)).user).toBe('registrar-user-service');
  });

  test.each(['0644', '0640', '0604', '0620', '0660', '0606', '0601', '0610'])('refuses mode %s, naming the file and the mode', (mode) => {
    const path = file(`mode-${mode}.json`, good, parseInt(mode, 8));
    expect(refusal(path)).toBe(`${path}: (mode) = "${mode}": credentials must not be accessible by group or others: chmod 600`);
  });

  test("in systemd's credentials directory group bits (an ACL's mask) are allowed, bits for others are not", () => {
    const saved = process.env.CREDENTIALS_DIRECTORY;
    process.env.CREDENTIALS_DIRECTORY = dir;
    try {
      expect(readZookeeperCredentials(file('systemd-acl.json', good, 0o440)).user).toBe('registrar-user-service');
      const open = file('systemd-open.json', good, 0o444);
      expect(refusal(open)).toBe(`${open}: (mode) = "0444": credentials must not be accessible by group or others: chmod 600`);
      process.env.CREDENTIALS_DIRECTORY = join(dir, 'elsewhere');
      const outside = file('systemd-outside.json', good, 0o440);
      expect(refusal(outside)).toContain('(mode) = "0440"');
    } finally {
      if (saved === undefined) delete process.env.CREDENTIALS_DIRECTORY;
      else process.env.CREDENTIALS_DIRECTORY = saved;
    }
  });

  test('refuses a directory', () => {
    expect(refusal(dir)).toBe(`${dir}: (file) = ${JSON.stringify(dir)}: must be a regular file`);
  });

  test.each([
    ['not JSON, the password in the text', `user=registrar password=${PASSWORD}`, '(file) = ', 'is not valid JSON'],
    ['JSON with a trailing comma after the password', `{"scheme":"digest","user":"u","password":"${PASSWORD}",}`, '(file) = ', 'is not valid JSON'],
    ['a JSON list', `["${PASSWORD}"]`, '(file) = ', 'must hold a JSON object'],
    ['another scheme', JSON.stringify({ scheme: 'sasl', user: 'u', password: PASSWORD }), 'scheme = "sasl"', 'must be "digest"'],
    ['no scheme', JSON.stringify({ user: 'u', password: PASSWORD }), 'scheme = undefined', 'must be "digest"'],
    ['a user with a colon', JSON.stringify({ scheme: 'digest', user: 'registrar:a', password: PASSWORD }), 'user = "registrar:a"', 'no ":"'],
    ['a user with a newline', JSON.stringify({ scheme: 'digest', user: 'a\nb', password: PASSWORD }), 'user = "a\\nb"', 'letters, digits'],
    ['an empty user', JSON.stringify({ scheme: 'digest', user: '', password: PASSWORD }), 'user = ""', 'letters, digits'],
    ['an empty password', JSON.stringify({ scheme: 'digest', user: 'u', password: '' }), 'password = "(not shown)"', 'must be a non-empty string'],
    ['a numeric password', JSON.stringify({ scheme: 'digest', user: 'u', password: 12345 }), 'password = "(not shown)"', 'must be a non-empty string'],
    ['a multi-line password', JSON.stringify({ scheme: 'digest', user: 'u', password: `${PASSWORD}\n${PASSWORD}` }), 'password = "(not shown)"', 'must be one line'],
    ['a password with a trailing newline', JSON.stringify({ scheme: 'digest', user: 'u', password: `${PASSWORD}\n` }), 'password = "(not shown)"', 'must be one line'],
    ['an unknown key holding the password', JSON.stringify({ scheme: 'digest', user: 'u', password: PASSWORD, passwd: PASSWORD }), 'passwd = "(not shown)"', 'unknown key'],
  ])('refuses %s, naming the file and the field, never the password', (_what, text, field, reason) => {
    const path = file('bad.json', text);
    const message = refusal(path);
    expect(message.startsWith(`${path}: ${field}`)).toBe(true);
    expect(message).toContain(reason);
  });

  test('a missing file is refused with its path', () => {
    const path = join(dir, 'absent.json');
    expect(refusal(path)).toBe(`${path}: (file) = ${JSON.stringify(path)}: cannot be read: ENOENT`);
  });
});

test("zookeeperDigest is ZooKeeper's SHA-256 digest id", () => {
  // Computed by ZooKeeper 3.8's DigestAuthenticationProvider (digestAlg=SHA-256) for this user and password.
  expect(zookeeperDigest('registrar-user-service', PASSWORD)).toBe('registrar-user-service:ozB+4A/oWrCgKs2z/gncP6J5vkhW0qCunqFgzba2RkY=');
});

describe('the credentials fields of the agent configs', () => {
  const nerveService = {
    host: '10.10.0.21', port: 8080, reporter_type: 'zookeeper', zk_hosts: ['10.10.0.11:2181'], zk_path: '/services/user-service',
    checks: [{ type: 'tcp' }],
  };
  const synapseService = (discovery: object) => ({
    services: { 'user-service': { discovery: { method: 'zookeeper', path: '/services/user-service', hosts: ['10.10.0.11:2181'], ...discovery }, haproxy: { port: 3210 } } },
    haproxy: {},
  });

  test('nerve: zk_auth_file is optional and an absolute path', () => {
    expect(parseNerveConfig({ instance_id: 'app1', services: { s: nerveService } }).services[0].zkAuthFile).toBeUndefined();
    const withAuth = parseNerveConfig({ instance_id: 'app1', services: { s: { ...nerveService, zk_auth_file: '/etc/smartstack/zk-registrar.json' } } });
    expect(withAuth.services[0].zkAuthFile).toBe('/etc/smartstack/zk-registrar.json');
    expect(() => parseNerveConfig({ instance_id: 'app1', services: { s: { ...nerveService, zk_auth_file: 'zk.json' } } }, 'nerve.conf.json'))
      .toThrow('nerve.conf.json: services.s.zk_auth_file = "zk.json": must be an absolute path');
    expect(() => parseNerveConfig({ instance_id: 'app1', services: { s: { ...nerveService, zk_auth_file: 7 } } }, 'nerve.conf.json'))
      .toThrow('nerve.conf.json: services.s.zk_auth_file = 7: must be a non-empty string');
  });

  test('nerve: zk_read_acl is optional and a list of ZooKeeper ACL ids', () => {
    const reader = 'digest:reader:jx4XZjUtHAFGFr652rhfH6zUS4ev+mgnV0QnSWe/n+w=';
    expect(parseNerveConfig({ instance_id: 'app1', services: { s: nerveService } }).services[0].zkReadAcl).toBeUndefined();
    expect(parseNerveConfig({ instance_id: 'app1', services: { s: { ...nerveService, zk_read_acl: [reader, 'world:anyone'] } } }).services[0].zkReadAcl).toEqual([reader, 'world:anyone']);
    expect(() => parseNerveConfig({ instance_id: 'app1', services: { s: { ...nerveService, zk_read_acl: ['digest:reader'] } } }, 'nerve.conf.json'))
      .toThrow('nerve.conf.json: services.s.zk_read_acl[0] = "digest:reader": expected a ZooKeeper ACL id');
    expect(() => parseNerveConfig({ instance_id: 'app1', services: { s: { ...nerveService, zk_read_acl: ['digest:reader:abc=,world:anyone'] } } }, 'nerve.conf.json'))
      .toThrow('zk_read_acl[0]');
  });

  test('synapse: discovery.auth_file is optional, an absolute path, and kept in the config', () => {
    expect(parseSynapseConfig(synapseService({})).services[0].zkAuthFile).toBeUndefined();
    const withAuth = parseSynapseConfig(synapseService({ auth_file: '/etc/smartstack/zk-reader.json' }));
    expect(withAuth.services[0].zkAuthFile).toBe('/etc/smartstack/zk-reader.json');
    expect(withAuth.config.services['user-service'].discovery.auth_file).toBe('/etc/smartstack/zk-reader.json');
    expect(() => parseSynapseConfig(synapseService({ auth_file: 'reader.json' }), 'synapse.conf.json'))
      .toThrow('synapse.conf.json: services.user-service.discovery.auth_file = "reader.json": must be an absolute path');
  });
});
