import { randomBytes } from 'crypto';
import { mkdtempSync } from 'fs';
import { join } from 'path';
import { diagnoseApply, Fleet, FleetHost, resourceSeconds, TerraformCommandResult, TerraformWorkspace } from '../lib/fleet';
import { describeWhenPresent, fleetTestPrerequisites, FLEET_PACKAGES_HINT } from './support/describe-when';
import { FLEET_HOSTS, synthesizeFleetStack, userServiceUnit } from './support/fleet-stack';
import { eventually } from './support/eventually';

/*
 * The deploy as a user runs it: the default example's topology, synthesized for six real Debian 12
 * hosts (systemd containers on a bridge of this run's own, in 198.18.0.0/15) and applied with the real
 * terraform over SSH. Containers are not VMs: `lsblk` says `loop` rather than `disk`, systemd ignores
 * fstab device entries (a member's mounts after a reboot are not tested here), /proc/sys is read-only.
 * Terraform cannot download the null provider here: the stack's null_resources run as terraform_data,
 * with the same connection and provisioners.
 */
const describeFleet = describeWhenPresent('fleet deploy tests', fleetTestPrerequisites(), FLEET_PACKAGES_HINT);

const MINUTE = 60_000;
const timings: string[] = [];

/** The null_resource address of a host's delivery in the mapped workspace. */
function deliveryOf(workspace: TerraformWorkspace, state: string, host: string): string {
  const address = state.split('\n').find((line) => line.startsWith(`terraform_data.${host}_cloud-init_`));
  if (!address) throw new Error(`no delivery of ${host} in the state of ${workspace.dir}:\n${state}`);
  return address.trim();
}


