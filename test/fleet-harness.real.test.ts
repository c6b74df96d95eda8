import { spawn, spawnSync } from 'child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { provider as nullProvider, resource as nullResource } from '@cdktf/provider-null';
import { App, TerraformStack, TerraformVariable } from 'cdktf';
import { parse } from 'yaml';
import { assertFleetAddress, cleanupEarlierRuns, Fleet, FLEET_IMAGE_PACKAGES, FleetHost, resourceSeconds, TerraformWorkspace } from '../lib/fleet';
import { runBounded } from '../lib/fleet/bounded-command';
import { mountPointsUnder } from '../lib/fleet/fleet-state';
import { hostCgroupDirs } from '../lib/fleet/host-cgroup';
import { describeWhenPresent, fleetTestPrerequisites, FLEET_PACKAGES_HINT } from './support/describe-when';
import { synthesizeExample } from './support/example-synth';

/*
 * The fleet harness itself: real Debian 12 hosts (systemd containers on an overlay of a debootstrap
 * image) on a bridge of the run's own, reached over SSH, and a synthesized stack applied to them with
 * the real terraform. Containers differ from VMs in ways these tests do not hide: `lsblk` says `loop`,
 * systemd ignores fstab device entries (mounts after a reboot are not testable), /proc/sys is read-only.
 *
 * Slow: the image is built once per package list (about 2-4 minutes) and cached under /var/cache.
 */
const describeFleet = describeWhenPresent('test/fleet-harness.real.test.ts (Debian hosts as systemd containers, terraform apply over SSH, kill/restart, cleanup)', fleetTestPrerequisites(), FLEET_PACKAGES_HINT);

const MINUTE = 60_000;
const timings: string[] = [];

