/**
 * `smartstack import`: hand-written nerve and synapse files → a program using the constructs →
 * its synthesis, whose rendered nerve and synapse files hold the same services, ports, checks and
 * paths as the inputs. Refused input names the file and key, exits 2 and writes nothing.
 */
import { execFileSync } from 'child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parseCommandLine } from '../lib/cli/command-line';
import { runImport } from '../lib/cli/import-command';
import { readEstate } from '../lib/cli/import-estate';
import { renderProgram } from '../lib/cli/import-program';
import { fileContent } from './support/cloud-config-files';

const REPO = join(__dirname, '..');
const UPSTREAM = join(__dirname, 'fixtures', 'upstream');

/** Runs the program with this checkout's constructs; returns each host's rendered nerve and synapse files. */
function synthesize(program: string, dir: string): Record<string, { nerve?: any; synapse?: any }> {
  writeFileSync(join(dir, 'main.ts'), program);
  execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', 'main.ts'], {
    cwd: dir,
    env: { ...process.env, TS_NODE_PROJECT: join(REPO, 'tsconfig.dev.json'), NODE_PATH: join(REPO, 'node_modules') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stack = JSON.parse(readFileSync(join(dir, 'cdktf.out', 'stacks', 'imported', 'cdk.tf.json'), 'utf8'));
  const hosts: Record<string, { nerve?: any; synapse?: any }> = {};
  for (const resource of Object.values<any>(stack.resource.null_resource)) {
    const userData = resource.provisioner?.find((p: any) => p.file?.destination?.endsWith('/user-data'))?.file.content as string | undefined;
    if (!userData) continue;
    const host = String(resource['//'].metadata.path).split('/')[1];
    // The ACL entries hold Terraform expressions (evaluated at apply), with quotes inside: left out of the parse.
    const read = (path: string) => (userData.includes(`path: ${path}\n`) ? JSON.parse(fileContent(userData, path).replace(/\$\{[^}]*\}/g, 'expression')) : undefined);
    hosts[host] = { nerve: read('/etc/smartstack/nerve.conf.json'), synapse: read('/etc/smartstack/synapse.conf.json') };
  }
  return hosts;
}

/** What a rendered nerve file says of each service: registration path, port, check. */
const nerveServices = (nerve: any) =>
  Object.fromEntries(Object.values<any>(nerve.services).map((s) => [s.zk_path, { port: s.port, check: { type: s.checks[0].type, uri: s.checks[0].uri, rise: s.checks[0].rise, fall: s.checks[0].fall } }]));
/** What a rendered synapse file says of each service: registration path and local port. */
const synapseServices = (synapse: any) => Object.fromEntries(Object.values<any>(synapse.services).map((s) => [s.discovery.path, s.haproxy.port]));

