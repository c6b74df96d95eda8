/**
 * Boots the three synthesized ZooKeeper members for real, laid out the way `smartstack local` lays
 * out hosts. The only changes to what was synthesized: each member's private address is mapped onto
 * its own 127.x loopback address and each host directory onto a temporary one. The JVM runs with a
 * small heap instead of the host-sized one.
 */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { mkdirSync, mkdtempSync, openSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import * as zookeeper from 'node-zookeeper-client';
import { LoopbackHost, layOutLoopbackHosts } from '../lib/local/loopback-host';
import { writeLiveZooCfg } from '../lib/local/one-machine';
import { eventually } from './support/eventually';
import { synthesizeExample } from './support/example-synth';
import { connectZookeeper } from './support/zookeeper-client';
import { fourLetterWord, zookeeperMode } from './support/zookeeper-4lw';

const CLIENT_PORT = 2181;

interface Member {
  readonly host: LoopbackHost;
  readonly address: string;
  readonly waitScript: string;
  process?: ChildProcess;
}

function start(member: Member, classpath: string): void {
  const logDir = member.host.hostPath('/var/log/zookeeper');
  mkdirSync(logDir, { recursive: true });
  const log = openSync(join(logDir, 'console.log'), 'a');
  member.process = spawn(
    'java',
    ['-Xmx192m', '-Xms64m', `-Dzookeeper.log.dir=${logDir}`, '-cp', classpath, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', writeLiveZooCfg(member.host)],
    { stdio: ['ignore', log, log] },
  );
}

async function stop(member: Member): Promise<void> {
  const child = member.process;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

function runWaitScript(member: Member, limitSeconds = 60): { status: number | null; output: string } {
  const result = spawnSync('timeout', [String(limitSeconds), 'sh', '-c', member.waitScript], { encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function createNode(client: zookeeper.Client, path: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => client.create(path, Buffer.from(data), (err, created) => (err ? reject(err) : resolve(created))));
}

function readNode(client: zookeeper.Client, path: string): Promise<string> {
  return new Promise((resolve, reject) => client.getData(path, (err, data) => (err ? reject(err) : resolve(data.toString('utf8')))));
}

describe('the synthesized ensemble, booted for real', () => {
  const { documents } = synthesizeExample();
  const members: Member[] = [];
  let classpath = '';
  let connectionString = '';
  let client: zookeeper.Client | undefined;

  beforeAll(() => {
    const hosts = layOutLoopbackHosts(documents, mkdtempSync(join(tmpdir(), 'smartstack-zk-')), '127.61');
    for (const host of hosts.filter((h) => h.files.has('/etc/zookeeper/smartstack/zoo.cfg'))) {
      const zooCfg = host.files.get('/etc/zookeeper/smartstack/zoo.cfg')!;
      for (const dir of [/dataDir=(\S+)/, /dataLogDir=(\S+)/]) mkdirSync(dir.exec(zooCfg)![1], { recursive: true });
      // As the host's apply does once the data disk is mounted.
      writeFileSync(join(/dataDir=(\S+)/.exec(zooCfg)![1], 'myid'), host.files.get('/etc/zookeeper/smartstack/myid')!);
      classpath = /-cp (\S+)/.exec(host.files.get('/etc/systemd/system/zookeeper.service')!)![1];
      const script = host.mapText(documents.find((d) => d.hostname === host.hostname)!.applyScript);
      const waitScript = script.slice(script.indexOf('zk_4lw() {'), script.lastIndexOf('echo "'));
      members.push({ host, address: /clientPortAddress=(\S+)/.exec(zooCfg)![1], waitScript });
    }
    connectionString = members.map((m) => `${m.address}:${CLIENT_PORT}`).join(',');
  });

  afterAll(async () => {
    client?.close();
    await Promise.all(members.map(stop));
  });

  test('each member binds its own address and the first apply does not wait for a quorum that cannot exist yet', async () => {
    expect(members.map((m) => m.host.hostname)).toEqual(['zk1', 'zk2', 'zk3']);
    expect(members.map((m) => m.address)).toEqual(['127.61.0.4', '127.61.0.5', '127.61.0.6']);
    expect(members.map((m) => m.host.files.get('/etc/zookeeper/smartstack/myid'))).toEqual(['1\n', '2\n', '3\n']);
    start(members[0], classpath);
    await eventually('member 1 to answer ruok', async () => ((await fourLetterWord(members[0].address, CLIENT_PORT, 'ruok')) === 'imok' ? true : undefined), 30000);
    expect(await zookeeperMode(members[0].address, CLIENT_PORT)).toBe('');
    const first = runWaitScript(members[0]);
    expect(first.output).toContain('zookeeper member 1 is up; no member serves yet');
    expect(first.status).toBe(0);
  });

  test('the three members elect one leader, and each rollout wait sees its member serving', async () => {
    start(members[1], classpath);
    start(members[2], classpath);
    const modes = await eventually('a leader and two followers', async () => {
      const m = await Promise.all(members.map((x) => zookeeperMode(x.address, CLIENT_PORT)));
      return m.filter((x) => x === 'leader').length === 1 && m.filter((x) => x === 'follower').length === 2 ? m : undefined;
    }, 60000);
    expect(modes.sort()).toEqual(['follower', 'follower', 'leader']);
    for (const member of members) {
      const wait = runWaitScript(member);
      expect(wait.output).toMatch(/zookeeper member \d is (leader|follower)/);
      expect(wait.status).toBe(0);
    }
    client = await connectZookeeper(connectionString, { sessionTimeout: 10000, retries: 2 });
    await createNode(client, '/before-failure', 'written with 3 members');
  });

  test('losing the leader keeps a quorum; its rollout wait holds until it rejoins as a follower', async () => {
    const modes = await Promise.all(members.map((x) => zookeeperMode(x.address, CLIENT_PORT)));
    const leader = members[modes.indexOf('leader')];
    await stop(leader);
    const survivors = members.filter((m) => m !== leader);
    await eventually('a new leader among the survivors', async () => {
      const m = await Promise.all(survivors.map((x) => zookeeperMode(x.address, CLIENT_PORT)));
      return m.includes('leader') && m.includes('follower') ? m : undefined;
    }, 60000);
    await eventually('a write after the failover', async () => createNode(client!, '/after-failure', 'written with 2 members').catch(() => undefined), 30000);
    expect(await readNode(client!, '/before-failure')).toBe('written with 3 members');
    expect(await readNode(client!, '/after-failure')).toBe('written with 2 members');

    // The rollout would now wait on the stopped member rather than move on to the next one.
    const blocked = runWaitScript(leader, 6);
    expect(blocked.status).toBe(124);
    expect(blocked.output).not.toContain('no member serves yet');

    start(leader, classpath);
    const back = runWaitScript(leader);
    expect(back.output).toMatch(/zookeeper member \d is follower/);
    expect(back.status).toBe(0);
  });
});