describeFleet('fleet harness: real Debian hosts as systemd containers', () => {
  let fleet: Fleet;
  let alpha: FleetHost;
  let beta: FleetHost;

  beforeAll(async () => {
    const started = Date.now();
    fleet = await Fleet.create();
    timings.push(`image: ${fleet.image.built ? 'built' : 'from the cache, built'} in ${fleet.image.buildSeconds.toFixed(0)} s`);
    [alpha, beta] = await fleet.addHosts([
      { name: 'alpha', address: 2, disks: [{ id: 'virtio-alpha-data', sizeMiB: 64 }] },
      { name: 'beta', address: 3, disks: [{ id: 'virtio-beta-data', sizeMiB: 64 }] },
    ]);
    timings.push(`fleet ready (2 hosts booted in parallel) in ${((Date.now() - started) / 1000).toFixed(1)} s; boots: alpha ${alpha.bootSeconds[0].toFixed(1)} s, beta ${beta.bootSeconds[0].toFixed(1)} s`);
  }, 25 * MINUTE);

  afterAll(async () => {
    await fleet?.destroy();
    if (timings.length > 0) console.log(`fleet timings:\n  ${timings.join('\n  ')}`);
  }, 2 * MINUTE);

  test('every host address is routed via the fleet bridge, and nothing outside 198.18.0.0/15 is accepted', async () => {
    for (const host of [alpha, beta]) {
      const route = JSON.parse(spawnSync('ip', ['-j', 'route', 'get', host.address], { encoding: 'utf8' }).stdout)[0];
      expect(route.dev).toBe(fleet.network.bridge);
      expect(route.gateway).toBeUndefined();
      await expect(fleet.network.assertRoute(host.address)).resolves.toBeUndefined();
    }
    expect(fleet.network.bridge).toMatch(/^ssfl/);
    expect(readFileSync(`/sys/class/net/${fleet.network.bridge}/address`, 'utf8').trim()).toBe(fleet.network.mac);
    expect(() => assertFleetAddress('192.168.1.10')).toThrow('address = "192.168.1.10": outside 198.18.0.0/15');
    expect(() => assertFleetAddress('10.0.0.1', 'privateAddress')).toThrow('privateAddress = "10.0.0.1"');
    await expect(fleet.network.assertRoute('198.19.0.7')).rejects.toThrow(`expected a host address in ${fleet.network.cidr}`);
    await expect(fleet.addHost({ name: 'gamma', address: '172.16.0.5' })).rejects.toThrow('gamma.address = "172.16.0.5": outside 198.18.0.0/15');
  });

  test('each host boots in a cgroup of its own, so the hosts\' units never share one', async () => {
    const cgroupOf = (pid: number) => readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter((l) => /^0::|name=systemd/.test(l));
    const [a, b] = [cgroupOf(alpha.initPid!), cgroupOf(beta.initPid!)];
    expect(a.length).toBeGreaterThan(0);
    for (const line of [...a, ...b]) expect(line).toMatch(/:\/cdktf-smartstack-fleet\/[^/]+\/payload\/init\.scope$/);
    expect(a.filter((line) => b.includes(line))).toEqual([]);
    for (const host of [alpha, beta]) expect((await host.exec('systemctl is-system-running')).stdout.trim()).toBe('running');
  });

  test('a host has its static address, no default route and no name server', async () => {
    const network = await alpha.ssh('hostname; ip -4 -o addr show dev host0; ip route; ip -6 route; cat /etc/resolv.conf 2>/dev/null | grep -c nameserver || true');
    expect(network.status).toBe(0);
    const [hostname, address, ...rest] = network.stdout.trim().split('\n');
    expect(hostname).toBe('alpha');
    expect(address).toContain(`inet ${alpha.address}/24`);
    expect(rest.join('\n')).not.toMatch(/default/);
    expect(rest[rest.length - 1]).toBe('0');
    const ping = await alpha.ssh(`timeout 5 bash -c 'exec 3<>/dev/tcp/${beta.address}/22 && head -c 7 <&3'`);
    expect(ping.stdout).toBe('SSH-2.0');
  });

  test('SSH works with the pinned host key, and a wrong pinned key is refused', async () => {
    expect(alpha.sshHostKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+=*$/);
    expect(alpha.sshHostKey).not.toBe(beta.sshHostKey);
    expect(readFileSync(fleet.knownHostsPath, 'utf8')).toContain(alpha.knownHostsLine);
    const r = await beta.ssh('cat /etc/ssh/ssh_host_ed25519_key.pub');
    expect(r.stdout.startsWith(beta.sshHostKey)).toBe(true);
    // The same SSH call with alpha's address pinned to beta's key must not connect.
    const wrong = join(fleet.workDir, 'wrong_known_hosts');
    writeFileSync(wrong, `${alpha.address} ${beta.sshHostKey}\n`);
    const refused = await runBounded(
      ['ssh', '-i', fleet.sshPrivateKeyPath, '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${wrong}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', `root@${alpha.address}`, 'true'],
      { timeoutMs: 20_000 },
    );
    expect(refused.status).toBe(255);
    expect(refused.output).toMatch(/Host key verification failed|HOST IDENTIFICATION HAS CHANGED/);
  });

  test('a data disk is a loop device at its by-id path; a filesystem on it can be made and mounted inside', async () => {
    const [disk] = alpha.disks;
    expect(disk.path).toBe('/dev/disk/by-id/virtio-alpha-data');
    expect(await alpha.execChecked(`readlink ${disk.path}`)).toBe(`../../${disk.loopDevice.replace('/dev/', '')}\n`);
    // Container, not VM: lsblk calls it a loop device.
    expect((await alpha.execChecked(`lsblk -dno TYPE ${disk.loopDevice}`)).trim()).toBe('loop');
    await alpha.execChecked(`mkfs.ext4 -q ${disk.path} && mkdir -p /srv/data && mount -o noatime ${disk.path} /srv/data && echo kept > /srv/data/marker`);
    expect(await alpha.readFile('/srv/data/marker')).toBe('kept\n');
    expect(await alpha.execChecked('findmnt -no OPTIONS /srv/data')).toMatch(/noatime/);
    await expect(alpha.readFile('/srv/data/absent')).rejects.toThrow('alpha: cannot read /srv/data/absent');
  });

  test('terraform applies a synthesized stack over SSH to both hosts; a second plan shows no change', async () => {
    const stackDir = synthesizeProofStack(fleet, [alpha, beta], { pinnedKeys: [alpha.sshHostKey, beta.sshHostKey] });
    const workspace = await TerraformWorkspace.fromSynthesizedStack(stackDir, {
      dir: join(fleet.workDir, 'terraform'),
      variables: { ssh_private_key: fleet.sshPrivateKey },
      network: fleet.network,
    });
    const stackJson = readFileSync(join(workspace.dir, 'cdk.tf.json'), 'utf8');
    expect(stackJson).toContain('"terraform_data"');
    expect(stackJson).not.toContain('null_resource');
    const apply = await workspace.apply();
    const perResource = resourceSeconds(apply.output);
    timings.push(`terraform apply (2 hosts, remote-exec): ${apply.seconds.toFixed(1)} s; per resource ${JSON.stringify(perResource)}`);
    expect(Object.keys(perResource).sort()).toEqual(['terraform_data.alpha-proof', 'terraform_data.beta-proof']);
    expect(apply.output).toContain('Apply complete! Resources: 2 added');
    expect(apply.exitCode).toBe(0);
    expect(apply.output).not.toContain('BEGIN OPENSSH PRIVATE KEY');
    for (const host of [alpha, beta]) expect(await host.readFile('/root/fleet-proof')).toBe(`applied by terraform to ${host.name}\n`);
    const plan = await workspace.plan();
    expect(plan.output).toContain('No changes.');
    expect(plan.exitCode).toBe(0);
    expect(plan.changes).toBe(false);
    expect(readFileSync(workspace.logFile, 'utf8')).toContain('=== exit 0');
  }, 10 * MINUTE);

  test('terraform refuses a host whose pinned key is not its own', async () => {
    // beta pinned to alpha's key: terraform must not run anything on beta.
    const stackDir = synthesizeProofStack(fleet, [beta], { pinnedKeys: [alpha.sshHostKey], stackName: 'wrong-key', file: '/root/wrong-key-proof' });
    const workspace = await TerraformWorkspace.fromSynthesizedStack(stackDir, { dir: join(fleet.workDir, 'terraform-wrong-key'), variables: { ssh_private_key: fleet.sshPrivateKey }, timeoutMs: 5 * MINUTE, network: fleet.network });
    const apply = await workspace.apply(['-var', 'connection_timeout=10s']);
    expect(apply.exitCode).toBe(1);
    expect(apply.output).toMatch(/knownhosts: key mismatch/);
    await expect(beta.readFile('/root/wrong-key-proof')).rejects.toThrow('cannot read');
  }, 5 * MINUTE);

  test('a stack that would connect outside the fleet is refused before terraform runs', async () => {
    const outsider = { name: 'outsider', address: '10.1.2.3' } as FleetHost;
    const stackDir = synthesizeProofStack(fleet, [outsider], { pinnedKeys: [alpha.sshHostKey], stackName: 'outsider' });
    const workspace = await TerraformWorkspace.fromSynthesizedStack(stackDir, { dir: join(fleet.workDir, 'terraform-outsider'), variables: { ssh_private_key: fleet.sshPrivateKey }, network: fleet.network });
    await expect(workspace.apply()).rejects.toThrow('address = "10.1.2.3": outside 198.18.0.0/15');
    await expect(workspace.plan()).rejects.toThrow('outside 198.18.0.0/15');
    expect(readFileSync(workspace.logFile, 'utf8')).not.toContain('terraform apply');
  });

  test('a killed host comes back on restart with the same address, disk and files; the other host stays reachable', async () => {
    const initBefore = alpha.initPid!;
    await alpha.kill();
    expect(alpha.running).toBe(false);
    expect(existsSync(`/proc/${initBefore}`)).toBe(false);
    const down = await alpha.ssh('true', { timeoutMs: 15_000 });
    expect(down.status).not.toBe(0);
    // The bridge keeps its own MAC when a port goes away, so the surviving host does not stall.
    expect(readFileSync(`/sys/class/net/${fleet.network.bridge}/address`, 'utf8').trim()).toBe(fleet.network.mac);
    expect((await beta.ssh('hostname', { timeoutMs: 15_000 })).stdout).toBe('beta\n');

    await alpha.restart();
    timings.push(`restart after kill: ${alpha.bootSeconds[alpha.bootSeconds.length - 1].toFixed(1)} s`);
    expect(alpha.initPid).not.toBe(initBefore);
    const back = await alpha.ssh(`hostname; ip -4 -o addr show dev host0; readlink ${alpha.disks[0].path}; blkid -o value -s TYPE ${alpha.disks[0].path}; cat /root/fleet-proof`);
    expect(back.status).toBe(0);
    expect(back.stdout).toContain('alpha\n');
    expect(back.stdout).toContain(`inet ${alpha.address}/24`);
    expect(back.stdout).toContain(`../../${alpha.disks[0].loopDevice.replace('/dev/', '')}\next4\n`);
    expect(back.stdout).toContain('applied by terraform to alpha\n');
  }, 5 * MINUTE);

  test('a clean stop (poweroff) and a boot bring the host back too; a detached disk is gone after it', async () => {
    const log = readFileSync(beta.consoleLog, 'utf8').length;
    await beta.stop();
    // Powered off, not killed: systemd stopped its units.
    expect(readFileSync(beta.consoleLog, 'utf8').slice(log)).toMatch(/has been shut down|Power-Off/);
    expect(beta.running).toBe(false);
    const [disk] = beta.disks;
    expect(() => beta.detachDisk('virtio-none')).toThrow('detachDisk: id = "virtio-none": no such disk (disks: virtio-beta-data)');
    beta.detachDisk(disk.id);
    await beta.boot();
    expect(beta.disks).toEqual([]);
    expect((await beta.exec(`test -e ${disk.path} || test -e ${disk.loopDevice} || echo absent`)).stdout).toBe('absent\n');
    expect((await beta.ssh('systemctl is-system-running')).stdout.trim()).toMatch(/^(running|degraded)$/);
  }, 5 * MINUTE);

  test('destroy() removes every container, mount, loop device, the bridge and the work directory', async () => {
    const inits = [alpha.initPid!, beta.initPid!];
    const diskFiles = [alpha.disks[0].file, join(fleet.workDir, 'hosts/beta/disks/virtio-beta-data.img')];
    // beta's detached disk stays bound to its loop device until the fleet is destroyed.
    const loops = (await Promise.all(diskFiles.map(loopsOf))).flat();
    expect(loops).toHaveLength(2);
    await fleet.destroy();
    for (const pid of inits) expect(existsSync(`/proc/${pid}`)).toBe(false);
    for (const dir of [alpha, beta].flatMap((h) => hostCgroupDirs(h.machine))) expect(existsSync(dir)).toBe(false);
    expect(mountPointsUnder(fleet.workDir)).toEqual([]);
    expect(existsSync(`/sys/class/net/${fleet.network.bridge}`)).toBe(false);
    expect(existsSync(fleet.workDir)).toBe(false);
    const stillBound = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout;
    for (const file of diskFiles) expect(stillBound).not.toContain(file);
  }, 2 * MINUTE);
});

