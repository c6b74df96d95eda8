/**
 * The manifest beside the Terraform (cdktf.out/stacks/<stack>/smartstack.json): valid against its
 * JSON schema for every example, pointing at what the Terraform really holds, and the same whatever
 * order the constructs were created in.
 */
import { mkdtempSync, readFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Ajv2020 from 'ajv/dist/2020';
import { App, TerraformStack } from 'cdktf';
import { buildApp, OsloStackOptions } from '../examples/main';
import { AgentRuntime, HaproxySidecar, HealthCheck, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';
import { Manifest, MANIFEST_FILE, parseManifest } from '../lib/model/manifest';

const schema = JSON.parse(readFileSync(join(__dirname, '..', 'lib', 'model', 'manifest.schema.json'), 'utf8'));
const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);

function synth(app: App, outdir: string, stack: string): { manifest: Manifest; text: string; terraform: TerraformJson } {
  app.synth();
  const dir = join(outdir, 'stacks', stack);
  const text = readFileSync(join(dir, MANIFEST_FILE), 'utf8');
  return { manifest: parseManifest(text, MANIFEST_FILE), text, terraform: JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8')) };
}

interface TerraformJson {
  resource: Record<string, Record<string, { provisioner?: Array<{ file?: { destination: string; content?: string } }> }>>;
}

function example(options: OsloStackOptions = {}) {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-manifest-'));
  return synth(buildApp(outdir, options), outdir, 'oslo');
}

/** A stack with what the default example lacks: client networks, a host booted from userData, Ruby agents. */
function unusualStack(order: 'services first' | 'sidecars first') {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-manifest-'));
  const app = new App({ outdir });
  const stack = new TerraformStack(app, 'bergen');
  const members = [1, 2, 3].map((n) => new VdsNode(stack, `zk${n}`, {
    privateAddress: `10.20.0.${n}`,
    memoryMiB: 2048,
    disks: [{ name: 'data', device: `/dev/disk/by-id/virtio-zk${n}-data` }, { name: 'log', device: `/dev/disk/by-id/virtio-zk${n}-log` }],
  }));
  const ensemble = new ZookeeperEnsemble(stack, 'zk', { members, dataDisk: 'data', txnLogDisk: 'log', acls: false, clientNetworks: ['10.20.9.0/24'] });
  const app1 = new VdsNode(stack, 'app1', { privateAddress: '10.20.1.1', memoryMiB: 1024, deliverOverSsh: false });
  const web1 = new VdsNode(stack, 'web1', { privateAddress: '10.20.1.2', memoryMiB: 1024 });
  const service = () => new SmartStackService(stack, 'orders', {
    ensemble, port: 9000, localPort: 4000, providers: [app1], clientNetworks: ['10.20.8.0/24'], healthCheck: HealthCheck.tcp(),
  });
  // app1's sidecar is found by the service that names app1 in providers, whichever comes first.
  let orders: SmartStackService;
  if (order === 'services first') {
    orders = service();
    new HaproxySidecar(app1, 'sidecar', { runtime: AgentRuntime.ruby() });
  } else {
    new HaproxySidecar(app1, 'sidecar', { runtime: AgentRuntime.ruby() });
    orders = service();
  }
  new HaproxySidecar(web1, 'sidecar', { consumes: [orders], runtime: AgentRuntime.ruby() });
  return synth(app, outdir, 'bergen');
}

const examples: Array<[string, () => ReturnType<typeof example>]> = [
  ['the default example', () => example()],
  ['five members, a third provider and a second service', () => example({ members: 5, thirdProvider: true, orderService: true })],
  ['client networks, a host booted from userData, Ruby agents', () => unusualStack('services first')],
];

test.each(examples)('%s: the manifest validates against its schema', (_name, make) => {
  const { manifest } = make();
  const valid = validate(manifest);
  expect(valid ? [] : validate.errors).toEqual([]);
});

test.each(examples)('%s: every file it points at is a file provisioner of that resource', (_name, make) => {
  const { manifest, terraform } = make();
  const files = manifest.hosts.flatMap((h) => [...(h.delivery ? [h.delivery.userData, h.delivery.applyScript] : []), ...h.scripts]);
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) {
    const [type, name] = file.resource.split('.');
    const provisioners = terraform.resource[type]?.[name]?.provisioner ?? [];
    expect({ file, found: provisioners.some((p) => p.file?.destination === file.destination && typeof p.file.content === 'string') }).toEqual({ file, found: true });
  }
});

test('the default example: hosts, roles, the ensemble and the service as declared', () => {
  const { manifest } = example();
  expect(manifest.stack).toBe('oslo');
  expect(manifest.hosts.map((h) => [h.name, h.privateAddress, h.roles.join(' ')])).toEqual([
    ['app1', '10.10.0.55', 'nerve'],
    ['app2', '10.10.0.56', 'nerve'],
    ['web1', '10.10.0.30', 'synapse'],
    ['zk1', '10.10.0.11', 'zookeeper-member'],
    ['zk2', '10.10.0.12', 'zookeeper-member'],
    ['zk3', '10.10.0.13', 'zookeeper-member'],
  ]);
  expect(manifest.hosts.find((h) => h.name === 'zk1')!.disks).toEqual([
    { name: 'zk-data', device: '/dev/disk/by-id/virtio-zk1-data' },
    { name: 'zk-txlog', device: '/dev/disk/by-id/virtio-zk1-txlog' },
  ]);
  expect(manifest.ensembles.map((e) => [e.members.map((m) => `${m.host}=${m.id}`).join(' '), e.clientPort, e.acls])).toEqual([['zk1=1 zk2=2 zk3=3', 2181, true]]);
  expect(manifest.services).toEqual([expect.objectContaining({
    name: 'user-service', port: 8080, localPort: 3210, discoveryPath: '/services/user-service',
    providers: [{ host: 'app1', port: 8080 }, { host: 'app2', port: 8080 }], consumers: ['web1'],
    check: { type: 'http', path: '/health', intervalSeconds: 2, timeoutSeconds: 1, rise: 3, fall: 2 },
  })]);
  expect(manifest.hosts.find((h) => h.name === 'web1')!.sidecar).toEqual(expect.objectContaining({
    synapseConfig: '/etc/smartstack/synapse.conf.json', statsPort: 3212, credentials: ['zookeeper-zk-reader.json'],
  }));
  expect(manifest.hosts.find((h) => h.name === 'zk1')!.zookeeper).toEqual({
    ensemble: 'oslo/zk', id: 1, config: '/etc/zookeeper/smartstack/zoo.cfg', unit: 'zookeeper.service',
    classpath: ['/etc/zookeeper/smartstack', '/usr/share/java/zookeeper.jar', '/usr/share/java/slf4j-log4j12.jar', '/usr/share/java/log4j-1.2.jar'],
    jvmArgFiles: ['/etc/zookeeper/smartstack/jvm-auth.args'],
  });
  // The ACL bootstrap and the membership change run on the last member.
  expect(manifest.hosts.find((h) => h.name === 'zk3')!.scripts.map((s) => s.name)).toEqual(['zookeeper-acl', 'zookeeper-membership']);
});

test('networks, a host without SSH delivery, and construction order', () => {
  const a = unusualStack('services first');
  const b = unusualStack('sidecars first');
  expect(b.text).toBe(a.text);
  expect(a.manifest.ensembles[0].clientNetworks).toEqual(['10.20.9.0/24']);
  expect(a.manifest.services[0]).toEqual(expect.objectContaining({ clientNetworks: ['10.20.8.0/24'], providers: [{ host: 'app1', port: 9000 }], consumers: ['web1'] }));
  const app1 = a.manifest.hosts.find((h) => h.name === 'app1')!;
  expect(app1.delivery).toBeUndefined();
  expect(app1.sidecar).toEqual(expect.objectContaining({ runtime: 'ruby', credentials: [] }));
});

test('a manifest of another version is refused, naming the field and what to do', () => {
  expect(() => parseManifest('{"manifestVersion": 2, "hosts": [], "ensembles": [], "services": []}', 'cdktf.out/stacks/oslo/smartstack.json'))
    .toThrow('cdktf.out/stacks/oslo/smartstack.json: manifestVersion = 2: this version of cdktf-smartstack reads version 1; synthesize the stack again with it');
  expect(() => parseManifest('{"manifestVersion": 1, "hosts": {}}', 'm.json')).toThrow('m.json: hosts = {}: expected a list');
});
