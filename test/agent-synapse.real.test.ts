/**
 * The synapse agent as a process with a real master-worker HAProxy and a real 3-member
 * ZooKeeper: registrations in both upstream formats, untrusted input refused, membership
 * changes through the runtime socket with zero reloads and zero failed requests, a checked
 * reload only when slots run out, a restart that changes nothing, and traffic that keeps
 * flowing while the whole ensemble is down.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { isInService } from '../lib/agent/haproxy-runtime';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { renderHaproxyConfig } from '../lib/render/haproxy-config';
import { encodeChildNamePrefix } from '../lib/schema/registration-codec';
import { loadSynapseConfig } from '../lib/agent/synapse-config-loader';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { startRequestLoop } from './support/agent-request-loop';
import { freePort, HaproxyProcess, startHaproxy } from './support/haproxy-process';
import { eventually, httpGet } from './support/eventually';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

describe('smartstack synapse with a real HAProxy and a real ZooKeeper ensemble', () => {
  let cluster: ZookeeperCluster;
  let zk: ZkSession;
  let haproxy: HaproxyProcess;
  let synapse: AgentProcess;
  let dir: string;
  let configFile: string;
  let localPort: number;
  let metricsPort: number;
  const backends: TestBackend[] = [];
  const agents: AgentProcess[] = [];

  /** `host:port` of every slot in service, in slot order. */
  async function inService(): Promise<string[]> {
    const servers = await haproxy.runtime.serversState('users');
    return servers.filter(isInService).map((s) => `${s.address}:${s.port}`);
  }

  async function metric(name: string): Promise<number> {
    const text = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  }

  async function backend(host: string): Promise<TestBackend> {
    const b = await startBackend(host);
    backends.push(b);
    return b;
  }

  function startSynapse(): AgentProcess {
    const agent = spawnAgent(['synapse', '--config', configFile, '--zk-session-timeout', '4000']);
    agents.push(agent);
    return agent;
  }

  async function register(b: TestBackend, name: string): Promise<string> {
    return zk.create(`/services/users/${name}_`, Buffer.from(`{"host":"${b.host}","port":${b.port},"name":"${name}"}`), CreateMode.EPHEMERAL_SEQUENTIAL);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-synapse-'));
    configFile = join(dir, 'synapse.conf.json');
    [cluster, localPort, metricsPort] = await Promise.all([startLocalCluster(3), freePort(), freePort()]);
    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 10000 });
    await zk.start(20000);
    const fallback = await backend('127.0.0.30');
    haproxy = await startHaproxy((paths) => {
      writeFileSync(configFile, JSON.stringify({
        services: {
          users: {
            discovery: { method: 'zookeeper', path: '/services/users', hosts: cluster.connectString.split(',') },
            haproxy: {
              port: String(localPort),
              server_options: 'check inter 1s rise 2 fall 2',
              // As the sidecar construct renders it: a request cut off by a dying instance is retried elsewhere.
              listen: ['mode http', 'option httpchk GET /health', 'balance roundrobin', 'retry-on conn-failure empty-response response-timeout'],
              server_slots: 4,
            },
            default_servers: [{ name: 'fallback', host: fallback.host, port: String(fallback.port) }],
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
        metrics_port: metricsPort,
      }, null, 2));
      return renderHaproxyConfig(loadSynapseConfig(configFile).config, {});
    });
    synapse = startSynapse();
    await synapse.waitForLog((r) => r.msg === 'zookeeper session established');
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await haproxy?.stop();
    await Promise.all(backends.map((b) => b.kill()));
    await zk?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('default servers serve while nothing is registered', async () => {
    const fallback = backends[0];
    expect(await inService()).toEqual([`${fallback.host}:${fallback.port}`]);
    const loop = startRequestLoop('127.0.0.1', localPort, { maxRequests: 20, pauseMs: 5 });
    const result = await loop.finished();
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(20);
    expect(Object.keys(result.answeredBy)).toEqual([`${fallback.host}:${fallback.port}`]);
  });

  test("picks up a registration in the Ruby nerve's exact format and a path-encoded one without reading it", async () => {
    const [ruby, encoded] = await Promise.all([backend('127.0.0.31'), backend('127.0.0.32')]);
    const getsBefore = await metric('synapse_zk_reads_total{op="get"');
    // Byte for byte what nerve 0.9 writes: JSON of host, port, name.
    await zk.create('/services/users/app-ruby_', Buffer.from(`{"host":"127.0.0.31","port":${ruby.port},"name":"app-ruby"}`), CreateMode.EPHEMERAL_SEQUENTIAL);
    const prefix = encodeChildNamePrefix({ host: encoded.host, port: encoded.port, name: 'app-b64' });
    await zk.create(`/services/users/${prefix}`, Buffer.alloc(0), CreateMode.EPHEMERAL_SEQUENTIAL);

    const want = [`${ruby.host}:${ruby.port}`, `${encoded.host}:${encoded.port}`].sort();
    await eventually('both registrations in haproxy', async () => ((await inService()).sort().join() === want.join() ? true : undefined));
    expect(await metric('synapse_zk_reads_total{op="get"')).toBe(getsBefore + 1); // the Ruby one only
    const loop = startRequestLoop('127.0.0.1', localPort, { maxRequests: 40, pauseMs: 5 });
    await new Promise((r) => setTimeout(r, 400));
    const result = await loop.stop();
    expect(result.failures).toEqual([]);
    expect(Object.keys(result.answeredBy).sort()).toEqual(want);
    expect((await haproxy.processes()).reloads).toBe(0);
  });

  test('malicious registrations never reach haproxy.cfg or the runtime socket', async () => {
    const rejectedBefore = await metric('synapse_registrations_rejected_total');
    const before = await haproxy.runtime.serversState('users');
    const bad = [
      '{"host":"10.9.9.1\\n  server evil 10.9.9.9:80","port":8080,"name":"nl"}',
      '{"host":"10.9.9.2;shutdown sessions server users/slot1","port":8080,"name":"semi"}',
      '{"host":"10.9.9.3","port":0,"name":"zero"}',
      '{"host":"10.9.9.4","port":70000,"name":"big"}',
      'host=10.9.9.5 port=8080',
      `{"host":"10.9.9.6","port":8080,"name":"${'x'.repeat(1000 * 1000)}"}`,
    ];
    for (const [i, data] of bad.entries()) await zk.create(`/services/users/evil${i}_`, Buffer.from(data), CreateMode.EPHEMERAL_SEQUENTIAL);
    await eventually('six refusals', async () => ((await metric('synapse_registrations_rejected_total')) === rejectedBefore + 6 ? true : undefined));
    const after = await haproxy.runtime.serversState('users');
    expect(after.map((s) => [s.server, s.address, s.port, s.adminState])).toEqual(before.map((s) => [s.server, s.address, s.port, s.adminState]));
    const cfg = readFileSync(haproxy.configPath, 'utf8');
    expect(cfg).not.toMatch(/10\.9\.9\.|evil|shutdown/);
    expect(synapse.logs().filter((r) => r.msg === 'registration refused').map((r) => r.reason)).toEqual(expect.arrayContaining([
      expect.stringContaining('control character'),
      expect.stringContaining("contains ';'"),
      'port 0 is not an integer 1-65535',
      'port 70000 is not an integer 1-65535',
      'payload is not JSON',
      expect.stringContaining('over the 8192-byte limit'),
    ]));
    expect((await haproxy.processes()).reloads).toBe(0);
  });

  test('adds a new instance and removes a dead one with zero reloads while every request succeeds', async () => {
    const before = await haproxy.processes();
    const loop = startRequestLoop('127.0.0.1', localPort, { maxRequests: 5000, maxDurationMs: 60000, pauseMs: 5 });
    const fresh = await backend('127.0.0.33');
    const nerveConfig = join(dir, 'nerve-33.json');
    writeFileSync(nerveConfig, JSON.stringify({
      instance_id: 'app33',
      services: { users: { host: fresh.host, port: fresh.port, reporter_type: 'zookeeper', zk_hosts: cluster.connectString.split(','), zk_path: '/services/users',
        check_interval: 0.2, checks: [{ type: 'http', uri: '/health', timeout: 0.5, rise: 2, fall: 2 }] } },
    }));
    const nerve = spawnAgent(['nerve', '--config', nerveConfig]);
    agents.push(nerve);
    await eventually('the new instance in haproxy', async () => ((await inService()).includes(`${fresh.host}:${fresh.port}`) ? true : undefined));
    await eventually('the new instance to take requests', async () => (fresh.served > 0 ? true : undefined));

    // The instance dies abruptly: its checks fail, nerve deletes the node, synapse takes it out.
    await fresh.kill();
    await eventually('the dead instance out of haproxy', async () => (!(await inService()).includes(`${fresh.host}:${fresh.port}`) ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    const result = await loop.stop();

    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(50);
    const after = await haproxy.processes();
    expect(after.reloads).toBe(before.reloads);
    expect(after.workers[0].pid).toBe(before.workers[0].pid);
    await nerve.stop();
  });

  test('when slots run out, one checked reload grows the backend and no request fails', async () => {
    const before = await haproxy.processes();
    const loop = startRequestLoop('127.0.0.1', localPort, { maxRequests: 5000, maxDurationMs: 60000, pauseMs: 5 });
    const extra = await Promise.all(['127.0.0.34', '127.0.0.35', '127.0.0.36'].map(backend));
    for (const [i, b] of extra.entries()) await register(b, `app${34 + i}`);
    // 2 registered + 3 new = 5 servers in a 4-slot backend.
    await eventually('five servers in haproxy', async () => ((await inService()).length === 5 ? true : undefined));
    await synapse.waitForLog((r) => r.msg === 'haproxy reloaded for a new config shape');
    await new Promise((r) => setTimeout(r, 500));
    const result = await loop.stop();
    expect(result.failures).toEqual([]);
    const after = await haproxy.processes();
    expect(after.reloads).toBe(before.reloads + 1);
    const cfg = readFileSync(haproxy.configPath, 'utf8');
    expect(cfg).toContain('server slot8 ');
    expect(cfg).not.toContain('server slot9 ');
    expect((await haproxy.runtime.serversState('users')).length).toBe(8);
  });

  test('a synapse restart changes nothing in haproxy', async () => {
    const before = (await haproxy.runtime.serversState('users')).map((s) => [s.server, s.address, s.port, isInService(s)]);
    const errors = synapse.logs().filter((r) => r.level === 'error' || r.level === 'raw');
    expect(errors).toEqual([]);
    expect(await synapse.stop('SIGTERM')).toBe(0);
    synapse = startSynapse();
    await synapse.waitForLog((r) => r.msg === 'instances changed' && r.service === 'users');
    // The sync that follows the first full view is where a restart would change something.
    await eventually('a sync after the first view', async () => ((await metric('synapse_syncs_total{result="ok"}').catch(() => 0)) >= 1 ? true : undefined));
    const after = (await haproxy.runtime.serversState('users')).map((s) => [s.server, s.address, s.port, isInService(s)]);
    expect(after).toEqual(before);
    expect(synapse.logs().filter((r) => r.msg === 'server added' || r.msg === 'server removed' || String(r.msg).startsWith('haproxy reloaded'))).toEqual([]);
  });

  test('with every ZooKeeper member stopped traffic keeps flowing; when they return, changes flow again', async () => {
    const servers = await inService();
    const getsBefore = await metric('synapse_zk_reads_total{op="get"');
    const loop = startRequestLoop('127.0.0.1', localPort, { maxRequests: 5000, maxDurationMs: 60000, pauseMs: 5 });
    await Promise.all([1, 2, 3].map((id) => cluster.stopMember(id)));
    await synapse.waitForLog((r) => r.msg === 'zookeeper connection lost; reconnecting');
    await new Promise((r) => setTimeout(r, 5000)); // past synapse's 4 s session timeout
    expect(await inService()).toEqual(servers);
    [1, 2, 3].forEach((id) => cluster.startMember(id));
    await cluster.waitForQuorum([1, 2, 3]);
    const result = await loop.stop();
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(100);

    await eventually('the test client back on the ensemble', async () => (zk.connected ? true : undefined), 30000);
    const late = await backend('127.0.0.37');
    await eventually('a registration after the outage', async () => register(late, 'app37'));
    await eventually('the new instance in haproxy', async () => ((await inService()).includes(`${late.host}:${late.port}`) ? true : undefined), 30000);
    // Reconnecting re-listed the path but read only the one new child, not every known one again.
    expect(await metric('synapse_zk_reads_total{op="get"')).toBe(getsBefore + 1);
  });

  test('an invalid synapse config exits 2 and names the key and the value', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ services: { users: { discovery: { method: 'zookeeper', path: '/s', hosts: ['127.0.0.1:2181'] }, haproxy: { port: '3210', server_options: 'check\ninter 2s' } } }, haproxy: {} }));
    const agent = spawnAgent(['synapse', '--config', bad]);
    expect(await agent.exited()).toBe(2);
    expect(agent.stderr()).toContain(`${bad}: services.users.haproxy.server_options = "check\\ninter 2s": contains control character 0x0a`);
  });
});
