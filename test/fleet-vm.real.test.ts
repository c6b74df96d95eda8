import { spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import { mkdtempSync } from 'fs';
import { join } from 'path';
import { diagnoseApply, Fleet, FleetHost, TerraformCommandResult, TerraformWorkspace, VmHost } from '../lib/fleet';
import { describeWhenPresent, fleetTestPrerequisites, FLEET_PACKAGES_HINT } from './support/describe-when';
import { eventually } from './support/eventually';
import { fleetMemberHost, synthesizeFleetStack, userServiceUnit, vmMemberSerials } from './support/fleet-stack';
import { connectZookeeper } from './support/zookeeper-client';

/*
 * A ZooKeeper member on a real kernel: zk1 is a QEMU VM (KVM when there is /dev/kvm, TCG otherwise)
 * whose snapshots and transaction log are on two NVMe disks named by their by-id paths; zk2, zk3, app1,
 * app2 and web1 are containers on the same bridge. The stack is applied with terraform over SSH. Then
 * what containers cannot show: zk1's mounts after a reboot come from fstab, before ZooKeeper starts;
 * a power loss under a write load loses no acknowledged write; a boot without the transaction-log disk
 * neither hangs nor lets ZooKeeper write to the root filesystem, and says which disk; with the disk
 * back, the member rejoins.
 */
const qemuMissing = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { stdio: 'ignore' }).status === 0 ? [] : ['qemu-system-x86_64 is not on the PATH (Debian package qemu-system-x86)'];
const describeFleet = describeWhenPresent('test/fleet-vm.real.test.ts (a ZooKeeper member as a VM)', [...fleetTestPrerequisites(), ...qemuMissing], `${FLEET_PACKAGES_HINT}; apt-get install qemu-system-x86`);

const MINUTE = 60_000;
const timings: string[] = [];
const DATA_DIR = '/var/lib/zookeeper';
const TXLOG_DIR = '/var/lib/zookeeper-txlog';

describeFleet('a ZooKeeper member on a VM with NVMe disks: reboot, power loss, a missing disk', () => {
  let fleet: Fleet;
  let zk1: VmHost;
  let workspace: TerraformWorkspace;
  let firstApply: TerraformCommandResult;
  const zkSecret = randomBytes(32).toString('hex');
  /** Writes acknowledged by the ensemble during the power loss, to be read back. */
  let acknowledged: string[] = [];
  const host = (name: string): FleetHost | VmHost => (name === 'zk1' ? zk1 : fleet.host(name));
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
    Number((await zk1.sshChecked(`systemctl show -p ${property} --value ${unit}`)).trim());

  beforeAll(async () => {
    const started = Date.now();
    fleet = await Fleet.create();
    timings.push(`image: ${fleet.image.built ? 'built' : 'from the cache (built'} in ${fleet.image.buildSeconds.toFixed(0)} s${fleet.image.built ? '' : ')'}`);
    const serials = vmMemberSerials(1);
    const booting = Date.now();
    [zk1] = await Promise.all([
      fleet.addVm({ name: 'zk1', address: 11, memoryMiB: 2048, disks: [{ serial: serials.data, sizeMiB: 512 }, { serial: serials.txlog, sizeMiB: 512 }] }),
      fleet.addHosts([fleetMemberHost(2), fleetMemberHost(3), { name: 'app1', address: 55 }, { name: 'app2', address: 56 }, { name: 'web1', address: 30 }]),
    ]);
    timings.push(`zk1 (VM, ${zk1.kvm ? 'KVM' : 'TCG'}) booted in ${zk1.bootSeconds[0].toFixed(1)} s beside 5 containers; all up ${since(booting)} after the start`);
    for (const provider of ['app1', 'app2']) await fleet.host(provider).execChecked(userServiceUnit(provider));
    const out = mkdtempSync(join(fleet.workDir, 'synth-'));
    // This machine (the bridge's address) may reach the members' client port: the power-loss writer runs here.
    const stackDir = synthesizeFleetStack(fleet, out, { clientNetworks: [`${fleet.network.gatewayAddress}/32`] });
    workspace = await TerraformWorkspace.fromSynthesizedStack(stackDir, {
      dir: join(fleet.workDir, 'terraform'),
      variables: { ssh_private_key: fleet.sshPrivateKey, zk_secret: zkSecret },
      network: fleet.network,
    });
    firstApply = await workspace.apply();
    timings.push(`first apply: ${firstApply.seconds.toFixed(0)} s (exit ${firstApply.exitCode}); whole set-up ${since(started)}`);
    if (firstApply.exitCode !== 0) throw new Error(`terraform exited ${firstApply.exitCode}:\n${firstApply.output.slice(-6000)}\n${await diagnoseApply(firstApply.output, fleet.hosts)}`);
  }, 30 * MINUTE);

  afterAll(async () => {
    if (timings.length > 0) console.log(`fleet VM timings:\n  ${timings.join('\n  ')}`);
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
    expect([...seen.names].sort()).toEqual(['app1', 'app2']);
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
      expect((await zk1.sshChecked(`systemctl show -p After --value zookeeper.service`)).split(/\s+/)).toContain(mountUnit);
    }
    expect((await zk1.sshChecked(`cat ${DATA_DIR}/myid`)).trim()).toBe('1');
  }, 15 * MINUTE);

  test('a power loss of zk1 under a write load loses no acknowledged write, and zk1 rejoins', async () => {
    for (const m of ['zk1', 'zk2', 'zk3']) await fleet.network.assertRoute(host(m).address);
    const client = await connectZookeeper(['zk1', 'zk2', 'zk3'].map((m) => `${host(m).address}:2181`).join(','), { sessionTimeout: 20000 }, [admin()], 60000);
    const root = `/vm-power-loss-${randomBytes(3).toString('hex')}`;
    const create = (path: string) => new Promise<void>((resolve, reject) => client.create(path, Buffer.from(path), (e) => (e ? reject(e) : resolve())));
    await create(root);
    // Bounded in count and time; the kill comes once a tenth of them is acknowledged.
    const total = 1500;
    const deadline = Date.now() + 3 * MINUTE;
    let failed = 0;
    let killed = false;
    acknowledged = [];
    for (let i = 0; i < total && Date.now() < deadline; i++) {
      const path = `${root}/w${String(i).padStart(5, '0')}`;
      try {
        await create(path);
        acknowledged.push(path);
      } catch {
        failed++;
      }
      if (!killed && acknowledged.length === total / 10) {
        killed = true;
        await zk1.kill();
      }
    }
    client.close();
    timings.push(`power loss: ${acknowledged.length} writes acknowledged, ${failed} refused while the session moved`);
    expect(killed).toBe(true);
    expect(acknowledged.length).toBeGreaterThan(total / 2);
    const started = Date.now();
    await zk1.boot();
    await quorumWithZk1();
    timings.push(`power loss: zk1 booted and back in the quorum in ${since(started)}`);
    // Read through zk1 alone: a member that rejoined has synchronized with the leader.
    expect(await missingAcknowledged(['zk1'])).toEqual([]);
  }, 15 * MINUTE);

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