describe('smartstack import', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'smartstack-import-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("upstream's sample files: the synthesis renders the same services, ports, checks and paths", () => {
    // Laid out as in upstream's repositories: service_conf_dir is relative to where the agent runs.
    mkdirSync(join(dir, 'example'));
    cpSync(join(UPSTREAM, 'nerve.conf.json'), join(dir, 'example', 'nerve.conf.json'));
    cpSync(join(UPSTREAM, 'nerve_services'), join(dir, 'example', 'nerve_services'), { recursive: true });
    mkdirSync(join(dir, 'config'));
    cpSync(join(UPSTREAM, 'synapse.conf.json'), join(dir, 'config', 'synapse.conf.json'));
    const cwd = process.cwd();
    process.chdir(dir);
    let estate;
    try {
      estate = readEstate(['example/nerve.conf.json', 'config/synapse.conf.json']);
    } finally {
      process.chdir(cwd);
    }
    const program = renderProgram(estate, { library: join(REPO, 'lib'), addresses: { localhost: '10.0.0.11' } });
    // Nothing the program cannot say is dropped silently.
    for (const key of ['statsd', 'max_repeated_report_failures', 'reporter_type = "etcd"', 'checks[0].type = "rabbitmq"', 'services.service1.haproxy']) {
      expect(program).toMatch(new RegExp(`^//.*${key.replace(/[[\]().*"]/g, '\\$&')}`, 'm'));
    }
    // Upstream's local ports 3213 and 3214 are this project's metrics ports: moved, and said so.
    expect(program).toContain("host mymachine: a service uses port 3213, so the program moves an agent's metrics to 13213");
    const hosts = synthesize(program, dir);
    const input = JSON.parse(readFileSync(join(UPSTREAM, 'nerve.conf.json'), 'utf8'));
    const expected = Object.fromEntries(
      // A check of a kind without a construct (rabbitmq) becomes a tcp check of the port, with the defaults.
      Object.values<any>(input.services).map((s) => [s.zk_path, { port: s.port, check: JSON.parse(JSON.stringify({ type: s.checks[0].type === 'http' ? 'http' : 'tcp', uri: s.checks[0].uri, rise: s.checks[0].rise, fall: s.checks[0].fall })) }]),
    );
    const rendered = nerveServices(hosts.mymachine.nerve);
    expect(Object.keys(rendered).sort()).toEqual(Object.keys(expected).sort());
    expect(rendered).toMatchObject(expected);
    const synapse = JSON.parse(readFileSync(join(UPSTREAM, 'synapse.conf.json'), 'utf8'));
    expect(synapseServices(hosts.mymachine.synapse)).toEqual(Object.fromEntries(Object.values<any>(synapse.services).map((s) => [s.discovery.path, s.haproxy.port])));
  }, 120000);

  test('a three-host estate, one folder per host, JSON and YAML: who provides and consumes what, weights', () => {
    const zkHosts = ['zk1.example.com:2181', 'zk2.example.com:2181', 'zk3.example.com:2181'];
    const nerve = (host: string, services: Record<string, object>) => ({ instance_id: host, services });
    const registered = (address: string, path: string, port: number, extra: object = {}) => ({
      host: address, port, reporter_type: 'zookeeper', zk_hosts: zkHosts, zk_path: path, check_interval: 2,
      checks: [{ type: 'http', uri: '/health', timeout: 1, rise: 3, fall: 2 }], ...extra,
    });
    for (const host of ['app1', 'app2', 'web1']) mkdirSync(join(dir, 'estate', host), { recursive: true });
    writeFileSync(join(dir, 'estate', 'app1', 'nerve.conf.json'), JSON.stringify(nerve('app1', {
      users: registered('10.0.0.21', '/services/users', 8080),
      billing: { ...registered('10.0.0.21', '/services/billing', 9090), checks: [{ type: 'tcp', rise: 2, fall: 2 }] },
    })));
    writeFileSync(join(dir, 'estate', 'app2', 'nerve.conf.json'), JSON.stringify(nerve('app2', { users_1: registered('10.0.0.22', '/services/users', 8080, { weight: 5 }) })));
    writeFileSync(join(dir, 'estate', 'web1', 'synapse.conf.yaml'), [
      'services:',
      '  users:',
      `    discovery: { method: zookeeper, path: /services/users, hosts: [${zkHosts.join(', ')}] }`,
      '    haproxy: { port: 3210, server_options: check inter 2s rise 3 fall 2 }',
      '  billing:',
      `    discovery: { method: zookeeper, path: /services/billing, hosts: [${zkHosts.join(', ')}] }`,
      '    haproxy: { port: 3211 }',
      'haproxy:',
      '  reload_command: service haproxy reload',
      '',
    ].join('\n'));
    const addresses = { 'zk1.example.com': '10.0.0.11', 'zk2.example.com': '10.0.0.12', 'zk3.example.com': '10.0.0.13', web1: '10.0.0.31' };
    const program = renderProgram(readEstate([join(dir, 'estate')], addresses), { library: join(REPO, 'lib'), addresses });
    const hosts = synthesize(program, dir);
    expect(Object.keys(hosts).sort()).toEqual(['app1', 'app2', 'web1', 'zk1', 'zk2', 'zk3']);
    expect(nerveServices(hosts.app1.nerve)).toEqual({
      '/services/users': { port: 8080, check: { type: 'http', uri: '/health', rise: 3, fall: 2 } },
      '/services/billing': { port: 9090, check: { type: 'tcp', rise: 2, fall: 2 } },
    });
    expect(Object.values<any>(hosts.app2.nerve.services).map((s) => [s.zk_path, s.weight])).toEqual([['/services/users', 5]]);
    expect(hosts.app1.synapse).toBeUndefined();
    expect(synapseServices(hosts.web1.synapse)).toEqual({ '/services/users': 3210, '/services/billing': 3211 });
    expect(hosts.web1.nerve).toBeUndefined();
    // The ensemble is the three hosts the files name, at the addresses given.
    expect(hosts.web1.synapse.services.users.discovery.hosts.map((h: string) => h.split(':')[0]).sort()).toEqual(['10.0.0.11', '10.0.0.12', '10.0.0.13']);
  }, 120000);

  describe('refused input: the file and key named, exit 2, nothing written', () => {
    const run = (args: string[]) => {
      const out = join(dir, 'main.ts');
      const errors: string[] = [];
      const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (errors.push(String(chunk)), true));
      let code: number;
      try {
        code = runImport(parseCommandLine({ name: 'import', summary: '', description: '', positionals: [{ name: 'PATH', description: '', variadic: true }], options: [{ name: 'address', value: 'A', description: '' }, { name: 'out', value: 'F', description: '' }] }, [...args, '--out', out]));
      } finally {
        spy.mockRestore();
      }
      return { code, stderr: errors.join(''), written: existsSync(out) || existsSync(`${out}.tmp`) };
    };

    test('an unreadable file', () => {
      expect(run([join(dir, 'missing.json')])).toEqual({ code: 2, stderr: expect.stringContaining(`${join(dir, 'missing.json')}: no such file or folder`), written: false });
    });

    test('a file of neither agent', () => {
      writeFileSync(join(dir, 'other.json'), JSON.stringify({ listen: 80 }));
      expect(run([join(dir, 'other.json')])).toEqual({ code: 2, stderr: expect.stringContaining(`${join(dir, 'other.json')}: neither a nerve file`), written: false });
    });

    test('a key that cannot be imported', () => {
      writeFileSync(join(dir, 'nerve.json'), JSON.stringify({ instance_id: 'a', services: { users: { host: '10.0.0.1', port: 'eighty', zk_hosts: ['10.0.0.11:2181'], zk_path: '/services/users', checks: [] } } }));
      expect(run([join(dir, 'nerve.json')])).toEqual({ code: 2, stderr: expect.stringContaining(`${join(dir, 'nerve.json')}: services.users.port: expected a TCP port, found "eighty"`), written: false });
    });

    test('invalid YAML', () => {
      writeFileSync(join(dir, 'synapse.yaml'), 'services: [unclosed\n');
      expect(run([join(dir, 'synapse.yaml')])).toEqual({ code: 2, stderr: expect.stringContaining(`${join(dir, 'synapse.yaml')}: not valid YAML`), written: false });
    });

    test('a host without an address', () => {
      writeFileSync(join(dir, 'synapse.json'), JSON.stringify({ services: { users: { discovery: { method: 'zookeeper', path: '/services/users', hosts: ['10.0.0.11:2181'] }, default_servers: [{ host: '10.0.0.9', port: 80 }] } } }));
      expect(run([join(dir, 'synapse.json')])).toEqual({ code: 2, stderr: expect.stringContaining('host host1 has no address in its files'), written: false });
      expect(run([join(dir, 'synapse.json'), '--address', 'host1=10.0.0.5']).code).toBe(0);
    });
  });
});
