import { spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import { mkdtempSync } from 'fs';
import { createServer, Server } from 'http';
import { AddressInfo } from 'net';
import { join } from 'path';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { agentsPackage, agentsPackageFileName } from '../lib/cloud-init/agents-package';
import { shellQuote } from '../lib/render/shell-word';
import { diagnoseApply, Fleet, FleetHost, TerraformCommandResult, TerraformWorkspace, VmHost } from '../lib/fleet';
import { describeWhenPresent, fleetTestPrerequisites, FLEET_PACKAGES_HINT } from './support/describe-when';
import { eventually } from './support/eventually';
import { fleetMemberHost, synthesizeFleetStack, userServiceUnit, vmMemberSerials } from './support/fleet-stack';
import { connectZookeeper } from './support/zookeeper-client';

/*
 * A ZooKeeper member on a real kernel, and hosts booted from their user data alone. zk1 is a QEMU VM
 * (KVM when there is /dev/kvm, TCG otherwise) whose snapshots and transaction log are on two NVMe disks
 * named by their by-id paths; it boots from its document (gzipped, as `userDataGzipBase64` gives it) as
 * a NoCloud seed, with the distribution's full module list. zk2, zk3, app1, app2 and web1 are
 * containers on the same bridge, applied with terraform over SSH; app3 and app4 are containers booted
 * from their documents, fetching the agents' package over HTTP from this machine (app4 gets a damaged
 * copy). Then what containers cannot show: zk1's mounts after a reboot come from fstab, before
 * ZooKeeper starts; a power loss under a write load loses no acknowledged write; a boot without the
 * transaction-log disk neither hangs nor lets ZooKeeper write to the root filesystem, and says which
 * disk; with the disk back, the member rejoins.
 */
const qemuMissing = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { stdio: 'ignore' }).status === 0 ? [] : ['qemu-system-x86_64 is not on the PATH (Debian package qemu-system-x86)'];
const describeFleet = describeWhenPresent('test/fleet-vm.real.test.ts (a ZooKeeper member as a VM)', [...fleetTestPrerequisites(), ...qemuMissing], `${FLEET_PACKAGES_HINT}; apt-get install qemu-system-x86`);

const MINUTE = 60_000;

/** The agents' package with one byte changed: what a damaged download or a tampered mirror serves. */
function damagedAgentsPackage(): Buffer {
  const copy = Buffer.from(agentsPackage().archive);
  copy[copy.length - 100] ^= 0xff;
  return copy;
}
const timings: string[] = [];
const DATA_DIR = '/var/lib/zookeeper';
const TXLOG_DIR = '/var/lib/zookeeper-txlog';

