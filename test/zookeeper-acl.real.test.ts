/**
 * ZooKeeper ACLs on a real ensemble: a stack with two services is synthesized, run through
 * LocalMesh (members, the synthesized ACL bootstrap script, HAProxy, nerve and synapse with the
 * credentials files of their hosts), and then probed with clients that hold no credentials, a
 * registrar's, or the reader's.
 */
import { readdirSync, readFileSync, mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, TerraformStack } from 'cdktf';
import * as zookeeper from 'node-zookeeper-client';
import { HaproxySidecar, HealthCheck, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';
import { LocalMesh } from '../lib/local/local-mesh';
import { readZookeeperCredentials, ZookeeperCredentials } from '../lib/schema/zookeeper-credentials';
import { eventually } from './support/eventually';
import { connectZookeeper } from './support/zookeeper-client';
import { sidecarOf } from './support/mesh-scenario';
import { startRequestLoop } from './support/agent-request-loop';

jest.setTimeout(5 * 60000);

const NO_AUTH = zookeeper.Exception.NO_AUTH;

function buildStack(outdir: string): App {
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'acl');
  const members = [1, 2, 3].map((n) => new VdsNode(stack, `zk${n}`, {
    privateAddress: `10.30.0.${10 + n}`,
    memoryMiB: 2048,
    disks: [{ name: 'data', device: `/dev/disk/by-id/virtio-zk${n}-data` }, { name: 'txlog', device: `/dev/disk/by-id/virtio-zk${n}-txlog` }],
  }));
  const zk = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'data', txnLogDisk: 'txlog' });
  const check = HealthCheck.http({ path: '/health', intervalSeconds: 1, rise: 2, fall: 2 });
  const alpha = new SmartStackService(stack, 'alpha', { ensemble: zk, port: 9101, localPort: 4101, healthCheck: check });
  const beta = new SmartStackService(stack, 'beta', { ensemble: zk, port: 9102, localPort: 4102, healthCheck: check });
  const host = (name: string, n: number) => new VdsNode(stack, name, { privateAddress: `10.30.0.${n}`, memoryMiB: 2048 });
  new HaproxySidecar(host('a1', 31), 'sidecar', { provides: [alpha] });
  new HaproxySidecar(host('b1', 32), 'sidecar', { provides: [beta] });
  new HaproxySidecar(host('c1', 33), 'sidecar', { consumes: [alpha, beta] });
  return app;
}

function connect(connectionString: string, credentials?: ZookeeperCredentials): Promise<zookeeper.Client> {
  return connectZookeeper(connectionString, { sessionTimeout: 10000, retries: 1 }, credentials ? [credentials] : []);
}

/** Runs one ZooKeeper call and resolves with its error code (0 for success). */
function outcome(call: (done: (error: Error | zookeeper.Exception | null) => void) => void): Promise<number> {
  return new Promise((resolve) => call((error) => resolve(error ? (error as zookeeper.Exception).getCode() : 0)));
}

const create = (c: zookeeper.Client, path: string, mode = zookeeper.CreateMode.PERSISTENT) => outcome((done) => c.create(path, Buffer.from('{}'), mode, done));
const setData = (c: zookeeper.Client, path: string) => outcome((done) => c.setData(path, Buffer.from('{"host":"203.0.113.9","port":80}'), -1, done));
const remove = (c: zookeeper.Client, path: string) => outcome((done) => c.remove(path, -1, done));
const setAcl = (c: zookeeper.Client, path: string) => outcome((done) => c.setACL(path, [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))], -1, done));
const read = (c: zookeeper.Client, path: string) => outcome((done) => c.getData(path, (error) => done(error)));
const list = (c: zookeeper.Client, path: string) =>
  new Promise<string[] | number>((resolve) => c.getChildren(path, (error, children) => resolve(error ? (error as zookeeper.Exception).getCode() : children)));

