/**
 * The nerve agent as a process against a real 3-member ZooKeeper: registration in the upstream
 * format, deregistration on failing checks and on SIGTERM, re-registration after a forced
 * session expiry, one registration per instance, and clear config errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CreateMode, ZK_NO_NODE, ZkError, ZkSession } from '../lib/agent/zk-session';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { freePort } from './support/haproxy-process';
import { eventually, httpGet } from './support/eventually';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

describe('smartstack nerve against a real ZooKeeper ensemble', () => {
  let cluster: ZookeeperCluster;
  let zk: ZkSession;
  let dir: string;
  const agents: AgentProcess[] = [];
  const backends: TestBackend[] = [];

  /** The children of a path with their data and owning session. */
  async function nodes(path: string): Promise<{ child: string; data: string; owner: string }[]> {
    const children = await zk.getChildren(path).catch((e: ZkError) => (e.code === ZK_NO_NODE ? [] : Promise.reject(e)));
    const out = [];
    for (const child of children.sort()) {
      const node = await zk.getData(`${path}/${child}`).catch(() => undefined);
      if (node) out.push({ child, data: node.data.toString(), owner: node.stat.ephemeralOwner.toString('hex') });
    }
    return out;
  }

  function writeConfig(name: string, config: unknown): string {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(config, null, 2));
    return file;
  }

  function nerveConfig(instanceId: string, backend: TestBackend, zkPath: string, extra: object = {}, metricsPort?: number): object {
    return {
      instance_id: instanceId,
      ...(metricsPort !== undefined ? { metrics_port: metricsPort } : {}),
      services: {
        users: {
          host: backend.host,
          port: String(backend.port), // upstream files often carry string ports
          reporter_type: 'zookeeper',
          zk_hosts: cluster.connectString.split(','),
          zk_path: zkPath,
          check_interval: 0.2,
          checks: [{ type: 'http', uri: '/health', timeout: 0.5, rise: 2, fall: 2 }],
          ...extra,
        },
      },
    };
  }

  function startNerve(configFile: string): AgentProcess {
    const agent = spawnAgent(['nerve', '--config', configFile, '--zk-session-timeout', '4000']);
    agents.push(agent);
    return agent;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-nerve-'));
    cluster = await startLocalCluster(3);
    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 6000 });
    await zk.start(20000);
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await Promise.all(backends.map((b) => b.kill()));
    await zk?.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('registers with the exact upstream payload, deregisters on failing checks and comes back', async () => {
    const backend = await startBackend('127.0.0.21');
    backends.push(backend);
    const metricsPort = await freePort();
    const agent = startNerve(writeConfig('nerve-a.json', nerveConfig('app1', backend, '/services/users-a', {
      weight: 7, haproxy_server_options: 'check inter 2s', labels: { az: 'oslo-1' },
    }, metricsPort)));

    const [node] = await eventually('a registration', async () => ((await nodes('/services/users-a')).length === 1 ? nodes('/services/users-a') : undefined));
    expect(node.child).toMatch(/^app1_[0-9]{10}$/);
    expect(node.data).toBe(`{"host":"127.0.0.21","port":${backend.port},"name":"app1","weight":7,"haproxy_server_options":"check inter 2s","labels":{"az":"oslo-1"}}`);
    expect(node.owner).not.toBe('0000000000000000'); // ephemeral

    const metrics = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics).toContain('nerve_registered{service="users"} 1');
    expect(metrics).toMatch(/smartstack_zk_connected\{zk="[^"]+"\} 1/);

    backend.setHealthy(false);
    const down = Date.now();
    await eventually('deregistration', async () => ((await nodes('/services/users-a')).length === 0 ? true : undefined));
    // fall 2 × 0.2 s plus a check timeout; generous bound for a loaded 2-core machine.
    expect(Date.now() - down).toBeLessThan(5000);
    await agent.waitForLog((r) => r.msg === 'deregistered' && r.reason === 'service down');

    backend.setHealthy(true);
    await eventually('re-registration', async () => ((await nodes('/services/users-a')).length === 1 ? true : undefined));
    await agent.stop();
  });

  test('deletes its registration on SIGTERM and exits 0', async () => {
    const backend = await startBackend('127.0.0.22');
    backends.push(backend);
    const agent = startNerve(writeConfig('nerve-b.json', nerveConfig('app2', backend, '/services/users-b')));
    const [node] = await eventually('a registration', async () => ((await nodes('/services/users-b')).length === 1 ? nodes('/services/users-b') : undefined));
    expect(node.data).toBe(`{"host":"127.0.0.22","port":${backend.port},"name":"app2"}`);
    expect(await agent.stop('SIGTERM')).toBe(0);
    expect(await nodes('/services/users-b')).toEqual([]);
    expect(agent.logs().some((r) => r.msg === 'deregistered' && r.reason === 'shutdown')).toBe(true);
  });

  test('never holds two registrations: a crashed run\'s node for the same endpoint is replaced', async () => {
    const backend = await startBackend('127.0.0.23');
    backends.push(backend);
    // A registration a crashed earlier run left behind, its session still alive.
    const crashed = new ZkSession(cluster.connectString, { sessionTimeoutMs: 8000 });
    await crashed.start(20000);
    await crashed.mkdirp('/services/users-c');
    const stale = await crashed.create('/services/users-c/app3_', Buffer.from(`{"host":"127.0.0.23","port":${backend.port},"name":"app3"}`), CreateMode.EPHEMERAL_SEQUENTIAL);

    const agent = startNerve(writeConfig('nerve-c.json', nerveConfig('app3', backend, '/services/users-c')));
    const first = await agent.waitForLog((r) => r.msg === 'registered');
    const after = await nodes('/services/users-c');
    expect(after.map((n) => `/services/users-c/${n.child}`)).toEqual([first.path]);
    expect(first.path).not.toBe(stale);
    expect(agent.logs().some((r) => r.msg === 'removed a stale registration of this instance' && r.path === stale)).toBe(true);
    await crashed.close();
    await agent.stop();
  });

  test('re-registers as soon as a new session exists after its session expired', async () => {
    const backend = await startBackend('127.0.0.24');
    backends.push(backend);
    // This nerve talks to member 1 only; cutting member 1 off past the session timeout makes the
    // remaining quorum expire the session, as a network partition would.
    const config = nerveConfig('app4', backend, '/services/users-d') as { services: { users: { zk_hosts: string[] } } };
    config.services.users.zk_hosts = [cluster.member(1).clientAddress];
    const agent = startNerve(writeConfig('nerve-d.json', config));
    const first = await agent.waitForLog((r) => r.msg === 'registered');
    const [before] = await nodes('/services/users-d');

    await cluster.stopMember(1);
    await eventually('the ensemble to expire the session and delete the node', async () => ((await nodes('/services/users-d')).length === 0 ? true : undefined), 30000);
    cluster.startMember(1);
    const expired = await agent.waitForLog((r) => r.msg === 'zookeeper session expired; starting a new session', 30000);
    const again = await agent.waitForLog((r) => r.msg === 'registered' && r.path !== first.path, 20000);
    // Upstream nerve needs about ten failed loops here; ours registers right after the new session.
    expect(Date.parse(again.time as string) - Date.parse(expired.time as string)).toBeLessThan(3000);
    const after = await nodes('/services/users-d');
    expect(after.map((n) => `/services/users-d/${n.child}`)).toEqual([again.path]);
    expect(after[0].owner).not.toBe(before.owner);
    await cluster.waitForQuorum([1, 2, 3]);
    await agent.stop();
  });

  test('smartstack status shows what ZooKeeper has registered', async () => {
    const backend = await startBackend('127.0.0.25');
    backends.push(backend);
    const agent = startNerve(writeConfig('nerve-e.json', nerveConfig('app5', backend, '/services/users-e')));
    await agent.waitForLog((r) => r.msg === 'registered');
    const status = spawnAgent(['status', '--zk', cluster.connectString, '--json']);
    expect(await status.exited()).toBe(0);
    const out = JSON.parse(status.stdout()) as { services: { name: string; instances: { host: string; name: string }[] }[] };
    const users = out.services.find((s) => s.name === 'users-e');
    expect(users?.instances.map((i) => [i.host, i.name])).toEqual([['127.0.0.25', 'app5']]);
    await agent.stop();
  });

  test('an invalid config file exits 2 and names the key and the value', async () => {
    const file = writeConfig('bad.json', { instance_id: 'app9', services: { users: { host: '127.0.0.1', port: '80;', zk_hosts: ['127.0.0.1:2181'], zk_path: '/s', checks: [{ type: 'tcp' }] } } });
    const agent = spawnAgent(['nerve', '--config', file]);
    expect(await agent.exited()).toBe(2);
    expect(agent.stderr()).toContain(`${file}: services.users.port = "80;": must be an integer port 1-65535`);
  });
});
