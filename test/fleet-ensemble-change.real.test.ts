import { createHash, randomBytes } from 'crypto';
import { mkdtempSync } from 'fs';
import { join } from 'path';
import { diagnoseApply, Fleet, FleetHost, resourceSeconds, TerraformCommandResult, TerraformWorkspace } from '../lib/fleet';
import { fourLetterWord } from '../lib/local/four-letter-word';
import { describeWhenPresent, fleetTestPrerequisites, FLEET_PACKAGES_HINT } from './support/describe-when';
import { FLEET_HOSTS, fleetMemberHost, FleetStackOptions, synthesizeFleetStack, userServiceUnit } from './support/fleet-stack';
import { eventually } from './support/eventually';

/*
 * Membership changes of the ensemble as a user makes them: a new synthesis with another `members`
 * list, applied with terraform onto real Debian 12 hosts (systemd containers on a bridge of this run's
 * own). The default topology first; then the ensemble grown from 3 to 5 members (zk4, zk5); then a
 * follower replaced by a new host at a new address (zk6); then the leader replaced (zk7). Meanwhile a probe asks every member `srvr` every
 * 200 ms and records whether a quorum of the old and of the new membership served at each sample.
 */
const describeFleet = describeWhenPresent('fleet ensemble-change tests', fleetTestPrerequisites(), FLEET_PACKAGES_HINT);

const MINUTE = 60_000;
const PROBE_INTERVAL_MS = 200;
/** A bound on the probe, whatever happens to the test. */
const PROBE_MAX_MS = 20 * MINUTE;
const timings: string[] = [];


/** What the probe saw while one change was applied. */
interface ProbeRecord {
  samples: number;
  /** Samples at which fewer than a quorum of the old or of the new membership served. */
  belowQuorum: Array<{ atMs: number; serving: string[] }>;
  /** Samples at which two members of the new membership said they lead. */
  twoLeaders: number;
  minServing: number;
  /** The longest run of consecutive samples below a quorum, from its first to the first sample after it. */
  longestBelowQuorumMs: number;
}

/**
 * Every PROBE_INTERVAL_MS, `srvr` on each member of the old and of the new membership (all at once),
 * until stopped or PROBE_MAX_MS.
 */