describeFleet('a ZooKeeper member on a VM with NVMe disks: reboot, power loss, a missing disk', () => {
  let fleet: Fleet;
  let zk1: VmHost;
  let workspace: TerraformWorkspace;
  let firstApply: TerraformCommandResult;
  let agentsServer: Server;
  let userData: Record<string, string> = {};
  /** The URLs the user-data providers fetch the agents' package from: app3 the package, app4 a damaged copy. */
  const urls: Record<string, string> = {};
  const zkSecret = randomBytes(32).toString('hex');
  /** Writes acknowledged by the ensemble during the power loss, to be read back. */
  let acknowledged: string[] = [];
  const host = (name: string): FleetHost | VmHost => (name === 'zk1' ? zk1 : fleet.host(name));
  const cloudInitProblems = async (h: FleetHost | VmHost) =>
    (await h.readFile('/var/log/cloud-init.log')).split('\n').filter((l) => / (WARNING|ERROR|CRITICAL)|Traceback/.test(l));
  const since = (started: number) => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  const srvr = async (name: string): Promise<string> =>
    (await host(name).exec(`bash -c 'exec 3<>/dev/tcp/${host(name).address}/2181 && printf srvr >&3 && cat <&3' 2>/dev/null | sed -n 's/^Mode: //p'`)).stdout.trim();
  const quorumWithZk1 = () =>
    eventually('zk1 back in the quorum: a leader and two followers', async () => {
      const m = (await Promise.all(['zk1', 'zk2', 'zk3'].map(srvr))).sort();
      return m.join() === 'follower,follower,leader' ? m : undefined;
    }, 5 * MINUTE, 2000);
  /** The ensemble's superuser, whose password the stack derives from its secret as Terraform does. */
  const admin = () => ({ scheme: 'digest' as const, user: 'admin', password: createHash('sha256').update(`admin:${zkSecret}`).digest('hex') });
  const responders = async (count: number): Promise<{ names: Set<string>; failed: number }> => {
    const out = await fleet.host('web1').exec(`for i in $(seq ${count}); do curl -s -m 2 -o - -w ' %{http_code}\\n' http://127.0.0.1:3210/whoami || echo ' 000'; done`, { timeoutMs: count * 3000 });
    const lines = out.stdout.split('\n').filter(Boolean);
    return { names: new Set(lines.filter((l) => l.endsWith(' 200')).map((l) => l.split(' ')[0])), failed: lines.filter((l) => !l.endsWith(' 200')).length };
  };
  /** The acknowledged writes a client connected to `members` alone does not find. */
  const missingAcknowledged = async (members: string[]): Promise<string[]> => {
    const root = acknowledged[0].split('/').slice(0, 2).join('/');
    const reader = await connectZookeeper(members.map((m) => `${host(m).address}:2181`).join(','), { sessionTimeout: 20000 }, [admin()], 60000);
    try {
      const children = new Set(await new Promise<string[]>((resolve, reject) => reader.getChildren(root, (e, c) => (e ? reject(e) : resolve(c)))));
      return acknowledged.filter((p) => !children.has(p.slice(root.length + 1)));
    } finally {
      reader.close();
    }
  };
  const unitTimestamp = async (unit: string, property: string): Promise<number> =>
    Number((await zk1.sshChecked(`systemctl show -p ${property} --value ${shellQuote(unit)}`)).trim());

  beforeAll(async () => {
    const started = Date.now();
    fleet = await Fleet.create();
    timings.push(`image: ${fleet.image.built ? 'built' : 'from the cache (built'} in ${fleet.image.buildSeconds.toFixed(0)} s${fleet.image.built ? '' : ')'}`);
    // The agents' package over HTTP on the bridge's own address: what a host booted from user data fetches.
    const files: Record<string, Buffer> = { [`/agents/${agentsPackageFileName()}`]: agentsPackage().archive, [`/damaged/${agentsPackageFileName()}`]: damagedAgentsPackage() };
    agentsServer = createServer((req, res) => {
      const body = files[req.url ?? ''];
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/octet-stream' }).end(body ?? '');
    });
    await new Promise<void>((resolve) => agentsServer.listen(0, fleet.network.gatewayAddress, resolve));
    const base = `http://${fleet.network.gatewayAddress}:${(agentsServer.address() as AddressInfo).port}`;
    urls.app3 = `${base}/agents/${agentsPackageFileName()}`;
    urls.app4 = `${base}/damaged/${agentsPackageFileName()}`;

    const booting = Date.now();
    await fleet.addHosts([fleetMemberHost(2), fleetMemberHost(3), { name: 'app1', address: 55 }, { name: 'app2', address: 56 }, { name: 'web1', address: 30 }]);
    timings.push(`5 containers booted in ${since(booting)}`);
    for (const provider of ['app1', 'app2']) await fleet.host(provider).execChecked(userServiceUnit(provider));
    const out = mkdtempSync(join(fleet.workDir, 'synth-'));
    // This machine (the bridge's address) may reach the members' client port: the power-loss writer runs here.
    const stackDir = synthesizeFleetStack(fleet, out, {
      clientNetworks: [`${fleet.network.gatewayAddress}/32`],
      vms: ['zk1'],
      fromUserData: ['zk1'],
      userDataProviders: [{ name: 'app3', address: 57, packageUrl: urls.app3 }, { name: 'app4', address: 58, packageUrl: urls.app4 }],
    });
    workspace = await TerraformWorkspace.fromSynthesizedStack(stackDir, {
      dir: join(fleet.workDir, 'terraform'),
      variables: { ssh_private_key: fleet.sshPrivateKey, zk_secret: zkSecret },
      network: fleet.network,
    });
    firstApply = await workspace.apply();
    timings.push(`apply to the SSH hosts: ${firstApply.seconds.toFixed(0)} s (exit ${firstApply.exitCode})`);
    if (firstApply.exitCode !== 0) throw new Error(`terraform exited ${firstApply.exitCode}:\n${firstApply.output.slice(-6000)}\n${await diagnoseApply(firstApply.output, fleet.hosts)}`);
    userData = (await workspace.outputs()) as Record<string, string>;

    // Then the hosts that boot from their documents, as a provider's VM resource would boot them.
    const serials = vmMemberSerials(1);
    const firstBoot = Date.now();
    [zk1] = await Promise.all([
      fleet.addVm({
        name: 'zk1', address: 11, memoryMiB: 2048,
        disks: [{ serial: serials.data, sizeMiB: 512 }, { serial: serials.txlog, sizeMiB: 512 }],
        userData: Buffer.from(userData.zk1_user_data_gzip_base64, 'base64'),
      }),
      fleet.addHosts(['app3', 'app4'].map((name, i) => ({ name, address: 57 + i, userData: userData[`${name}_user_data`] }))),
    ]);
    timings.push(`first boot from user data: zk1 (VM, ${zk1.kvm ? 'KVM' : 'TCG'}) up in ${zk1.bootSeconds[0].toFixed(1)} s, app3 ${fleet.host('app3').bootSeconds[0].toFixed(1)} s, app4 ${fleet.host('app4').bootSeconds[0].toFixed(1)} s; all ${since(firstBoot)}`);
    await fleet.host('app3').execChecked(userServiceUnit('app3'));
    timings.push(`whole set-up ${since(started)}`);
  }, 30 * MINUTE);

  test('zk1 boots from its gzipped document alone (under 16 KiB) with the full module list: no cloud-init warning, and it joins the quorum', async () => {
    const gz = userData.zk1_user_data_gzip_base64;
    timings.push(`zk1's document: ${userData.zk1_user_data.length} bytes, ${gz.length} gzipped and base64-encoded`);
    expect(gz.length).toBeLessThan(16 * 1024);
    expect((await zk1.ssh('cloud-init status --long')).stdout).toMatch(/^status: done$/m);
    expect(await cloudInitProblems(zk1)).toEqual([]);
    // The distribution's modules ran, not only the ones an SSH apply runs.
    const log = await zk1.readFile('/var/log/cloud-init.log');
    for (const module of ['package[-_]update[-_]upgrade[-_]install', 'users[-_]groups', 'write[-_]files', 'scripts[-_]user']) expect(log).toMatch(new RegExp(`Running module ${module}`));
    await quorumWithZk1();
  }, 10 * MINUTE);

  test('a provider booted from its document fetches the agents, checks them, registers, and is served through web1', async () => {
    const app3 = fleet.host('app3');
    expect((await app3.exec('cloud-init status --long')).stdout).toMatch(/^status: done$/m);
    expect(await cloudInitProblems(app3)).toEqual([]);
    expect((await app3.execChecked('systemctl is-active smartstack-nerve.service')).trim()).toBe('active');
    expect((await app3.execChecked(`sha256sum </var/lib/smartstack/agents/${agentsPackage().sha256}.tgz`)).split(' ')[0]).toBe(agentsPackage().sha256);
    const seen = await eventually('requests through web1 reach app3', async () => {
      const r = await responders(30);
      return r.names.has('app3') ? r : undefined;
    }, 3 * MINUTE, 1000);
    expect(seen.names.has('app3')).toBe(true);
  }, 10 * MINUTE);

  test('a damaged agents package fails its first boot, naming the URL and both checksums, and nothing of it is kept or run', async () => {
    const app4 = fleet.host('app4');
    const status = await app4.exec('cloud-init status --long');
    expect(status.status).not.toBe(0);
    expect(status.stdout).toMatch(/^status: error$/m);
    const output = await app4.readFile('/var/log/cloud-init-output.log');
    const got = createHash('sha256').update(damagedAgentsPackage()).digest('hex');
    expect(output).toContain(`the agents' package from ${urls.app4} has the checksum ${got}, not ${agentsPackage().sha256}: not used`);
    expect((await app4.exec(`ls /var/lib/smartstack/agents/ 2>/dev/null; command -v smartstack; systemctl is-active smartstack-nerve.service`)).stdout.trim()).toMatch(/^(inactive|unknown)$/);
  }, 5 * MINUTE);

  afterAll(async () => {
    if (timings.length > 0) console.log(`fleet VM timings:\n  ${timings.join('\n  ')}`);
    agentsServer?.close();
    await fleet?.destroy();
  }, 5 * MINUTE);

  test('zk1 keeps its snapshots and transaction log on two NVMe disks, mounted noatime; the memory settings are in force', async () => {
    const serials = vmMemberSerials(1);
    for (const [dir, serial] of [[DATA_DIR, serials.data], [TXLOG_DIR, serials.txlog]]) {
      const [source, options] = (await zk1.sshChecked(`findmnt -n -o SOURCE,OPTIONS --mountpoint ${dir}`)).trim().split(/\s+/);
      expect(source).toBe((await zk1.sshChecked(`readlink -f /dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_${serial}`)).trim());
      expect(source).toMatch(/^\/dev\/nvme\dn1$/);
      expect(options.split(',')).toContain('noatime');
      expect((await zk1.sshChecked(`lsblk -n -d -o TYPE,SERIAL ${source}`)).trim().split(/\s+/)).toEqual(['disk', serial]);
    }
    // A VM's /proc/sys is its own: the apply set the ZooKeeper host's swappiness.
    expect((await zk1.sshChecked('sysctl -n vm.swappiness')).trim()).toBe('1');
    // cgroup v2 on the VM: the unit's MemorySwapMax=0 is the kernel's limit.
    expect((await zk1.sshChecked('cat /sys/fs/cgroup/system.slice/zookeeper.service/memory.swap.max')).trim()).toBe('0');
    await quorumWithZk1();
    const seen = await eventually('requests through web1 reach app1 and app2', async () => {
      const r = await responders(20);
      return r.names.has('app1') && r.names.has('app2') ? r : undefined;
    }, 3 * MINUTE, 1000);
    expect([...seen.names]).toEqual(expect.arrayContaining(['app1', 'app2']));
  }, 10 * MINUTE);

  test('after a reboot the disks are mounted from fstab before ZooKeeper starts, and zk1 rejoins with its data', async () => {
    const fstab = await zk1.readFile('/etc/fstab');
    for (const dir of [DATA_DIR, TXLOG_DIR]) expect(fstab).toMatch(new RegExp(`^\\S+ ${dir} ext4 \\S*noatime\\S* `, 'm'));
    const started = Date.now();
    await zk1.reboot();
    timings.push(`reboot: up in ${since(started)}`);
    await quorumWithZk1();
    timings.push(`reboot: back in the quorum ${since(started)} after the reboot began`);
    for (const dir of [DATA_DIR, TXLOG_DIR]) {
      expect((await zk1.sshChecked(`findmnt -n -o OPTIONS --mountpoint ${dir}`)).trim().split(',')).toContain('noatime');
    }
    // Ordered by the unit (RequiresMountsFor), not by luck: both mounts were active before ZooKeeper's process started.
    const zkStart = await unitTimestamp('zookeeper.service', 'ExecMainStartTimestampMonotonic');
    for (const dir of [DATA_DIR, TXLOG_DIR]) {
      const mountUnit = (await zk1.sshChecked(`systemd-escape -p --suffix=mount ${dir}`)).trim();
      const mounted = await unitTimestamp(mountUnit, 'ActiveEnterTimestampMonotonic');
      expect(mounted).toBeGreaterThan(0);
      expect(mounted).toBeLessThan(zkStart);
      // systemctl quotes a name with a backslash in it, and doubles the backslash.
      const after = (await zk1.sshChecked('systemctl show -p After --value zookeeper.service')).split(/\s+/).map((u) => u.replace(/^"(.*)"$/, '$1').replace(/\\\\/g, '\\'));
      expect(after).toContain(mountUnit);
    }
    expect((await zk1.sshChecked(`cat ${DATA_DIR}/myid`)).trim()).toBe('1');
  }, 15 * MINUTE);

  test('a power loss of zk1 under a write load loses no acknowledged write, and zk1 rejoins', async () => {
    for (const m of ['zk1', 'zk2', 'zk3']) await fleet.network.assertRoute(host(m).address);
    // The writer is the agents' own session: a member that dies without closing its connections
    // (a power loss sends no RST) is noticed by its watchdog, not by TCP's retransmission timeout.
    const client = new ZkSession(['zk1', 'zk2', 'zk3'].map((m) => `${host(m).address}:2181`).join(','), { sessionTimeoutMs: 20000 });
    client.addCredentials(admin());
    expect(await client.start(60000)).toBe(true);
    const root = `/vm-power-loss-${randomBytes(3).toString('hex')}`;
    await client.create(root, Buffer.from(root), CreateMode.PERSISTENT);
    // Bounded in count and time; the kill comes once a tenth of them is acknowledged.
    const total = 1500;
    const deadline = Date.now() + 3 * MINUTE;
    let failed = 0;
    let killed = false;
    acknowledged = [];
    for (let i = 0; i < total && Date.now() < deadline; i++) {
      const path = `${root}/w${String(i).padStart(5, '0')}`;
      // Requests fail fast while the session moves; wait for it rather than spend the count.
      if (!client.connected) await eventually('the writer reconnected', async () => client.connected || undefined, deadline - Date.now(), 100);
      try {
        await client.create(path, Buffer.from(path), CreateMode.PERSISTENT);
        acknowledged.push(path);
      } catch {
        failed++;
      }
      if (!killed && acknowledged.length === total / 10) {
        killed = true;
        await zk1.kill();
      }
    }
    await client.close();
    timings.push(`power loss: ${acknowledged.length} writes acknowledged, ${failed} refused while the session moved (${client.disconnects} connection losses)`);
    expect(killed).toBe(true);
    expect(acknowledged.length).toBeGreaterThan(total / 2);
    const started = Date.now();
    await zk1.boot();
    await quorumWithZk1();
    timings.push(`power loss: zk1 booted and back in the quorum in ${since(started)}`);
    // Read through zk1 alone: a member that rejoined has synchronized with the leader.
    expect(await missingAcknowledged(['zk1'])).toEqual([]);
  }, 25 * MINUTE);

  test('booted without its transaction-log disk, zk1 does not hang, ZooKeeper stays down and writes nothing to the root filesystem, and the journal names the disk', async () => {
    const serial = vmMemberSerials(1).txlog;
    await zk1.stop();
    zk1.detachDisk(serial);
    const started = Date.now();
    await zk1.boot();
    timings.push(`boot without the txlog disk: SSH and systemd settled in ${since(started)}`);
    expect((await zk1.ssh('systemctl is-active zookeeper.service')).stdout.trim()).not.toBe('active');
    expect((await zk1.ssh(`mountpoint -q ${TXLOG_DIR}`)).status).not.toBe(0);
    // The directory under the missing mount, on the root filesystem, stays empty.
    expect((await zk1.sshChecked(`ls -A ${TXLOG_DIR}`)).trim()).toBe('');
    const journal = await zk1.sshChecked('journalctl -b --no-pager -o cat');
    expect(journal).toContain(`nvme-QEMU_NVMe_Ctrl_${serial}`);
    expect(journal).toMatch(/Dependency failed for zookeeper\.service|Dependency failed for ZooKeeper/);
    // The other two members keep the quorum meanwhile.
    expect((await Promise.all(['zk2', 'zk3'].map(srvr))).sort()).toEqual(['follower', 'leader']);
  }, 15 * MINUTE);

  test('with the disk back, zk1 rejoins and serves every acknowledged write', async () => {
    await zk1.stop();
    zk1.reattachDisk(vmMemberSerials(1).txlog);
    const started = Date.now();
    await zk1.boot();
    await quorumWithZk1();
    timings.push(`disk back: zk1 in the quorum ${since(started)} after its boot began`);
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(await missingAcknowledged(['zk1'])).toEqual([]);
    expect((await zk1.ssh('systemctl is-active zookeeper.service')).stdout.trim()).toBe('active');
  }, 15 * MINUTE);
});