describe('ZooKeeper ACLs on a real ensemble', () => {
  let mesh: LocalMesh;
  const clients: zookeeper.Client[] = [];
  let anonymous: zookeeper.Client;
  let registrarAlpha: zookeeper.Client;
  let reader: zookeeper.Client;
  const credentialsOf = (hostname: string, identity: string) => {
    const host = mesh.hosts.find((h) => h.hostname === hostname)!;
    return readZookeeperCredentials(host.hostPath(`/etc/smartstack/credentials/zookeeper-zk-${identity}.json`));
  };
  const children = async (path: string) => {
    const result = await list(reader, path);
    if (typeof result === 'number') throw new Error(`reader could not list ${path}: ${result}`);
    return result;
  };

  beforeAll(async () => {
    const outdir = mkdtempSync(join(tmpdir(), 'smartstack-acl-synth-'));
    buildStack(outdir).synth();
    mesh = new LocalMesh({ outdir, loopbackPrefix: '127.81' });
    await mesh.start();
    anonymous = await connect(mesh.connectionString);
    registrarAlpha = await connect(mesh.connectionString, credentialsOf('a1', 'registrar-alpha'));
    reader = await connect(mesh.connectionString, credentialsOf('c1', 'reader'));
    clients.push(anonymous, registrarAlpha, reader);
    await eventually('alpha and beta registered', async () => (await children('/services/alpha')).length === 1 && (await children('/services/beta')).length === 1, 60000);
  });

  afterAll(async () => {
    clients.forEach((c) => c.close());
    await mesh?.stop();
  });

  test('each host holds only its own identities, in files only root may read', () => {
    const credentialFiles = (hostname: string) => {
      const host = mesh.hosts.find((h) => h.hostname === hostname)!;
      return [...host.files.keys()].filter((p) => p.startsWith('/etc/smartstack/credentials/')).sort();
    };
    expect(credentialFiles('a1')).toEqual(['/etc/smartstack/credentials/zookeeper-zk-registrar-alpha.json']);
    expect(credentialFiles('b1')).toEqual(['/etc/smartstack/credentials/zookeeper-zk-registrar-beta.json']);
    expect(credentialFiles('c1')).toEqual(['/etc/smartstack/credentials/zookeeper-zk-reader.json']);
    expect(credentialFiles('zk1')).toEqual([]);
    expect(credentialsOf('a1', 'registrar-alpha').password).toMatch(/^[0-9a-f]{64}$/);
  });

  test('an unauthenticated client can create, change or delete nothing under /services, nor anywhere else', async () => {
    const [registration] = await children('/services/alpha');
    expect(await create(anonymous, '/services/alpha/intruder')).toBe(NO_AUTH);
    expect(await create(anonymous, '/services/alpha/intruder', zookeeper.CreateMode.EPHEMERAL)).toBe(NO_AUTH);
    expect(await create(anonymous, '/services/gamma')).toBe(NO_AUTH);
    expect(await create(anonymous, '/intruder')).toBe(NO_AUTH);
    expect(await create(anonymous, '/zookeeper/quota/intruder')).toBe(NO_AUTH);
    expect(await setData(anonymous, `/services/alpha/${registration}`)).toBe(NO_AUTH);
    expect(await setData(anonymous, '/services/alpha')).toBe(NO_AUTH);
    expect(await remove(anonymous, `/services/alpha/${registration}`)).toBe(NO_AUTH);
    expect(await setAcl(anonymous, '/services')).toBe(NO_AUTH);
    expect(await setAcl(anonymous, '/')).toBe(NO_AUTH);
    // Nor may it read the registrations, not even one whose name it knows.
    expect(await list(anonymous, '/services/alpha')).toBe(NO_AUTH);
    expect(await read(anonymous, `/services/alpha/${registration}`)).toBe(NO_AUTH);
    expect(await read(reader, `/services/alpha/${registration}`)).toBe(0);
    expect(await children('/services/alpha')).toEqual([registration]);
  });

  test("a registrar of alpha registers alpha, and cannot touch beta or the registrations' parents", async () => {
    const [betaRegistration] = await children('/services/beta');
    expect(await create(registrarAlpha, '/services/beta/intruder', zookeeper.CreateMode.EPHEMERAL)).toBe(NO_AUTH);
    expect(await read(registrarAlpha, `/services/beta/${betaRegistration}`)).toBe(NO_AUTH);
    expect(await list(registrarAlpha, '/services/beta')).toBe(NO_AUTH);
    expect(await remove(registrarAlpha, `/services/beta/${betaRegistration}`)).toBe(NO_AUTH);
    expect(await setData(registrarAlpha, `/services/beta/${betaRegistration}`)).toBe(NO_AUTH);
    expect(await create(registrarAlpha, '/services/gamma')).toBe(NO_AUTH);
    expect(await setData(registrarAlpha, '/services/alpha')).toBe(NO_AUTH);
    expect(await setAcl(registrarAlpha, '/services/alpha')).toBe(NO_AUTH);
    // Its own path: it may add an instance and take it away again.
    expect(await create(registrarAlpha, '/services/alpha/acl-test', zookeeper.CreateMode.EPHEMERAL)).toBe(0);
    expect(await remove(registrarAlpha, '/services/alpha/acl-test')).toBe(0);
    expect(await children('/services/beta')).toEqual([betaRegistration]);
  });

  test('the reader reads every service and writes nothing', async () => {
    expect((await children('/services')).sort()).toEqual(['alpha', 'beta']);
    expect(await create(reader, '/services/alpha/intruder', zookeeper.CreateMode.EPHEMERAL)).toBe(NO_AUTH);
    expect(await remove(reader, `/services/alpha/${(await children('/services/alpha'))[0]}`)).toBe(NO_AUTH);
    expect(await setData(reader, '/services/beta')).toBe(NO_AUTH);
  });

  test('synapse, reading as the reader, routes c1 to both services', async () => {
    for (const [service, provider] of [['alpha', 'a1'], ['beta', 'b1']]) {
      const sidecar = sidecarOf(mesh, 'c1', service);
      await eventually(`${service} in service at c1`, async () => (await sidecar.serving()).length === 1, 60000);
      const result = await startRequestLoop(sidecar.host.address, sidecar.port, { maxRequests: 10, maxDurationMs: 10000 }).finished();
      expect(result.failures).toEqual([]);
      expect(Object.keys(result.answeredBy)).toEqual([`${service} ${provider}`]);
    }
    const status = await mesh.status();
    expect(status.registry?.services.map((s) => [s.name, s.instances.length])).toEqual([['alpha', 1], ['beta', 1]]);
  });

  test('no password and no secret appears in any log of the mesh', () => {
    const secrets = [
      ...Object.values(mesh.variables),
      credentialsOf('a1', 'registrar-alpha').password,
      credentialsOf('b1', 'registrar-beta').password,
      credentialsOf('c1', 'reader').password,
    ];
    expect(secrets.every((s) => s.length >= 32)).toBe(true);
    const logDir = join(mesh.workdir, 'logs');
    const logs = readdirSync(logDir).map((f) => [f, readFileSync(join(logDir, f), 'utf8')] as const);
    expect(logs.length).toBeGreaterThan(5);
    for (const [file, text] of logs) {
      for (const secret of secrets) expect({ file, leaks: text.includes(secret) }).toEqual({ file, leaks: false });
    }
  });
});
