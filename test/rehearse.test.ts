import { spawnSync } from 'child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, TerraformStack } from 'cdktf';
import { buildApp } from '../examples/main';
import { HaproxySidecar, SmartStackService, VdsNode, ZookeeperEnsemble } from '../lib';
import { readSynthesizedDocuments, readSynthesizedStack, SynthesizedStack } from '../lib/cloud-init/synthesized-documents';
import { consumerLoadScript, parseLoadOutput } from '../lib/fleet/consumer-load';
import { convergence, Rehearsal, stackVariables } from '../lib/fleet/rehearsal';
import { serviceBackends } from '../lib/fleet/service-backend';
import { fleetHostNumbers, mapStackOntoFleet, StackHost, stackHosts } from '../lib/fleet/stack-address-map';
import { connectionHosts } from '../lib/fleet/terraform-apply';

const SMARTSTACK = join(__dirname, '..', 'bin', 'smartstack');
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetHostKeyForTheTest0000000000000000000000';

let outdir: string;
let stackJson: Record<string, any>;
let stack: SynthesizedStack;
const made: string[] = [];
afterAll(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'rehearse-unit-'));
  made.push(outdir);
  buildApp(outdir).synth();
  stack = readSynthesizedStack(outdir, 'oslo');
  stackJson = stack.terraform as Record<string, any>;
}, 120_000);

function placements(hosts: StackHost[]) {
  const numbers = fleetHostNumbers(hosts);
  return new Map(hosts.map((h) => [h.hostname, { address: `198.18.7.${numbers.get(h.hostname)}`, sshHostKey: KEY }]));
}

/** A copy of the example's cdktf.out with its stack JSON changed. */
function changedOutdir(change: (json: Record<string, any>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'rehearse-changed-'));
  made.push(dir);
  cpSync(outdir, dir, { recursive: true });
  const json = JSON.parse(JSON.stringify(stackJson));
  change(json);
  writeFileSync(join(dir, 'stacks', 'oslo', 'cdk.tf.json'), JSON.stringify(json));
  return dir;
}