describe('fleet image', () => {
  test('holds every package the synthesized documents install: the hosts have no archive to fetch from', () => {
    const wanted = new Set(synthesizeExample().documents.flatMap((d) => (parse(d.userData).packages ?? []) as string[]));
    expect(wanted.size).toBeGreaterThan(0);
    expect([...wanted].filter((p) => !FLEET_IMAGE_PACKAGES.includes(p))).toEqual([]);
  });
});

describeFleet('fleet harness: cleanup by record', () => {
  test('a run killed with its host running (even before its init was recorded) is cleaned up by the next run', async () => {
    const stateDir = mkdtempSync('/var/tmp/fleet-harness-test-state-');
    // A separate process makes a fleet with one host and is then killed, as a CI timeout would.
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', ORPHAN_SCRIPT, stateDir], {
      cwd: join(__dirname, '..'),
      env: { ...process.env, TS_NODE_PROJECT: 'tsconfig.dev.json', TS_NODE_PREFER_TS_EXTS: 'true' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const made = await new Promise<{ workDir: string; bridge: string; rootDir: string; diskFile: string; init: number }>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the child fleet did not come up within 5 minutes:\n${out}`)), 5 * MINUTE);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line));
        }
      });
      child.on('exit', (code) => reject(new Error(`the child fleet exited ${code}:\n${out}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The container outlives its owner: only the record says what to clean.
    expect(existsSync(`/proc/${made.init}`)).toBe(true);
    expect(mountPointsUnder(made.rootDir)).not.toEqual([]);
    expect((await loopsOf(made.diskFile)).length).toBe(1);

    // As if killed between starting systemd-nspawn and recording the container's init.
    const recordFile = join(stateDir, readdirSync(stateDir).find((f) => f.endsWith('.json'))!);
    const record = JSON.parse(readFileSync(recordFile, 'utf8'));
    delete record.hosts[0].init;
    writeFileSync(recordFile, JSON.stringify(record));

    const log: string[] = [];
    const cleaned = await cleanupEarlierRuns(stateDir, (line) => log.push(line));
    expect(cleaned).toHaveLength(1);
    expect(existsSync(`/proc/${made.init}`)).toBe(false);
    expect(mountPointsUnder(made.rootDir)).toEqual([]);
    expect(existsSync(`/sys/class/net/${made.bridge}`)).toBe(false);
    expect(existsSync(made.workDir)).toBe(false);
    expect(log.join('\n')).toContain(`removed bridge ${made.bridge}`);
    expect(log.join('\n')).toContain(`orphan: killed process ${made.init}`);
    // A second pass finds nothing left to do.
    expect(await cleanupEarlierRuns(stateDir, () => undefined)).toEqual([]);
    rmSync(stateDir, { recursive: true });
  }, 10 * MINUTE);
});

const ORPHAN_SCRIPT = `
const { Fleet } = require('./lib/fleet');
const stateDir = process.argv[1];
(async () => {
  const fleet = await Fleet.create({ stateDir, log: (l) => process.stderr.write('child fleet: ' + l + '\\n') });
  const host = await fleet.addHost({ name: 'orphan', address: 9, disks: [{ id: 'virtio-orphan', sizeMiB: 16 }] });
  process.stdout.write(JSON.stringify({ workDir: fleet.workDir, bridge: fleet.network.bridge, rootDir: host.rootDir, diskFile: host.disks[0].file, init: host.initPid }) + '\\n');
  setInterval(() => undefined, 1000);
})().catch((e) => { console.error(e); process.exit(1); });
`;

async function loopsOf(file: string): Promise<string[]> {
  const r = await runBounded(['losetup', '-j', file], { timeoutMs: 10_000 });
  return r.stdout.split('\n').filter(Boolean);
}

/**
 * A cdktf stack as a user would write one: the null provider, and per host a null_resource whose
 * remote-exec writes a file, over SSH with the key variable and the host's pinned key. Returns the
 * synthesized stack directory (cdktf.out/stacks/<name>).
 */
function synthesizeProofStack(fleet: Fleet, hosts: FleetHost[], options: { pinnedKeys: string[]; stackName?: string; file?: string }): string {
  const stackName = options.stackName ?? 'proof';
  const outdir = join(fleet.workDir, `cdktf.out-${stackName}`);
  const app = new App({ outdir });
  const stack = new TerraformStack(app, stackName);
  new nullProvider.NullProvider(stack, 'null');
  const key = new TerraformVariable(stack, 'ssh_private_key', { type: 'string', sensitive: true });
  const timeout = new TerraformVariable(stack, 'connection_timeout', { type: 'string', default: '1m' });
  hosts.forEach((host, i) => {
    new nullResource.Resource(stack, `${host.name}-proof`, {
      triggers: { host: host.name },
      connection: { type: 'ssh', host: host.address, user: 'root', privateKey: key.stringValue, hostKey: options.pinnedKeys[i], timeout: timeout.stringValue },
      provisioners: [{ type: 'remote-exec', inline: [`echo 'applied by terraform to ${host.name}' > ${options.file ?? '/root/fleet-proof'}`] }],
    });
  });
  app.synth();
  return join(outdir, 'stacks', stackName);
}