function startProbe(addressOf: (name: string) => string, before: string[], after: string[]): { stop: () => Promise<ProbeRecord> } {
  const record: ProbeRecord = { samples: 0, belowQuorum: [], twoLeaders: 0, minServing: Number.MAX_SAFE_INTEGER, longestBelowQuorumMs: 0 };
  let belowSince: number | undefined;
  const names = [...new Set([...before, ...after])];
  const started = Date.now();
  let running = true;
  const loop = (async () => {
    while (running && Date.now() - started < PROBE_MAX_MS) {
      const sampleStart = Date.now();
      const modes = await Promise.all(names.map(async (n) => /^Mode: (\w+)/m.exec(await fourLetterWord(addressOf(n), 2181, 'srvr', 1000))?.[1] ?? ''));
      const serving = names.filter((_n, i) => modes[i] === 'leader' || modes[i] === 'follower');
      const quorumOf = (set: string[]) => serving.filter((n) => set.includes(n)).length > set.length / 2;
      record.samples++;
      record.minServing = Math.min(record.minServing, serving.length);
      if (!quorumOf(before) || !quorumOf(after)) {
        record.belowQuorum.push({ atMs: sampleStart - started, serving });
        belowSince ??= sampleStart;
      } else if (belowSince !== undefined) {
        record.longestBelowQuorumMs = Math.max(record.longestBelowQuorumMs, sampleStart - belowSince);
        belowSince = undefined;
      }
      // A member that left may still say it leads for a moment after handing over: not a second leader of the ensemble.
      if (names.filter((n, i) => modes[i] === 'leader' && after.includes(n)).length > 1) record.twoLeaders++;
      await new Promise((r) => setTimeout(r, Math.max(0, PROBE_INTERVAL_MS - (Date.now() - sampleStart))));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return record;
    },
  };
}

describeFleet('membership changes of the ensemble, applied with terraform onto real Debian 12 hosts', () => {
  let fleet: Fleet;
  let workspace: TerraformWorkspace;
  const host = (name: string): FleetHost => fleet.host(name);
  const zkSecret = randomBytes(32).toString('hex');
  // As the construct derives it: sha256("admin:<secret>"), hex.
  const adminPassword = createHash('sha256').update(`admin:${zkSecret}`).digest('hex');
  const expectApplied = async (r: TerraformCommandResult) => {
    if (r.exitCode !== 0) throw new Error(`terraform exited ${r.exitCode} after ${r.seconds.toFixed(0)} s:\n${r.output.slice(-8000)}\n${await diagnoseApply(r.output, fleet.hosts)}`);
  };
  const synthesize = (options: FleetStackOptions) =>
    // The machine running the test probes the members' client port.
    synthesizeFleetStack(fleet, mkdtempSync(join(fleet.workDir, 'synth-')), { clientNetworks: [`${fleet.network.gatewayAddress}/32`], ...options });

  const mode = async (name: string) => /^Mode: (\w+)/m.exec(await fourLetterWord(host(name).address, 2181, 'srvr'))?.[1] ?? '';
  /** The committed membership a member reports, as `server.N=address`. */
  const membership = async (name: string) =>
    (await fourLetterWord(host(name).address, 2181, 'conf'))
      .split('\n')
      .map((l) => /^server\.(\d+)=([\d.]+):/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `server.${m[1]}=${m[2]}`)
      .sort();
  const zkCli = async (name: string, commands: string[]) =>
    host(name).exec(`timeout 60 /usr/share/zookeeper/bin/zkCli.sh -server ${host(name).address}:2181 2>&1`, { input: `${commands.join('\n')}\nquit\n`, timeoutMs: 90_000 });
  const connectionString = (members: string[]) => members.map((m) => `${host(m).address}:2181`).join(',');
  const registered = async (members: string[]) =>
    host('web1').execChecked(`smartstack status --zk ${connectionString(members)} --auth-file /etc/smartstack/credentials/zookeeper-zk-reader.json`);

  /** Every member serves, one of them leads, and each reports the expected membership. */
  const expectServing = async (members: string[]) => {
    const modes = await eventually(`${members.join(', ')}: one leader, the others followers`, async () => {
      const m = await Promise.all(members.map(mode));
      return m.filter((x) => x === 'leader').length === 1 && m.every((x) => x === 'leader' || x === 'follower') ? m : undefined;
    }, 2 * MINUTE, 1000);
    const want = members.map((m) => `server.${m.slice(2)}=${host(m).address}`).sort();
    for (const m of members) expect({ member: m, membership: await membership(m) }).toEqual({ member: m, membership: want });
    return modes;
  };
  /** The sidecars' configs name the ensemble's connection string, and both providers are registered. */
  const expectSidecarsFollow = async (members: string[]) => {
    const hosts = members.map((m) => `${host(m).address}:2181`);
    for (const provider of ['app1', 'app2']) {
      const nerve = JSON.parse(await host(provider).readFile('/etc/smartstack/nerve.conf.json'));
      expect({ provider, zk_hosts: nerve.services['user-service'].zk_hosts }).toEqual({ provider, zk_hosts: hosts });
    }
    const synapse = JSON.parse(await host('web1').readFile('/etc/smartstack/synapse.conf.json'));
    expect(synapse.services['user-service'].discovery.hosts).toEqual(hosts);
    const status = await eventually('both providers registered', async () => {
      const s = await registered(members);
      return s.includes(host('app1').address) && s.includes(host('app2').address) ? s : undefined;
    }, 2 * MINUTE, 1000);
    expect(status).toContain('user-service');
  };
  const mainPids = async (members: string[]) =>
    Promise.all(members.map(async (m) => `${m}:${(await host(m).execChecked('systemctl show -p MainPID --value zookeeper.service')).trim()}`));
  /** Applies a synthesis while the probe runs; reports the times. */
  const applyWithProbe = async (what: string, options: FleetStackOptions, before: string[], after: string[]) => {
    workspace.updateStack(synthesize(options));
    const leader = async (members: string[]) => (await Promise.all(members.map(async (m) => ((await mode(m)) === 'leader' ? m : '')))).filter(Boolean).join(',');
    const leaderBefore = await leader(before);
    const probe = startProbe((n) => host(n).address, before, after);
    const apply = await workspace.apply();
    // The probe goes on until the new membership serves, then a little longer.
    await expectServing(after).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 2000));
    const record = await probe.stop();
    const membershipLines = apply.output
      .split('\n')
      .filter((l) => /zookeeper membership of fleet\/zk: (removed|new member|now|reconfig)/.test(l))
      .map((l) => l.replace(/^.*zookeeper membership of fleet\/zk: /, '').replace(/server\.\d+=[\d.]+:2888:3888 ?/g, '').trim());
    const perResource = Object.entries(resourceSeconds(apply.output)).map(([r, sec]) => `${r.replace(/^terraform_data\./, '').replace(/_[0-9A-F]{8}$/, '')} ${sec} s`);
    timings.push(
      `${what}: apply ${apply.seconds.toFixed(0)} s (exit ${apply.exitCode}); ${perResource.join(', ')}; probe: ${record.samples} samples every ${PROBE_INTERVAL_MS} ms, ` +
        `fewest members serving ${record.minServing}, below a quorum at ${record.belowQuorum.length} samples ` +
        `(longest ${record.longestBelowQuorumMs} ms), two leaders at ${record.twoLeaders}; ` +
        `leader ${leaderBefore || 'none'} before, ${(await leader(after)) || 'none'} after; membership script: ${membershipLines.join('; ')}`,
    );
    return { apply, record };
  };

  beforeAll(async () => {
    const started = Date.now();
    fleet = await Fleet.create();
    await fleet.addHosts([...FLEET_HOSTS, ...[4, 5, 6, 7].map(fleetMemberHost)]);
    timings.push(`fleet of ${fleet.hosts.length} hosts up in ${((Date.now() - started) / 1000).toFixed(0)} s (image ${fleet.image.built ? 'built' : 'cached'})`);
    for (const provider of ['app1', 'app2']) await host(provider).execChecked(userServiceUnit(provider));
    workspace = await TerraformWorkspace.fromSynthesizedStack(synthesize({}), {
      dir: join(fleet.workDir, 'terraform'),
      variables: { ssh_private_key: fleet.sshPrivateKey, zk_secret: zkSecret },
    });
    const first = await workspace.apply();
    timings.push(`first apply (3 members): ${first.seconds.toFixed(0)} s (exit ${first.exitCode})`);
    await expectApplied(first);
  }, 30 * MINUTE);

  afterAll(async () => {
    if (timings.length > 0) console.log(`fleet ensemble-change timings:\n  ${timings.join('\n  ')}`);
    await fleet?.destroy();
  }, 5 * MINUTE);

  test('the default topology serves, and a znode written now is there after every change', async () => {
    await expectServing(['zk1', 'zk2', 'zk3']);
    await expectSidecarsFollow(['zk1', 'zk2', 'zk3']);
    const written = await zkCli('zk1', [`addauth digest admin:${adminPassword}`, 'create /ensemble-change-marker written-before-the-changes']);
    expect(written.stdout).toContain('Created /ensemble-change-marker');
  }, 10 * MINUTE);

  test('grown from 3 to 5 members by a new synthesis: the running members are not restarted and a quorum serves throughout', async () => {
    const pidsBefore = await mainPids(['zk1', 'zk2', 'zk3']);
    const { apply, record } = await applyWithProbe('3 -> 5 members', { members: [1, 2, 3, 4, 5] }, ['zk1', 'zk2', 'zk3'], ['zk1', 'zk2', 'zk3', 'zk4', 'zk5']);
    await expectApplied(apply);
    expect(apply.output).toMatch(/zookeeper member 4: joins the running ensemble/);
    expect(apply.output).toMatch(/zookeeper membership of fleet\/zk: now server\.1=.* server\.5=/);
    expect(record.belowQuorum).toEqual([]);
    expect(record.twoLeaders).toBe(0);
    await expectServing(['zk1', 'zk2', 'zk3', 'zk4', 'zk5']);
    // The running members took the new firewall rules without a restart.
    expect(await mainPids(['zk1', 'zk2', 'zk3'])).toEqual(pidsBefore);
    expect(apply.output).toContain('zookeeper member 1: its settings are unchanged; not restarted');
    // The data written before is on the new members.
    expect((await zkCli('zk5', ['get /ensemble-change-marker'])).stdout).toContain('written-before-the-changes');
    await expectSidecarsFollow(['zk1', 'zk2', 'zk3', 'zk4', 'zk5']);
  }, 30 * MINUTE);

  const members = ['zk1', 'zk2', 'zk3', 'zk4', 'zk5'];
  const leaderOf = async (names: string[]) => (await Promise.all(names.map(async (m) => ((await mode(m)) === 'leader' ? m : undefined)))).find(Boolean);
  /** Replaces `leaving` by the new host `joining`; returns what the probe saw. */
  const replace = async (leaving: string, joining: string, what: string) => {
    const before = [...members];
    const after = [...before.filter((m) => m !== leaving), joining];
    const { apply, record } = await applyWithProbe(what, { members: after.map((m) => Number(m.slice(2))) }, before, after);
    await expectApplied(apply);
    expect(apply.output).toContain(`zookeeper member ${joining.slice(2)}: joins the running ensemble`);
    expect(apply.output).toContain(`zookeeper membership of fleet/zk: removed ${leaving.slice(2)}`);
    expect(record.twoLeaders).toBe(0);
    await expectServing(after);
    expect((await zkCli(joining, ['get /ensemble-change-marker'])).stdout).toContain('written-before-the-changes');
    await expectSidecarsFollow(after);
    // The old host is shut down, as its owner would: the ensemble does not miss it.
    await host(leaving).stop();
    await new Promise((r) => setTimeout(r, 3000));
    await expectServing(after);
    members.splice(0, members.length, ...after);
    return record;
  };

  test('a follower replaced by a new host at a new address (zk6): a quorum serves at every sample, and the old host can go', async () => {
    const leader = await leaderOf(members);
    const leaving = ['zk1', 'zk2', 'zk3'].find((m) => m !== leader)!;
    const record = await replace(leaving, 'zk6', `${leaving} (a follower) replaced by zk6`);
    expect(record.belowQuorum).toEqual([]);
  }, 30 * MINUTE);

  test('the leader replaced by a new host (zk7): it hands the leadership over, the only moment below a quorum', async () => {
    const leaving = (await leaderOf(members))!;
    expect(leaving).toBeDefined();
    const record = await replace(leaving, 'zk7', `${leaving} (the leader) replaced by zk7`);
    // ZooKeeper's documentation: removing the leader causes a short unavailability while the
    // followers sync with the leader it names. Bounded generously; the time measured is reported.
    expect(record.longestBelowQuorumMs).toBeLessThan(10_000);
    const plan = await workspace.plan();
    expect({ exit: plan.exitCode, changes: plan.changes }).toEqual({ exit: 0, changes: false });
  }, 30 * MINUTE);
});