describe('the default example mapped onto a fleet', () => {
  test('each host keeps its host part, its disks by id', () => {
    const hosts = stackHosts(stack);
    expect(hosts.map((h) => [h.hostname, h.privateAddress, fleetHostNumbers(hosts).get(h.hostname), h.diskIds])).toEqual([
      ['app1', '10.10.0.55', 55, []],
      ['app2', '10.10.0.56', 56, []],
      ['web1', '10.10.0.30', 30, []],
      ['zk1', '10.10.0.11', 11, ['virtio-zk1-data', 'virtio-zk1-txlog']],
      ['zk2', '10.10.0.12', 12, ['virtio-zk2-data', 'virtio-zk2-txlog']],
      ['zk3', '10.10.0.13', 13, ['virtio-zk3-data', 'virtio-zk3-txlog']],
    ]);
  });

  test('no 10.x address remains; connections, zoo.cfg, firewall rules, nerve and synapse use the fleet addresses and keys', () => {
    const hosts = stackHosts(stack);
    const mapped = mapStackOntoFleet(stack, hosts, placements(hosts), '198.18.7.0/24') as Record<string, any>;
    const text = JSON.stringify(mapped);
    expect(text.match(/(?<![\d.])10\.\d+\.\d+\.\d+/g)).toBeNull();
    expect(connectionHosts(mapped).sort()).toEqual(['198.18.7.11', '198.18.7.12', '198.18.7.13', '198.18.7.30', '198.18.7.55', '198.18.7.56']);
    for (const resource of Object.values(mapped.resource.null_resource) as any[]) {
      expect(resource.connection).toMatchObject({ host_key: KEY, user: 'root', port: 22, private_key: '${var.ssh_private_key}' });
    }
    // zk_acl runs on zk3: it goes to zk3's fleet host.
    expect(Object.entries(mapped.resource.null_resource).find(([name]) => name.startsWith('zk_acl'))![1]).toMatchObject({ connection: { host: '198.18.7.13' } });
    const docs = readSynthesizedDocuments({ manifest: stack.manifest, terraform: mapped }, { zk_secret: 'x'.repeat(64) });
    const zk1 = docs.find((d) => d.hostname === 'zk1')!;
    expect(zk1.privateAddress).toBe('198.18.7.11');
    expect(zk1.userData).toContain('server.1=198.18.7.11:2888:3888');
    expect(zk1.userData).toContain('ip saddr { 198.18.7.11/32, 198.18.7.12/32, 198.18.7.13/32 } accept');
    expect(zk1.userData).toContain('"privateNetwork": "198.18.7.0/24"');
    expect(docs.find((d) => d.hostname === 'app1')!.userData).toContain('"host": "198.18.7.55"');
    expect(mapped.output.zk_connection_string.value).toBe('198.18.7.11:2181,198.18.7.12:2181,198.18.7.13:2181');
  });

  test('an address the mapping does not know fails, naming it and where it is', () => {
    const json = JSON.parse(JSON.stringify(stackJson));
    json.output.extra = { value: 'backup at 10.10.0.99:22' };
    const hosts = stackHosts(stack);
    expect(() => mapStackOntoFleet({ manifest: stack.manifest, terraform: json }, hosts, placements(hosts), '198.18.7.0/24')).toThrow('10.10.0.99 at output.extra.value');
  });

  test('a connection to an address that is no host fails, naming the resource', () => {
    const json = JSON.parse(JSON.stringify(stackJson));
    json.resource.null_resource.other = { connection: { type: 'ssh', host: '192.0.2.7' } };
    const hosts = stackHosts(stack);
    expect(() => mapStackOntoFleet({ manifest: stack.manifest, terraform: json }, hosts, placements(hosts), '198.18.7.0/24')).toThrow('null_resource.other connects to "192.0.2.7", which is no VdsNode\'s address');
  });

  test("networks the stack opens ports to (an operators' network) become the fleet's network", () => {
    const dir = mkdtempSync(join(tmpdir(), 'rehearse-networks-'));
    made.push(dir);
    const app = new App({ outdir: dir });
    const oslo = new TerraformStack(app, 'oslo');
    const members = [11, 12, 13].map((n, i) => new VdsNode(oslo, `zk${i + 1}`, {
      privateAddress: `10.10.0.${n}`, memoryMiB: 2048,
      disks: [{ name: 'data', device: `/dev/disk/by-id/virtio-zk${i + 1}-data` }, { name: 'log', device: `/dev/disk/by-id/virtio-zk${i + 1}-log` }],
    }));
    const ensemble = new ZookeeperEnsemble(oslo, 'zk', { members, dataDisk: 'data', txnLogDisk: 'log', clientNetworks: ['10.20.9.0/24'] });
    const users = new SmartStackService(oslo, 'users', { ensemble, port: 8080, localPort: 3210, clientNetworks: ['10.20.8.0/24'] });
    new HaproxySidecar(new VdsNode(oslo, 'app1', { privateAddress: '10.10.0.55', memoryMiB: 1024 }), 'sidecar', { provides: [users] });
    new HaproxySidecar(new VdsNode(oslo, 'web1', { privateAddress: '10.10.0.30', memoryMiB: 1024 }), 'sidecar', { consumes: [users] });
    app.synth();
    const synthesized = readSynthesizedStack(dir, 'oslo');
    const hosts = stackHosts(synthesized);
    const mapped = mapStackOntoFleet(synthesized, hosts, placements(hosts), '198.18.7.0/24');
    expect(JSON.stringify(mapped).match(/(?<![\d.])10\.\d+\.\d+\.\d+/g)).toBeNull();
    const docs = readSynthesizedDocuments({ manifest: synthesized.manifest, terraform: mapped }, { zk_secret: 'x'.repeat(64) });
    // ZooKeeper's client port, and the provided port, open to the fleet's network where the stack named its own.
    expect(docs.find((d) => d.hostname === 'zk1')!.userData).toMatch(/tcp dport \{ 2181 \} ip saddr \{[^}]*198\.18\.7\.0\/24[^}]*\} accept/);
    expect(docs.find((d) => d.hostname === 'app1')!.userData).toMatch(/tcp dport \{ 8080 \} ip saddr \{[^}]*198\.18\.7\.0\/24[^}]*\} accept/);
  });

  test('host numbers: a taken or reserved last octet gets the lowest free one', () => {
    const host = (hostname: string, privateAddress: string): StackHost => ({ hostname, privateAddress, privateNetwork: `${privateAddress}/16`, diskIds: [] });
    const numbers = fleetHostNumbers([host('a', '10.1.0.5'), host('b', '10.1.1.5'), host('c', '10.1.2.1'), host('d', '10.1.2.255')]);
    expect(Object.fromEntries(numbers)).toEqual({ a: 5, b: 2, c: 3, d: 4 });
    expect(Object.fromEntries(fleetHostNumbers([host('a', '10.1.0.5'), host('e', '10.1.0.6')], new Map([['a', 9]])))).toEqual({ a: 9, e: 6 });
  });
});

