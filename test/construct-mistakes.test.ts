/**
 * Mistakes a user makes in a stack, each caught at the line that makes it, with the construct's
 * path, the field and the value in the message, and the rule the message states being the one
 * that refused the value.
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, TerraformStack } from 'cdktf';
import { AgentRuntime, HaproxySidecar, OperatingSystem, SmartStackService, ValidationError, VdsNode } from '../lib';
import { readSynthesizedDocuments, readSynthesizedStack, synthesizedDocumentVariables } from '../lib/cloud-init/synthesized-documents';
import { fileContent } from './support/cloud-config-files';
import { meshFixture, thrownMessage } from './support/sidecar-fixtures';

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

describe('hosts', () => {
  test('two hosts with the same private address: the second is refused, naming the first', () => {
    const f = meshFixture();
    f.host('app1', 55);
    const e = thrown(() => f.host('app2', 55));
    expect(e).toBeInstanceOf(ValidationError);
    expect(e.message).toMatch(/^VdsNode 'test\/app2': privateAddress = "10\.10\.0\.55": already the private address of VdsNode 'test\/app1'/);
  });

  test('two hosts with the same host name: the second is refused, naming the first', () => {
    const f = meshFixture();
    f.host('app1', 55);
    const message = thrownMessage(() => new VdsNode(f.stack, 'app1-new', { hostname: 'app1', privateAddress: '10.10.0.56', memoryMiB: 2048 }));
    expect(message).toMatch(/^VdsNode 'test\/app1-new': hostname = "app1": already the host name of VdsNode 'test\/app1': .*nerve registers the host name as its instance id/);
  });

  test('a refused host claims neither its address nor its name', () => {
    const f = meshFixture();
    expect(() => new VdsNode(f.stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 10 })).toThrow(/memoryMiB = 10/);
    expect(() => new VdsNode(f.stack, 'app1b', { hostname: 'app1', privateAddress: '10.10.0.55', memoryMiB: 2048 })).not.toThrow();
  });

  test('the same address in two stacks (two sites) is accepted', () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'mistakes-')) });
    for (const site of ['oslo', 'bergen']) new VdsNode(new TerraformStack(app, site), 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048 });
  });

  test.each([
    ['0.0.0.0', '0.0.0.0/8'],
    ['0.1.2.3', '0.0.0.0/8'],
    ['127.0.0.1', '127.0.0.0/8 is loopback'],
    ['127.77.0.3', '127.0.0.0/8 is loopback'],
    ['224.0.0.1', '224.0.0.0/4 is multicast'],
    ['255.255.255.255', '255.255.255.255 is broadcast'],
  ])('privateAddress %s is refused: %s', (address, rule) => {
    const f = meshFixture();
    const message = thrownMessage(() => new VdsNode(f.stack, 'app1', { privateAddress: address, memoryMiB: 2048 }));
    expect(message).toMatch(new RegExp(`^VdsNode 'test/app1': privateAddress = "${address.replace(/\./g, '\\.')}": an address in `));
    expect(message).toContain(rule);
  });

  test('an operatingSystem the package does not know (from plain JavaScript) is refused, listing the known ones', () => {
    const f = meshFixture();
    const message = thrownMessage(() => new VdsNode(f.stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 2048, operatingSystem: 'centos-7' as OperatingSystem }));
    expect(message).toBe(`VdsNode 'test/app1': operatingSystem = "centos-7": expected one of OperatingSystem.DEBIAN_12, OperatingSystem.UBUNTU_24_04 (debian-12, ubuntu-24.04)`);
  });
});

describe('messages state the rule that refused the value', () => {
  test.each([
    ['a 101-character name, past HAProxy\'s limit too', 'u'.repeat(101)],
    ['a name with a space', 'user service'],
    ['a name with a colon, which HAProxy allows', 'users:v2'],
    ['a name with a ;', 'users;x'],
  ])('serviceName: %s', (_, name) => {
    const f = meshFixture();
    const message = thrownMessage(() => new SmartStackService(f.stack, 'users', { serviceName: name, ensemble: f.zk, port: 8080 }));
    expect(message).toBe(
      `SmartStackService 'test/users': serviceName = ${JSON.stringify(name)}: expected lower-case letters, digits, _, . and -, starting with a letter or digit, at most 63 (it names HAProxy sections and ZooKeeper nodes)`,
    );
  });

  test('a 63-character service name is accepted and a 64-character one refused: the limit the message states', () => {
    const f = meshFixture();
    expect(() => new SmartStackService(f.stack, 'a', { serviceName: 'a'.repeat(63), ensemble: f.zk, port: 8080 })).not.toThrow();
    expect(thrownMessage(() => new SmartStackService(f.stack, 'b', { serviceName: 'b'.repeat(64), ensemble: f.zk, port: 8080 }))).toContain('at most 63');
  });

  test.each([
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
  ])('a port of %s is shown as %s, not null', (value, shown) => {
    const f = meshFixture();
    expect(thrownMessage(() => new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: value }))).toBe(`SmartStackService 'test/users': port = ${shown}: expected a TCP port 1-65535`);
    expect(thrownMessage(() => new VdsNode(f.stack, 'app1', { privateAddress: '10.10.0.55', memoryMiB: value }))).toBe(`VdsNode 'test/app1': memoryMiB = ${shown}: expected a whole number of MiB, at least 512`);
  });

  test("a local port on 3212 is the consumed service's to change, not a statsPort the user never set", () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, localPort: 3212 });
    const message = thrownMessage(() => new HaproxySidecar(f.host('web1', 30), 'sidecar', { consumes: [users] }));
    expect(message).toBe(
      "HaproxySidecar 'test/web1/sidecar': consumes[users].localPort = 3212: the sidecar serves HAProxy's stats on port 3212 by default (statsPort), " +
        "so test/users cannot use it as its localPort: choose another localPort, or set this sidecar's statsPort",
    );
  });

  test('a statsPort the user set to a consumed local port is blamed on statsPort', () => {
    const f = meshFixture();
    const users = new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, localPort: 3210 });
    const message = thrownMessage(() => new HaproxySidecar(f.host('web1', 30), 'sidecar', { consumes: [users], statsPort: 3210 }));
    expect(message).toMatch(/^HaproxySidecar 'test\/web1\/sidecar': statsPort = 3210: port 3210 on host web1 is already used by test\/web1\/sidecar \(consumes\[users\]\.localPort\)/);
  });
});

describe('a service that lists its providers', () => {
  // One topology, three orders: only the line that creates users moves. users names app1 (whose
  // sidecar lists nothing, and after which the program adds to app1 itself), app2 (which also
  // provides orders) and web1 (which consumes orders); web2 consumes both and comes last, since it
  // needs users to exist.
  const ORDERS = ['service first', 'service between the sidecars', 'sidecars first'] as const;
  type Order = (typeof ORDERS)[number];

  function synthesize(order: Order) {
    const outdir = mkdtempSync(join(tmpdir(), 'mistakes-order-'));
    const app = new App({ outdir });
    const stack = new TerraformStack(app, 'test');
    const f = meshFixture({}, stack);
    const [app1, app2, web1, web2] = [f.host('app1', 55), f.host('app2', 56), f.host('web1', 30), f.host('web2', 31)];
    const orders = new SmartStackService(stack, 'orders', { ensemble: f.zk, port: 9000, localPort: 3211 });
    let users: SmartStackService | undefined;
    const createUsers = () => (users = new SmartStackService(stack, 'users', { ensemble: f.zk, port: 8080, localPort: 3210, providers: [app1, app2, web1] }));
    if (order === 'service first') createUsers();
    const sidecars = [new HaproxySidecar(app1, 'sidecar')];
    app1.addReadinessCheck({ description: 'the app answers', script: 'true' });
    app1.cloudConfig.addRunCommand(['touch', '/run/app-ready']);
    app1.cloudConfig.addFirewallRule({ description: 'app metrics', ports: [9100], sources: ['10.10.0.0/24'] });
    if (order === 'service between the sidecars') createUsers();
    sidecars.push(new HaproxySidecar(app2, 'sidecar', { provides: [orders] }), new HaproxySidecar(web1, 'sidecar', { consumes: [orders] }));
    if (order === 'sidecars first') createUsers();
    sidecars.push(new HaproxySidecar(web2, 'sidecar', { consumes: [users!, orders] }));
    app.synth();
    const json = readFileSync(join(outdir, 'stacks', 'test', 'cdk.tf.json'), 'utf8');
    const synthesized = readSynthesizedStack(outdir, 'test');
    const stackJson = synthesized.terraform as Record<string, any>;
    const variables = Object.fromEntries(synthesizedDocumentVariables(synthesized).map((name) => [name, 'x'.repeat(32)]));
    const documents = readSynthesizedDocuments(synthesized, variables);
    const document = (hostname: string) => documents.find((d) => d.hostname === hostname)!;
    const nerve = (hostname: string) => fileContent(document(hostname).userData, '/etc/smartstack/nerve.conf.json');
    return { json, stackJson, document, nerve, sidecars, ports: [app1, app2, web1].map((h) => [8080, 3213].map((p) => h.findPortOwner(p))) };
  }

  test.each(ORDERS.slice(1))('created with the %s, the synthesized stack is byte for byte the one with the service first', (order) => {
    const first = synthesize('service first');
    const other = synthesize(order);
    expect(other.json).toBe(first.json);
    for (const host of ['app1', 'app2', 'web1']) {
      expect(other.nerve(host)).toBe(first.nerve(host));
      expect(Object.keys(JSON.parse(other.nerve(host)).services)).toEqual(host === 'app2' ? ['orders', 'users'] : ['users']);
    }
    expect(other.sidecars.map((s) => s.provides.map((p) => p.serviceName))).toEqual([['users'], ['orders', 'users'], ['users'], []]);
    expect(other.ports).toEqual(first.ports);
  });

  test("what the program adds to a host after its sidecar stays after the sidecar's part, though that is written later", () => {
    const app1 = synthesize('sidecars first').document('app1');
    const before = (text: string, a: string, b: string) => expect(text.indexOf(a)).toBeLessThan(text.indexOf(b));
    expect(app1.applyScript).toContain("begin 'the app answers'");
    before(app1.applyScript, "begin 'nerve registers users again'", "begin 'the app answers'");
    const steps = fileContent(app1.userData, '/usr/lib/smartstack/host-steps.sh');
    expect(steps).toContain("run 'touch' '/run/app-ready'");
    before(steps, "begin 'agents'\\'' package", "run 'touch' '/run/app-ready'");
    const nft = fileContent(app1.userData, '/etc/smartstack/nftables.nft');
    before(nft, 'comment "smartstack users provided"', 'comment "app metrics"');
  });

  test('whatever the order, providers roll in the order their sidecars were created', () => {
    const { stackJson } = synthesize('sidecars first');
    const resources = stackJson.resource.null_resource as Record<string, { depends_on?: string[] }>;
    const waitsFor = (host: string) => resources[Object.keys(resources).find((k) => k.startsWith(`${host}_cloud-init`))!].depends_on ?? [];
    expect(waitsFor('app1')).toEqual([]);
    expect(waitsFor('app2')).toEqual([expect.stringMatching(/^null_resource\.app1_cloud-init/)]);
    expect(waitsFor('web1')).toEqual([expect.stringMatching(/^null_resource\.app2_cloud-init/)]);
  });

  // Each mistake, made with the sidecar created before and after the service that names its host:
  // the same message, from whichever of the two lines comes second (or from the line after both).
  interface Mistake {
    readonly service: () => unknown;
    readonly sidecar: () => unknown;
    readonly then?: () => unknown;
  }
  const mistakes: Array<[string, (f: ReturnType<typeof meshFixture>) => Mistake, string]> = [
    [
      'a provided port another role holds',
      (f) => ({
        service: () => new SmartStackService(f.stack, 'zk-proxy', { ensemble: f.zk, port: 2181, providers: [f.zk.members[0]] }),
        sidecar: () => new HaproxySidecar(f.zk.members[0], 'sidecar'),
      }),
      "HaproxySidecar 'test/zk1/sidecar': provides[zk-proxy].port = 2181: port 2181 on host zk1 is already used by test/zk (clientPort)",
    ],
    [
      "a provided port that is the sidecar's own nerve metrics port",
      (f) => {
        const app1 = f.host('app1', 55);
        return {
          service: () => new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 3300, providers: [app1] }),
          sidecar: () => new HaproxySidecar(app1, 'sidecar', { runtime: AgentRuntime.node({ nerveMetricsPort: 3300 }) }),
        };
      },
      "HaproxySidecar 'test/app1/sidecar': runtime.nerveMetricsPort = 3300: port 3300 on host app1 is already used by test/app1/sidecar (provides[users].port)",
    ],
    [
      'the Ruby agents for a service of an ensemble with ACLs',
      (f) => {
        const app1 = f.host('app1', 55);
        return {
          service: () => new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, providers: [app1] }),
          sidecar: () => new HaproxySidecar(app1, 'sidecar', { runtime: AgentRuntime.ruby() }),
        };
      },
      "HaproxySidecar 'test/app1/sidecar': runtime = \"ruby\": Airbnb's nerve and synapse cannot authenticate to ZooKeeper, and ensemble test/zk (of users) has ACLs: use AgentRuntime.node(), or acls: false on the ensemble",
    ],
    [
      'a sidecar that lists a service whose providers leave its host out',
      (f) => {
        const [app1, app2] = [f.host('app1', 55), f.host('app2', 56)];
        let pinned: SmartStackService;
        return {
          service: () => (pinned = new SmartStackService(f.stack, 'pinned', { ensemble: f.zk, port: 7000, providers: [app2] })),
          sidecar: () => new HaproxySidecar(app2, 'sidecar'),
          then: () => new HaproxySidecar(app1, 'sidecar', { provides: [pinned] }),
        };
      },
      "HaproxySidecar 'test/app1/sidecar': provides[0] = \"pinned\": test/pinned lists its providers (app2) and app1 is not one of them",
    ],
    [
      'an override of a service that names another host',
      (f) => {
        const [app1, app2] = [f.host('app1', 55), f.host('app2', 56)];
        const orders = new SmartStackService(f.stack, 'orders', { ensemble: f.zk, port: 9000 });
        let pinned: SmartStackService;
        return {
          service: () => (pinned = new SmartStackService(f.stack, 'pinned', { ensemble: f.zk, port: 7000, providers: [app2] })),
          sidecar: () => new HaproxySidecar(app2, 'sidecar'),
          then: () => new HaproxySidecar(app1, 'sidecar', { provides: [orders], providerOverrides: [{ service: pinned, weight: 0 }] }),
        };
      },
      "HaproxySidecar 'test/app1/sidecar': providerOverrides[0].service = \"pinned\": not a service this sidecar provides",
    ],
  ];

  describe.each(['service first', 'sidecar first'])('%s', (order) => {
    test.each(mistakes)('%s is refused, naming the construct, the field and the value', (_, make, expected) => {
      const m = make(meshFixture());
      const [a, b] = order === 'service first' ? [m.service, m.sidecar] : [m.sidecar, m.service];
      a();
      if (m.then) b();
      expect(thrownMessage(m.then ?? b)).toBe(expected);
    });
  });

  test('a service refused by a sidecar created before it leaves nothing behind', () => {
    const f = meshFixture();
    const zk1 = f.zk.members[0];
    const sidecar = new HaproxySidecar(zk1, 'sidecar');
    expect(() => new SmartStackService(f.stack, 'zk-proxy', { ensemble: f.zk, port: 2181, providers: [zk1] })).toThrow(/provides\[zk-proxy\]\.port = 2181/);
    expect(sidecar.provides).toEqual([]);
    expect(zk1.findPortOwner(3213)).toBeUndefined();
    // Its name is free: the stack did not record it.
    const proxy = new SmartStackService(f.stack, 'zk-proxy-again', { serviceName: 'zk-proxy', ensemble: f.zk, port: 7000, providers: [zk1] });
    expect(sidecar.provides).toEqual([proxy]);
  });

  test('reading a document changes nothing: a service created afterwards joins the sidecar, and the next reading has it', () => {
    const f = meshFixture();
    const app1 = f.host('app1', 55);
    const orders = new SmartStackService(f.stack, 'orders', { ensemble: f.zk, port: 9000, localPort: 3211 });
    const sidecar = new HaproxySidecar(app1, 'sidecar', { consumes: [orders] });
    const before = app1.renderUserData();
    expect(sidecar.nerveConfigJson).toBeUndefined();
    const users = new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, providers: [app1] });
    expect(sidecar.provides).toEqual([users]);
    expect(Object.keys(JSON.parse(sidecar.nerveConfigJson!).services)).toEqual(['users']);
    const after = app1.renderUserData();
    expect(before).not.toContain('nerve.conf.json');
    expect(after).toContain('nerve.conf.json');
    expect(app1.findPortOwner(8080)).toBe('test/app1/sidecar (provides[users].port)');
  });

  test('a sidecar that lists nothing and that no service names fails synth, naming provides', () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'mistakes-')) });
    const stack = new TerraformStack(app, 'test');
    const f = meshFixture({}, stack);
    new HaproxySidecar(f.host('app1', 55), 'sidecar');
    expect(() => app.synth()).toThrow(
      "HaproxySidecar 'test/app1/sidecar': provides = []: the sidecar neither provides nor consumes a service; list some in provides or consumes, or name its host in a service's providers",
    );
  });

  test('a listed provider host without any sidecar fails synth, saying where to add one', () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'mistakes-')) });
    const stack = new TerraformStack(app, 'test');
    const f = meshFixture({}, stack);
    const app1 = f.host('app1', 55);
    new SmartStackService(stack, 'users', { ensemble: f.zk, port: 8080, providers: [app1] });
    expect(() => app.synth()).toThrow(
      "SmartStackService 'test/users': providers includes host app1, but no HaproxySidecar provides users there, so nothing would register it: add a HaproxySidecar to test/app1",
    );
  });
});

describe('warnings reach the console however the stack is synthesized', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mistakes-warnings-'));
  const root = join(__dirname, '..');
  // A stack with a kernel device name for a disk and a service consumed but never provided.
  writeFileSync(
    join(dir, 'main.js'),
    `const { App, TerraformStack } = require('cdktf');
const { HaproxySidecar, SmartStackService, VdsNode, ZookeeperEnsemble } = require(${JSON.stringify(root)});
const app = new App();
const stack = new TerraformStack(app, 'oslo');
const members = [11, 12, 13].map((n, i) => new VdsNode(stack, 'zk' + (i + 1), { privateAddress: '10.10.0.' + n, memoryMiB: 4096,
  disks: [{ name: 'zk-data', device: i === 0 ? '/dev/vdb' : '/dev/disk/by-id/virtio-zk' + (i + 1) + '-data' }, { name: 'zk-txlog', device: '/dev/disk/by-id/virtio-zk' + (i + 1) + '-txlog' }] }));
const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'zk-data', txnLogDisk: 'zk-txlog' });
const users = new SmartStackService(stack, 'user-service', { ensemble: zk, port: 8080, localPort: 3210 });
new HaproxySidecar(new VdsNode(stack, 'web1', { privateAddress: '10.10.0.30', memoryMiB: 2048 }), 'sidecar', { consumes: [users] });
app.synth();
`,
  );
  writeFileSync(join(dir, 'cdktf.json'), JSON.stringify({ language: 'typescript', app: 'node main.js', output: 'cdktf.out', sendCrashReports: 'false', terraformProviders: [], terraformModules: [], context: {} }));
  const env = { ...process.env, NODE_PATH: join(root, 'node_modules'), CHECKPOINT_DISABLE: '1', CI: '1' };
  const DISK = `VdsNode 'oslo/zk1': disks[0].device = "/dev/vdb" is not a stable path`;
  const UNPROVIDED = "SmartStackService 'oslo/user-service': user-service is consumed on web1 but no HaproxySidecar in this app provides it";

  test('the program run by itself (node main.js) prints each warning once on stderr', () => {
    const r = spawnSync(process.execPath, ['main.js'], { cwd: dir, env, encoding: 'utf8', timeout: 60000 });
    expect(r.status).toBe(0);
    for (const warning of [DISK, UNPROVIDED]) expect(r.stderr.split(warning).length - 1).toBe(1);
  });

  test('cdktf synth prints each warning once', () => {
    const r = spawnSync(join(root, 'node_modules', '.bin', 'cdktf'), ['synth'], { cwd: dir, env, encoding: 'utf8', timeout: 120000 });
    const output = `${r.stdout}${r.stderr}`;
    expect(r.status).toBe(0);
    for (const warning of [DISK, UNPROVIDED]) expect(output.split(warning).length - 1).toBe(1);
  });
});