describeFleet('terraform apply of the default topology onto real Debian 12 hosts', () => {
  let fleet: Fleet;
  let workspace: TerraformWorkspace;
  let firstApply: TerraformCommandResult;
  const host = (name: string): FleetHost => fleet.host(name);
  const zkSecret = randomBytes(32).toString('hex');
  /** A failed apply shows its output's end, where the failing host and step are named. */
  const expectApplied = async (r: TerraformCommandResult) => {
    if (r.exitCode !== 0) throw new Error(`terraform exited ${r.exitCode} after ${r.seconds.toFixed(0)} s:\n${r.output.slice(-6000)}\n${await diagnoseApply(r.output, fleet.hosts)}`);
  };

  const srvr = async (name: string): Promise<string> =>
    (await host(name).exec(`bash -c 'exec 3<>/dev/tcp/${host(name).address}/2181 && printf srvr >&3 && cat <&3' 2>/dev/null | sed -n 's/^Mode: //p'`)).stdout.trim();
  const registered = async (): Promise<string> =>
    host('web1').execChecked(
      `smartstack status --zk ${['zk1', 'zk2', 'zk3'].map((m) => `${host(m).address}:2181`).join(',')} --auth-file /etc/smartstack/credentials/zookeeper-zk-reader.json`,
    );
  /** Who answers through web1's sidecar, for a bounded number of requests. */
  const responders = async (count: number): Promise<{ names: Set<string>; failed: number }> => {
    const out = await host('web1').exec(`for i in $(seq ${count}); do curl -s -m 2 -o - -w ' %{http_code}\\n' http://127.0.0.1:3210/whoami || echo ' 000'; done`, { timeoutMs: count * 3000 });
    const lines = out.stdout.split('\n').filter(Boolean);
    return { names: new Set(lines.filter((l) => l.endsWith(' 200')).map((l) => l.split(' ')[0])), failed: lines.filter((l) => !l.endsWith(' 200')).length };
  };

  beforeAll(async () => {
    const started = Date.now();
    fleet = await Fleet.create();
    timings.push(`image: ${fleet.image.built ? 'built' : 'from the cache (built'} in ${fleet.image.buildSeconds.toFixed(0)} s${fleet.image.built ? '' : ')'}`);
    const booting = Date.now();
    await fleet.addHosts(FLEET_HOSTS);
    timings.push(`fleet created in ${((booting - started) / 1000).toFixed(1)} s; 6 hosts booted in ${((Date.now() - booting) / 1000).toFixed(1)} s (each: ${fleet.hosts.map((h) => `${h.name} ${h.bootSeconds[0].toFixed(1)} s`).join(', ')})`);
    for (const provider of ['app1', 'app2']) await host(provider).execChecked(userServiceUnit(provider));
    const out = mkdtempSync(join(fleet.workDir, 'synth-'));
    workspace = await TerraformWorkspace.fromSynthesizedStack(synthesizeFleetStack(fleet, out), {
      dir: join(fleet.workDir, 'terraform'),
      variables: { ssh_private_key: fleet.sshPrivateKey, zk_secret: zkSecret },
    });
    firstApply = await workspace.apply();
    const perHost = Object.entries(resourceSeconds(firstApply.output)).map(([r, sec]) => `${r.replace(/^terraform_data\./, '').replace(/_[0-9A-F]{8}$/, '')} ${sec} s`);
    timings.push(`first apply: ${firstApply.seconds.toFixed(0)} s (exit ${firstApply.exitCode}); each: ${perHost.join(', ')}`);
  }, 30 * MINUTE);

  afterAll(async () => {
    if (timings.length > 0) console.log(`fleet deploy timings:\n  ${timings.join('\n  ')}`);
    await fleet?.destroy();
  }, 5 * MINUTE);

  test('the first apply succeeds and every role runs under its own user', async () => {
    await expectApplied(firstApply);
    for (const name of ['app1', 'app2', 'web1', 'zk1', 'zk2', 'zk3']) expect(firstApply.output).toContain(`${name}: smartstack-`);
    const owner = async (name: string, unit: string) =>
      (await host(name).execChecked(`systemctl is-active ${unit} >/dev/null && ps -o user= -p "$(systemctl show -p MainPID --value ${unit})"`)).trim();
    for (const member of ['zk1', 'zk2', 'zk3']) expect(await owner(member, 'zookeeper.service')).toBe('zookeeper');
    for (const provider of ['app1', 'app2']) expect(await owner(provider, 'smartstack-nerve.service')).toBe('nerve');
    expect(await owner('web1', 'smartstack-synapse.service')).toBe('synapse');
    // HAProxy's master is root's; its worker, which serves, is haproxy's.
    expect((await host('web1').execChecked('ps -o user= --ppid "$(systemctl show -p MainPID --value smartstack-haproxy.service)"')).trim().split('\n')).toContain('haproxy');
    expect(await host('web1').exec('systemctl is-enabled haproxy.service; systemctl is-active haproxy.service')).toMatchObject({ stdout: 'disabled\ninactive\n' });
  }, 5 * MINUTE);

  test('both ZooKeeper disks are mounted noatime where zoo.cfg puts the snapshots and the log', async () => {
    for (const member of ['zk1', 'zk2', 'zk3']) {
      const zooCfg = await host(member).readFile('/etc/zookeeper/smartstack/zoo.cfg');
      const dirs = ['dataDir', 'dataLogDir'].map((key) => new RegExp(`^${key}=(.+)$`, 'm').exec(zooCfg)![1]);
      const disks = fleet.host(member).disks;
      for (const [i, dir] of dirs.entries()) {
        const [source, options] = (await host(member).execChecked(`findmnt -n -o SOURCE,OPTIONS --mountpoint ${dir}`)).trim().split(/\s+/);
        expect(source).toBe(disks[i].loopDevice);
        expect(options.split(',')).toContain('noatime');
      }
      expect((await host(member).execChecked('cat /var/lib/zookeeper/myid')).trim()).toBe(member.slice(2));
    }
  }, 5 * MINUTE);

  test('the members are one leader and two followers, and both providers are registered and reached through web1', async () => {
    const modes = await eventually('a leader and two followers', async () => {
      const m = (await Promise.all(['zk1', 'zk2', 'zk3'].map(srvr))).sort();
      return m.join() === 'follower,follower,leader' ? m : undefined;
    }, 2 * MINUTE, 1000);
    expect(modes).toEqual(['follower', 'follower', 'leader']);
    const status = await eventually('both providers registered', async () => {
      const s = await registered();
      return s.includes(host('app1').address) && s.includes(host('app2').address) ? s : undefined;
    }, 2 * MINUTE, 1000);
    expect(status).toContain('user-service');
    const seen = await eventually('requests through localhost:3210 reach app1 and app2', async () => {
      const r = await responders(20);
      return r.names.has('app1') && r.names.has('app2') ? r : undefined;
    }, 2 * MINUTE, 1000);
    expect([...seen.names].sort()).toEqual(['app1', 'app2']);
  }, 5 * MINUTE);

  test("no host's cloud-init log holds a warning or an error, and cloud-init reports the apply as done", async () => {
    for (const h of fleet.hosts) {
      const log = await h.readFile('/var/log/cloud-init.log');
      expect({ host: h.name, problems: log.split('\n').filter((l) => / (WARNING|ERROR|CRITICAL)|Traceback/.test(l)) }).toEqual({ host: h.name, problems: [] });
      expect(await h.exec('cloud-init status')).toMatchObject({ status: 0, stdout: expect.stringContaining('status: done') });
      // Nothing of the distribution's first-boot defaults: no network file, no default user.
      expect((await h.exec('ls /etc/systemd/network/ | grep cloud-init; getent passwd debian')).stdout).toBe('');
    }
  }, 5 * MINUTE);

  test('a second plan shows no changes, and an apply without a change touches no host', async () => {
    const plan = await workspace.plan();
    expect({ exit: plan.exitCode, changes: plan.changes }).toEqual({ exit: 0, changes: false });
    const before = await Promise.all(fleet.hosts.map((h) => h.execChecked('cat /var/lib/cloud/data/instance-id; wc -c </var/log/cloud-init.log')));
    const again = await workspace.apply();
    await expectApplied(again);
    expect(again.output).toContain('Resources: 0 added, 0 changed, 0 destroyed');
    expect(await Promise.all(fleet.hosts.map((h) => h.execChecked('cat /var/lib/cloud/data/instance-id; wc -c </var/log/cloud-init.log')))).toEqual(before);
  }, 5 * MINUTE);

  test("the agents' package unusable on one host fails that host's apply, naming the host and the step", async () => {
    const state = (await workspace.run(['state', 'list'])).stdout;
    // Node.js that cannot run anything, as on a host with a broken runtime.
    await host('app2').execChecked("mv /usr/bin/node /usr/bin/node.real && printf '#!/bin/sh\\nexit 1\\n' >/usr/bin/node && chmod 0755 /usr/bin/node");
    try {
      const failed = await workspace.apply([`-replace=${deliveryOf(workspace, state, 'app2')}`]);
      expect(failed.exitCode).toBe(1);
      expect(failed.output).toMatch(/smartstack: app2: step 'agents' package cdktf-smartstack [0-9.]+' failed: the agents do not load with this host's Node.js/);
      expect(failed.output).toContain('cloud-init modules --mode=final failed');
      // The registration of app2 stays: its nerve was not touched.
      expect(await registered()).toContain(host('app2').address);
    } finally {
      await host('app2').execChecked('mv /usr/bin/node.real /usr/bin/node');
    }
    await expectApplied(await workspace.apply());
  }, 5 * MINUTE);

  test('a member whose disks were unmounted keeps its data: a missing disk fails the apply, and nothing is ever formatted', async () => {
    const zk3 = host('zk3');
    const state = (await workspace.run(['state', 'list'])).stdout;
    const uuids = async () => zk3.execChecked(`for d in ${zk3.disks.map((d) => d.path).join(' ')}; do blkid -p -o value -s UUID $d; done`);
    const before = await uuids();
    await zk3.execChecked('echo snapshot-marker >/var/lib/zookeeper/marker && echo txlog-marker >/var/lib/zookeeper-txlog/marker');
    await zk3.execChecked('systemctl stop zookeeper.service && umount /var/lib/zookeeper /var/lib/zookeeper-txlog');

    // The transaction log's disk is gone (its by-id link removed): the apply stops at that disk.
    const txlog = zk3.disks[1];
    await zk3.execChecked(`rm ${txlog.path}`);
    const failed = await workspace.apply([`-replace=${deliveryOf(workspace, state, 'zk3')}`]);
    expect(failed.exitCode).toBe(1);
    expect(failed.output).toContain(`smartstack: zk3: step 'disk zk-txlog: ${txlog.path} on /var/lib/zookeeper-txlog' failed: device ${txlog.path} is missing`);
    // ZooKeeper does not run with its log on the root filesystem, not even when started by hand.
    expect((await zk3.exec('systemctl is-active zookeeper.service')).stdout.trim()).not.toBe('active');
    const start = await zk3.exec('systemctl start zookeeper.service');
    expect(start.status).not.toBe(0);
    expect(start.stderr).toContain('Assertion failed');
    expect((await zk3.exec('pgrep -u zookeeper java')).status).toBe(1);

    await zk3.execChecked(`ln -s ../../${txlog.loopDevice.replace('/dev/', '')} ${txlog.path}`);
    const healed = await workspace.apply();
    await expectApplied(healed);
    expect(healed.output).not.toContain('mkfs');
    expect(await uuids()).toBe(before);
    expect(await zk3.execChecked('cat /var/lib/zookeeper/marker /var/lib/zookeeper-txlog/marker')).toBe('snapshot-marker\ntxlog-marker\n');
    expect(healed.output).toMatch(/zookeeper member 3 is (leader|follower)/);
  }, 5 * MINUTE);

  test('a restarted host comes back with its address, its units and its registrations', async () => {
    const app1 = host('app1');
    await app1.restart();
    timings.push(`app1 restart: boot ${app1.bootSeconds[app1.bootSeconds.length - 1].toFixed(1)} s`);
    expect((await app1.execChecked('ip -4 -o addr show')).includes(`inet ${app1.address}/`)).toBe(true);
    await eventually('app1 units active after the restart', async () => {
      const r = await app1.exec('systemctl is-active smartstack-nerve.service smartstack-firewall.service user-service.service');
      return r.status === 0 ? true : undefined;
    }, 2 * MINUTE, 1000);
    await eventually('app1 registered again', async () => ((await registered()).includes(app1.address) ? true : undefined), 2 * MINUTE, 1000);
    const seen = await eventually('requests through web1 reach app1 again', async () => {
      const r = await responders(20);
      return r.names.has('app1') ? r : undefined;
    }, 2 * MINUTE, 1000);
    expect(seen.names.has('app1')).toBe(true);
  }, 5 * MINUTE);
});