describe('rehearsal inputs', () => {
  test('a sensitive variable without a value is random; a given one is kept; ssh_private_key is the fleet\'s', () => {
    const random = stackVariables(stackJson, {});
    expect(random.generated).toEqual(['zk_secret']);
    expect(random.values.zk_secret).toMatch(/^[0-9a-f]{64}$/);
    expect(stackVariables(stackJson, { zk_secret: 's'.repeat(40) })).toEqual({ values: { zk_secret: 's'.repeat(40) }, generated: [] });
    const json = { variable: { region: { type: 'string' } } };
    expect(() => stackVariables(json, {})).toThrow('variable region has no default and no value: give it as TF_VAR_region');
  });

  test('a disk that is not named by id is refused before anything boots, naming the host and the device', () => {
    const byKernelName = (text: string) => text.replace(/\/dev\/disk\/by-id\/virtio-zk2-data/g, '/dev/vdb');
    const dir = changedOutdir((json) => Object.assign(json, JSON.parse(byKernelName(JSON.stringify(json)))));
    const manifest = join(dir, 'stacks', 'oslo', 'smartstack.json');
    writeFileSync(manifest, byKernelName(readFileSync(manifest, 'utf8')));
    expect(() => new Rehearsal({ outdir: dir })).toThrow('host zk2: disk device = "/dev/vdb": the rehearsal makes disks by their /dev/disk/by-id/ name only');
  });

  test('the stand-in backend answers what the check expects on every port it checks', () => {
    const nerve = JSON.stringify({
      instance_id: 'app1',
      services: { users: { host: '198.18.7.55', port: 8080, reporter_type: 'zookeeper', zk_hosts: [], zk_path: '/services/users', checks: [{ type: 'http', uri: '/ready', expect: 'READY' }, { type: 'tcp', port: 9090 }] } },
    });
    expect(serviceBackends('app1', nerve)).toEqual([{ service: 'users', address: '198.18.7.55', ports: [8080, 9090], body: 'READY users app1', unit: 'smartstack-rehearsal-users.service' }]);
  });

  test('the load script is bounded in count and time, and its output counts every request', () => {
    const script = consumerLoadScript({ url: 'http://127.0.0.1:3210/health', count: 50, seconds: 30, stopFile: '/run/stop' });
    const run = spawnSync('sh', ['-c', script.replace(/curl [^)]*/, 'echo 200')], { encoding: 'utf8', timeout: 30_000 });
    expect(parseLoadOutput(run.stdout)).toMatchObject({ requests: 50, failures: 0 });
    expect(parseLoadOutput('1.5 200\n2.5 503\n3.0 000\n3.5 302\ngarbage\n')).toMatchObject({ requests: 4, failures: 2, failuresByStatus: { 503: 1, '000': 1 }, failureTimes: [2500, 3000] });
    expect(() => consumerLoadScript({ url: 'http://127.0.0.1:3210/', count: 0, seconds: 30, stopFile: '/run/stop' })).toThrow('count = 0');
    expect(() => consumerLoadScript({ url: "http://x/'; rm -rf /", count: 1, seconds: 1, stopFile: '/run/stop' })).toThrow('url =');
  });

  test('back in service: from the start of the apply until every provider stayed in service', () => {
    const s = (at: number, ok: boolean) => ({ at, ok });
    expect(convergence([s(0, true), s(1000, false), s(2000, false), s(3000, true), s(4000, true)], 500)).toEqual({ backInServiceSeconds: 2.5, outOfServiceSeconds: 2 });
    expect(convergence([s(0, true), s(1000, true)], 500)).toEqual({ backInServiceSeconds: 0, outOfServiceSeconds: 0 });
    expect(convergence([s(0, true), s(1000, false)], 500).backInServiceSeconds).toBeNull();
  });
});

