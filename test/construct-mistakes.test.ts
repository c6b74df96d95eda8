/**
 * Mistakes a user makes in a stack, each caught at the line that makes it, with the construct's
 * path, the field and the value in the message, and the rule the message states being the one
 * that refused the value.
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, TerraformStack } from 'cdktf';
import { HaproxySidecar, OperatingSystem, SmartStackService, ValidationError, VdsNode } from '../lib';
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
  test('the sidecar created after the service provides it', () => {
    const f = meshFixture();
    const app1 = f.host('app1', 55);
    const users = new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, providers: [app1] });
    const sidecar = new HaproxySidecar(app1, 'sidecar', {});
    expect(sidecar.provides).toEqual([users]);
  });

  test('a sidecar created before the service is refused at the service, with the way out (not at synth)', () => {
    const f = meshFixture();
    const app1 = f.host('app1', 55);
    const orders = new SmartStackService(f.stack, 'orders', { ensemble: f.zk, port: 9000, localPort: 3211 });
    new HaproxySidecar(app1, 'sidecar', { consumes: [orders] });
    const message = thrownMessage(() => new SmartStackService(f.stack, 'users', { ensemble: f.zk, port: 8080, providers: [app1] }));
    expect(message).toBe(
      "SmartStackService 'test/users': providers[0] = \"app1\": test/app1/sidecar exists already and was created without this service: " +
        "list the service in that sidecar's provides, or create the sidecar after this service",
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
