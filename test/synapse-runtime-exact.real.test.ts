/**
 * synapse keeps HAProxy exact across its own restarts, HAProxy reloads and config changes, with a
 * real master-worker HAProxy 2.6 and a real ZooKeeper: a restarted synapse starts from what HAProxy
 * serves and removes nothing before it has listed every service; a health-check change reloads
 * without taking a server out; the slot count stays; what HAProxy holds is read back and repaired;
 * a file with port-offset slots (an older version's) is replaced by a checked reload.
 */
import { readFileSync, rmSync, writeFileSync, mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { HaproxyServerState, isInService } from '../lib/agent/haproxy-runtime';
import { CreateMode, ZkPermission, ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { loadSynapseConfig } from '../lib/agent/synapse-config-loader';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { startRequestLoop } from './support/agent-request-loop';
import { eventually } from './support/eventually';
import { HaproxyPaths, HaproxyProcess, startHaproxy } from './support/haproxy-process';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

const LOCAL = { host: '127.0.12.10', port: 3210 };
const PROVIDER_PORT = 8080;
const SLOTS = 4;

describe('synapse keeps HAProxy exact across restarts, reloads and config changes', () => {
  let cluster: ZookeeperCluster;
  let zk: ZkSession;
  let dir: string;
  let configFile: string;
  let haproxy: HaproxyProcess;
  let synapse: AgentProcess | undefined;
  let a: TestBackend;
  let b: TestBackend;
  const nodes = new Map<TestBackend, string>();
  const agents: AgentProcess[] = [];

  function writeSynapseConfig(paths: HaproxyPaths, rise: number, more: object = {}): void {
    writeFileSync(configFile, JSON.stringify({
      services: {
        ...more,
        users: {
          discovery: { method: 'zookeeper', path: '/services/users', hosts: cluster.connectString.split(',') },
          haproxy: {
            port: LOCAL.port,
            bind_address: LOCAL.host,
            server_options: `check inter 200ms rise ${rise} fall 2`,
            listen: ['mode http', 'option httpchk GET /health', 'balance roundrobin', 'retry-on conn-failure empty-response response-timeout'],
            server_slots: SLOTS,
          },
        },
      },
      haproxy: {
        config_file_path: paths.configPath,
        socket_file_path: paths.adminSocket,
        master_socket_file_path: paths.masterSocket,
        state_file_path: paths.stateFile,
        restart_interval: 1,
        defaults: ['timeout connect 1s', 'timeout client 10s', 'timeout server 10s'],
      },
    }, null, 2));
  }

  function startSynapse(): AgentProcess {
    const agent = spawnAgent(['synapse', '--config', configFile, '--zk-session-timeout', '4000']);
    agents.push(agent);
    synapse = agent;
    return agent;
  }

  async function register(backend: TestBackend, name: string): Promise<void> {
    nodes.set(backend, await zk.create(`/services/users/${name}_`, Buffer.from(`{"host":"${backend.host}","port":${backend.port},"name":"${name}"}`), CreateMode.EPHEMERAL_SEQUENTIAL));
  }

  async function deregister(backend: TestBackend): Promise<void> {
    await zk.remove(nodes.get(backend)!);
    nodes.delete(backend);
  }

  async function servers(): Promise<HaproxyServerState[]> {
    return haproxy.runtime.serversState('users');
  }

  /** `host:port` of the slots in service and passing their checks, sorted. */
  async function upServers(): Promise<string[]> {
    return (await servers()).filter((s) => isInService(s) && s.operationalState === 2).map((s) => `${s.address}:${s.port}`).sort();
  }

  const both = (): string[] => [`${a.host}:${a.port}`, `${b.host}:${b.port}`].sort();

  function slotLines(): string[] {
    return readFileSync(haproxy.configPath, 'utf8').split('\n').filter((l) => /^\s*server\s/.test(l));
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'synapse-exact-'));
    configFile = join(dir, 'synapse.conf.json');
    cluster = await startLocalCluster(1, { firstAddress: 120 });
    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 20000 });
    await zk.start(20000);
    await zk.mkdirp('/services/users');
    [a, b] = await Promise.all([startBackend('127.0.12.21', PROVIDER_PORT), startBackend('127.0.12.22', PROVIDER_PORT)]);
  });

  beforeEach(async () => {
    haproxy = await startHaproxy((paths) => {
      writeSynapseConfig(paths, 2);
      return renderHaproxyConfig(loadSynapseConfig(configFile).config, {});
    });
    await register(a, 'app1');
    await register(b, 'app2');
    startSynapse();
    await eventually('both providers up in haproxy', async () => ((await upServers()).join() === both().join() ? true : undefined), 30000);
  });

  afterEach(async () => {
    await synapse?.stop('SIGKILL');
    for (const backend of [...nodes.keys()]) await deregister(backend);
    await haproxy?.stop();
  });

  afterAll(async () => {
    await Promise.all(agents.map((x) => x.stop('SIGKILL')));
    await Promise.all([a, b].filter(Boolean).map((x) => x.kill()));
    await zk?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The `rise` HAProxy runs for each slot in service (`show stat` check_rise), not what the file says. */
  async function runningRise(): Promise<number[]> {
    const [header, ...rows] = (await haproxy.runtime.command('show stat')).split('\n').map((l) => l.replace(/^# /, '').split(','));
    const col = (name: string) => header.indexOf(name);
    const inService = (await servers()).filter(isInService).map((s) => s.server);
    return rows.filter((r) => r[col('pxname')] === 'users' && inService.includes(r[col('svname')])).map((r) => Number(r[col('check_rise')]));
  }

  test('a health-check change applied as a deploy does (synapse restarted while one provider re-registers) fails no request', async () => {
    const loop = startRequestLoop(LOCAL.host, LOCAL.port, { maxRequests: 6000, maxDurationMs: 60000, pauseMs: 5 });
    await synapse!.stop('SIGKILL');
    writeSynapseConfig(haproxy, 3);
    // nerve on app1 restarts: its registration is gone for a moment, app2's is the only one visible.
    await deregister(a);
    const restarted = startSynapse();
    await restarted.waitForLog((r) => r.msg === 'instances changed' && r.service === 'users');
    await new Promise((r) => setTimeout(r, 1000));
    await register(a, 'app1');
    await eventually('both providers up with the new check', async () => (
      (await upServers()).join() === both().join() && slotLines().filter((l) => l.includes('rise 3')).length === SLOTS && (await runningRise()).join() === '3,3' ? true : undefined
    ), 30000);
    await new Promise((r) => setTimeout(r, 300));
    const result = await loop.stop();

    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(100);
    expect(Object.keys(result.answeredBy).sort()).toEqual(both());
    expect((await servers()).length).toBe(SLOTS);
    expect(slotLines().length).toBe(SLOTS);
    expect(restarted.logs().filter((r) => r.level === 'error')).toEqual([]);
  });

  test('a health-check change while every registration is gone for a moment reaches HAProxy, with no request failed', async () => {
    const loop = startRequestLoop(LOCAL.host, LOCAL.port, { maxRequests: 6000, maxDurationMs: 60000, pauseMs: 5 });
    await synapse!.stop('SIGKILL');
    writeSynapseConfig(haproxy, 3);
    // Both providers' nerve restart: the path is empty, so synapse keeps the servers it finds.
    await Promise.all([deregister(a), deregister(b)]);
    const restarted = startSynapse();
    await restarted.waitForLog((r) => r.msg === 'haproxy reloaded for a new config shape');
    expect(await runningRise()).toEqual([2, 2].map(() => 3));
    await register(a, 'app1');
    await register(b, 'app2');
    await restarted.waitForLog((r) => r.msg === 'instances changed' && Array.isArray(r.servers) && r.servers.length === 2);
    await eventually('both providers up with the new check', async () => ((await upServers()).join() === both().join() ? true : undefined), 30000);
    const result = await loop.stop();
    expect(result.failures).toEqual([]);
    expect(await runningRise()).toEqual([3, 3]);
    expect((await servers()).length).toBe(SLOTS);
  });

  test('while ZooKeeper does not answer, a restarted synapse changes nothing; then it follows the registry', async () => {
    const before = (await servers()).map((s) => [s.server, s.address, s.port, isInService(s)]);
    const loop = startRequestLoop(LOCAL.host, LOCAL.port, { maxRequests: 6000, maxDurationMs: 60000, pauseMs: 5 });
    await synapse!.stop('SIGKILL');
    await deregister(a);
    cluster.pauseMember(1);
    const restarted = startSynapse();
    try {
      await new Promise((r) => setTimeout(r, 3000));
      expect((await servers()).map((s) => [s.server, s.address, s.port, isInService(s)])).toEqual(before);
    } finally {
      cluster.resumeMember(1);
    }
    // With the registry back: app1 is gone for now, so it leaves; it comes back when it registers.
    await eventually('app1 out of haproxy', async () => ((await upServers()).join() === `${b.host}:${b.port}` ? true : undefined), 30000);
    await register(a, 'app1');
    await eventually('app1 back', async () => ((await upServers()).join() === both().join() ? true : undefined), 30000);
    const result = await loop.stop();

    expect(result.failures).toEqual([]);
    expect(restarted.logs().filter((r) => r.level === 'error')).toEqual([]);
  });

  test('a restarted synapse removes nothing until every service it watches has been listed, but adds', async () => {
    // A second consumed service whose path this reader may not list (NoAuth) until it is replaced.
    await zk.create('/services/orders', Buffer.alloc(0), CreateMode.PERSISTENT, [{ perms: ZkPermission.CREATE | ZkPermission.DELETE, scheme: 'world', id: 'anyone' }]);
    const c = await startBackend('127.0.12.23', PROVIDER_PORT);
    try {
      await synapse!.stop('SIGKILL');
      writeSynapseConfig(haproxy, 2, {
        orders: {
          discovery: { method: 'zookeeper', path: '/services/orders', hosts: cluster.connectString.split(',') },
          haproxy: { port: LOCAL.port + 1, bind_address: LOCAL.host, server_options: 'check inter 200ms', server_slots: 2 },
        },
      });
      await deregister(a);
      const restarted = startSynapse();
      await restarted.waitForLog((r) => r.msg === 'until every service has been listed once, synapse only adds servers');
      await register(c, 'app3');
      await eventually('app3 added', async () => ((await upServers()).includes(`${c.host}:${c.port}`) ? true : undefined), 30000);
      await new Promise((r) => setTimeout(r, 1000));
      // app1's registration is gone, but orders has not been listed: app1 stays.
      expect(await upServers()).toEqual([...both(), `${c.host}:${c.port}`].sort());
      expect(restarted.logs().some((r) => r.msg === 'server removed')).toBe(false);

      await zk.remove('/services/orders');
      await eventually('app1 out once every service is listed', async () => (
        (await upServers()).join() === [`${b.host}:${b.port}`, `${c.host}:${c.port}`].sort().join() ? true : undefined
      ), 30000);
    } finally {
      if (nodes.has(c)) await deregister(c);
      await c.kill();
      await zk.remove('/services/orders').catch(() => undefined);
    }
  });

  test('repeated config changes, synapse restarts and HAProxy reloads keep the slot count', async () => {
    const loop = startRequestLoop(LOCAL.host, LOCAL.port, { maxRequests: 8000, maxDurationMs: 90000, pauseMs: 5 });
    for (const rise of [3, 2, 3]) {
      await synapse!.stop('SIGTERM');
      writeSynapseConfig(haproxy, rise);
      const restarted = startSynapse();
      await restarted.waitForLog((r) => r.msg === 'haproxy reloaded for a new config shape');
      // A reload from outside too, as the unit's ExecReload does it: dump the state, then reload.
      writeFileSync(haproxy.stateFile, await haproxy.runtime.serversStateFile());
      await haproxy.master.reload();
      await eventually(`both providers up with rise ${rise}`, async () => (
        (await upServers()).join() === both().join() && slotLines().every((l) => l.includes(`rise ${rise}`)) ? true : undefined
      ), 30000);
      expect((await servers()).length).toBe(SLOTS);
      expect(slotLines().length).toBe(SLOTS);
    }
    const result = await loop.stop();
    expect(result.failures).toEqual([]);
  });

  test('providers replaced by a new one: the old ones serve until the new one passes its checks', async () => {
    // The new instance is registered but does not pass HAProxy's checks yet.
    const c = await startBackend('127.0.12.23', PROVIDER_PORT, false);
    try {
      const loop = startRequestLoop(LOCAL.host, LOCAL.port, { maxRequests: 6000, maxDurationMs: 60000, pauseMs: 5 });
      await register(c, 'app3');
      const cIn = async () => (await servers()).find((s) => s.address === c.host && isInService(s));
      await eventually('app3 in haproxy and failing its checks', async () => ((await cIn())?.operationalState === 0 ? true : undefined), 30000);
      await Promise.all([deregister(a), deregister(b)]);
      await synapse!.waitForLog((r) => r.msg === 'server removal deferred: no registered server passes its checks yet');
      await new Promise((r) => setTimeout(r, 1000));
      expect(await upServers()).toEqual(both());
      c.setHealthy(true);
      await eventually('only app3 in haproxy', async () => {
        const inService = (await servers()).filter(isInService).map((s) => `${s.address}:${s.port}`);
        return inService.join() === `${c.host}:${c.port}` && (await upServers()).join() === `${c.host}:${c.port}` ? true : undefined;
      }, 30000);
      const result = await loop.stop();
      expect(result.failures).toEqual([]);
    } finally {
      if (nodes.has(c)) await deregister(c);
      await c.kill();
    }
  });

  test('a slot changed behind synapse\'s back is read back and set again', async () => {
    const slot = (await servers()).find((s) => s.address === a.host)!;
    // Someone drains app1's slot and zeroes its weight through the admin socket.
    await haproxy.runtime.setServerState('users', slot.server, 'drain');
    await haproxy.runtime.setServerWeight('users', slot.server, 0);
    // Any change makes synapse read back the whole backend.
    await deregister(b);
    await register(b, 'app2');
    await eventually('app1 repaired in its slot', async () => {
      const now = (await servers()).find((s) => s.server === slot.server)!;
      return now.address === a.host && now.port === a.port && (now.adminState & 0x1b) === 0 && now.weight === slot.weight ? true : undefined;
    }, 30000);
    expect(synapse!.logs().some((r) => r.msg === 'haproxy holds other servers than synapse set; setting them again')).toBe(true);
  });

  test('a running config with port-offset slots (an older version wrote 0.0.0.0:0) is replaced by a checked reload', async () => {
    await synapse!.stop('SIGKILL');
    // The file HAProxy runs, as an older version wrote it, loaded by a reload.
    writeFileSync(haproxy.configPath, readFileSync(haproxy.configPath, 'utf8').replace(/ 127\.0\.0\.1:1 /g, ' 0.0.0.0:0 '));
    expect(slotLines().some((l) => l.includes('0.0.0.0:0'))).toBe(true);
    writeFileSync(haproxy.stateFile, await haproxy.runtime.serversStateFile());
    await haproxy.master.reload();
    const restarted = startSynapse();
    await restarted.waitForLog((r) => r.msg === 'haproxy reloaded for a new config shape');
    expect(slotLines().every((l) => /^\s*server slot[0-9]+ [^\s:]+:[1-9][0-9]* /.test(l))).toBe(true);
    // The slot app1 leaves is filled again at run time later: traffic goes to its port, not 3210 + 8080.
    await deregister(a);
    await eventually('app1 out', async () => ((await upServers()).join() === `${b.host}:${b.port}` ? true : undefined), 30000);
    writeFileSync(haproxy.stateFile, await haproxy.runtime.serversStateFile());
    await haproxy.master.reload();
    await register(a, 'app1');
    await eventually('app1 back', async () => ((await upServers()).join() === both().join() ? true : undefined), 30000);
    const loop = startRequestLoop(LOCAL.host, LOCAL.port, { maxRequests: 60, pauseMs: 5 });
    const result = await loop.finished();
    expect(result.failures).toEqual([]);
    expect(Object.keys(result.answeredBy).sort()).toEqual(both());
  });
});