describe('smartstack rehearse (command line)', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [SMARTSTACK, 'rehearse', ...args], { encoding: 'utf8', timeout: 60_000 });

  test('--help documents the command, its needs and Ctrl-C', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    for (const text of ['--then', '--stack', '198.18.0.0/15', 'root, systemd-nspawn', 'debootstrap', 'terraform', 'Ctrl-C or SIGTERM destroys the fleet', 'TF_VAR_']) expect(r.stdout).toContain(text);
  });

  test('a machine without root, debootstrap or terraform is told exactly which is missing', () => {
    // As an unprivileged user whose PATH has neither /usr/sbin (debootstrap) nor /usr/local/bin (terraform).
    chmodSync(outdir, 0o755);
    const options = { encoding: 'utf8' as const, timeout: 60_000, cwd: tmpdir(), env: { PATH: '/usr/bin:/bin' } };
    let r;
    if (process.getuid?.() === 0) {
      // The checkout may sit below a folder only root can enter: nobody runs it from a bind mount of
      // the package in a mount namespace of its own.
      const mountPoint = mkdtempSync(join(tmpdir(), 'package-'));
      chmodSync(mountPoint, 0o755);
      const script = 'mount --bind "$1" "$2" && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$3" "$2/bin/smartstack" rehearse "$4"';
      r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', join(SMARTSTACK, '..', '..'), mountPoint, process.execPath, outdir], options);
      rmSync(mountPoint, { recursive: true, force: true });
    } else {
      r = spawnSync(process.execPath, [SMARTSTACK, 'rehearse', outdir], options);
    }
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('smartstack rehearse: this machine cannot rehearse:');
    expect(r.stderr).toMatch(/- not root \(uid \d+\)/);
    expect(r.stderr).toContain("- debootstrap is not on the PATH (Debian package 'debootstrap')");
    expect(r.stderr).toContain('- terraform is not on the PATH (install terraform >= 1.4');
  });

  test('bad input is named and changes nothing', () => {
    const missingDir = run('/nonexistent/cdktf.out');
    expect(missingDir.status).toBe(2);
    expect(missingDir.stderr).toContain('/nonexistent/cdktf.out holds no synthesized stack');
    const badStack = run(outdir, '--stack', 'bergen');
    expect(badStack.status).toBe(2);
    expect(badStack.stderr).toContain('--stack bergen: ');
    expect(badStack.stderr).toContain('it has oslo');
    const badNumber = run(outdir, '--load-seconds', '10s');
    expect(badNumber.status).toBe(2);
    expect(badNumber.stderr).toContain('--load-seconds 10s: expected a positive whole number');
    expect(run(outdir, '--frobnicate').stderr).toContain("unknown option '--frobnicate'");
    const typo = run(outdir, '--load-second', '5');
    expect({ status: typo.status, stderr: typo.stderr }).toEqual({ status: 2, stderr: "smartstack rehearse: unknown option '--load-second'; did you mean '--load-seconds'?\n(smartstack rehearse --help shows the usage)\n" });
    expect(run(outdir, outdir).stderr).toContain("unexpected argument '");
  });
});
