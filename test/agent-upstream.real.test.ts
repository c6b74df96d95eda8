/**
 * Upstream behaviour of the agents against a real ZooKeeper ensemble and a real HAProxy:
 * synapse starts a stopped HAProxy through reload_command (and again after it dies), nerve
 * re-creates a registration deleted from outside, reloads on SIGHUP changing only what changed,
 * checks over HTTPS with headers, and writes path-encoded node names; ZooKeeper hosts carry a
 * chroot suffix and synapse routes by label.
 */
import { execFileSync } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { createServer as createHttpsServer, Server } from 'https';
import { AddressInfo } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { ZK_NO_NODE, ZkError, ZkSession } from '../lib/agent/zk-session';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { startRequestLoop } from './support/agent-request-loop';
import { eventually, httpGet } from './support/eventually';
import { freePort, HAPROXY_BINARY } from './support/haproxy-process';
import { fourLetterWord } from './support/zookeeper-4lw';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

describe('upstream behaviour with a real HAProxy and ZooKeeper', () => {
  let cluster: ZookeeperCluster;
  let zk: ZkSession;
  let dir: string;
  let localPort: number;
  let https: Server;
  let nerveFile: string;
  let nerve: AgentProcess;
  let synapse: AgentProcess;
  const agents: AgentProcess[] = [];
  const backends: TestBackend[] = [];
  const pidFile = (): string => join(dir, 'haproxy.pid');
  const haproxyPid = (): number | undefined => (existsSync(pidFile()) ? Number(readFileSync(pidFile(), 'utf8').trim()) : undefined);

  async function children(path: string): Promise<{ child: string; data: string; owner: string }[]> {
    const names = await zk.getChildren(path).catch((e: ZkError) => (e.code === ZK_NO_NODE ? [] : Promise.reject(e)));
    const out = [];
    for (const child of names.sort()) {
      const node = await zk.getData(`${path}/${child}`).catch(() => undefined);
      if (node) out.push({ child, data: node.data.toString(), owner: node.stat.ephemeralOwner.toString('hex') });
    }
    return out;
  }

  /** The session timeout ZooKeeper agreed for a session (`cons`: `sid=0x...` and `to=<ms>`). */
  async function negotiatedTimeoutMs(sessionHex: string): Promise<number | undefined> {
    for (const member of cluster.connectString.split(',')) {
      const [host, port] = member.split(':');
      const text = await fourLetterWord(host, Number(port), 'cons').catch(() => '');
      for (const line of text.split('\n')) {
        const sid = /sid=0x([0-9a-f]+)/.exec(line)?.[1];
        if (sid !== undefined && BigInt(`0x${sid}`) === BigInt(`0x${sessionHex}`)) return Number(/to=([0-9]+)/.exec(line)?.[1]);
      }
    }
    return undefined;
  }

  function nerveConfig(billingWeight: number): object {
    // A chroot suffix on the last host, as upstream files write it: every path lives under /smartstack.
    const hosts = cluster.connectString.split(',');
    hosts[hosts.length - 1] += '/smartstack';
    const service = (b: { host: string; port: number }, extra: object): object => ({
      host: b.host, port: b.port, reporter_type: 'zookeeper', zk_hosts: hosts, zk_path: '/services/users', check_interval: 0.2,
      checks: [{ type: 'http', uri: '/health', timeout: 0.5, rise: 1, fall: 2 }], ...extra,
    });
    return {
      instance_id: 'app1',
      zk_session_timeout: 6,
      heartbeat_path: join(dir, 'nerve.heartbeat'),
      services: {
        // Registered without checks: nothing listens there.
        'mocked': { ...service({ host: '127.0.0.45', port: 9 }, { zk_path: '/services/mocked', check_mocked: true }), checks: [] },
        'users': service(backends[0], { labels: { az: 'a' }, use_path_encoding: true }),
        'users-other-zone': service(backends[1], { labels: { az: 'b' } }),
        'billing': service(backends[2], { zk_path: '/services/billing', weight: billingWeight }),
        'secure': {
          ...service({ host: '127.0.0.44', port: (https.address() as AddressInfo).port }, { zk_path: '/services/secure' }),
          checks: [{ type: 'http', uri: '/health', ssl: true, headers: { 'X-Check': 'nerve' }, open_timeout: 1, read_timeout: 1 }],
        },
      },
    };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agent-upstream-'));
    // ZooKeeper's tick of 2 s allows sessions up to 40 s: upstream's 32 s default is granted as asked.
    [cluster, localPort] = await Promise.all([startLocalCluster(3, { tickTimeMs: 2000 }), freePort()]);
    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 10000 });
    await zk.start(20000);
    backends.push(await startBackend('127.0.0.41'), await startBackend('127.0.0.42'), await startBackend('127.0.0.43'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    https = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
      res.writeHead(req.headers['x-check'] === 'nerve' ? 200 : 400).end('ok');
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.44', resolve));

    nerveFile = join(dir, 'nerve.conf.json');
    writeFileSync(nerveFile, JSON.stringify(nerveConfig(1)));
    nerve = spawnAgent(['nerve', '--config', nerveFile]);
    agents.push(nerve);

    const configPath = join(dir, 'haproxy.cfg');
    const synapseFile = join(dir, 'synapse.conf.json');
    const hosts = cluster.connectString.split(',');
    hosts[0] += '/smartstack';
    writeFileSync(synapseFile, JSON.stringify({
      services: {
        users: {
          discovery: { method: 'zookeeper', path: '/services/users', hosts, label_filters: [{ label: 'az', value: 'a', condition: 'equals' }] },
          haproxy: { port: localPort, server_options: 'check inter 1s rise 1 fall 2', listen: ['mode http', 'option httpchk GET /health'] },
        },
      },
      haproxy: {
        config_file_path: configPath,
        socket_file_path: [join(dir, 'admin.sock')],
        // Starts HAProxy when it is not running, reloads it (master-worker) when it is.
        reload_command: `P=${pidFile()}; if [ -s $P ] && kill -0 $(cat $P) 2>/dev/null; then kill -USR2 $(cat $P); else ${HAPROXY_BINARY} -D -p $P -f ${configPath}; fi`,
        restart_interval: 1,
        defaults: ['timeout connect 1s', 'timeout client 10s', 'timeout server 10s'],
      },
    }));
    synapse = spawnAgent(['synapse', '--config', synapseFile, '--zk-session-timeout', '6000']);
    agents.push(synapse);
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    const pid = haproxyPid();
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await new Promise<void>((resolve) => (https ? https.close(() => resolve()) : resolve()));
    await Promise.all(backends.map((b) => b.kill()));
    await zk?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('synapse starts the stopped HAProxy through reload_command and routes to the instances its label filter admits', async () => {
    await synapse.waitForLog((r) => r.msg === 'haproxy does not answer on its admin socket: writing haproxy.cfg and running reload_command');
    const [ours, other] = backends;
    await eventually('traffic through HAProxy', () => httpGet(`http://127.0.0.1:${localPort}/`).then((t) => t.includes(`${ours.host}:${ours.port}`), () => false), 60000);
    const result = await startRequestLoop('127.0.0.1', localPort, { maxRequests: 30, pauseMs: 5 }).finished();
    expect(result.failures).toEqual([]);
    expect(Object.keys(result.answeredBy)).toEqual([`${ours.host}:${ours.port}`]);
    expect(other.served).toBe(0);
    // The file names the label-filtered-out instance nowhere.
    expect(readFileSync(join(dir, 'haproxy.cfg'), 'utf8')).not.toContain(other.host);
  });

  test('nerve: check_mocked registers without checking; heartbeat_path is touched', async () => {
    await eventually('the mocked service registers', async () => (await children('/smartstack/services/mocked')).length === 1);
    expect(existsSync(join(dir, 'nerve.heartbeat'))).toBe(true);
  });

  test('nerve: chroot suffix, path-encoded name, HTTPS check with headers', async () => {
    const users = await eventually('both users registrations', async () => {
      const c = await children('/smartstack/services/users');
      return c.length === 2 ? c : undefined;
    });
    const encoded = users.find((u) => u.child.startsWith('base64_'));
    expect(encoded).toBeDefined();
    const b64 = /^base64_([0-9]+)_/.exec(encoded!.child)!;
    const payload = Buffer.from(encoded!.child.slice(b64[0].length, b64[0].length + Number(b64[1])).replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString();
    expect(payload).toBe(encoded!.data);
    expect(JSON.parse(payload)).toMatchObject({ host: backends[0].host, port: backends[0].port, name: 'app1', labels: { az: 'a' } });
    const secure = await eventually('the HTTPS-checked service registers', async () => {
      const c = await children('/smartstack/services/secure');
      return c.length === 1 ? c : undefined;
    });
    expect(JSON.parse(secure[0].data)).toMatchObject({ host: '127.0.0.44' });
    // zk_session_timeout: 6 (seconds) in the file.
    expect(await negotiatedTimeoutMs(secure[0].owner)).toBe(6000);
  });

  test('a registration deleted from outside is back within a check round or two', async () => {
    const [billing] = await eventually('billing registered', async () => {
      const c = await children('/smartstack/services/billing');
      return c.length === 1 ? c : undefined;
    });
    await zk.remove(`/smartstack/services/billing/${billing.child}`);
    const back = await eventually('billing registered again', async () => {
      const c = await children('/smartstack/services/billing');
      return c.length === 1 ? c : undefined;
    }, 5000, 20);
    expect(back[0].child).not.toBe(billing.child);
    expect(back[0].data).toBe(billing.data);
    await nerve.waitForLog((r) => r.msg === 'registration is gone from zookeeper; registering again');
  });

  test('SIGHUP with a changed config changes only what changed; a consumer sees no failed request', async () => {
    const usersBefore = await children('/smartstack/services/users');
    const secureBefore = await children('/smartstack/services/secure');
    const loop = startRequestLoop('127.0.0.1', localPort, { maxDurationMs: 60000, pauseMs: 5 });
    writeFileSync(nerveFile, JSON.stringify(nerveConfig(5)));
    nerve.child.kill('SIGHUP');
    const reloaded = await nerve.waitForLog((r) => r.msg === 'config reloaded');
    expect(reloaded).toMatchObject({ changed: ['billing'], added: [], removed: [], unchanged: ['mocked', 'secure', 'users', 'users-other-zone'] });
    const billing = await eventually('billing with its new weight', async () => {
      const c = await children('/smartstack/services/billing');
      return c.length === 1 && JSON.parse(c[0].data).weight === 5 ? c : undefined;
    });
    expect(billing).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1000));
    const result = await loop.stop();
    expect(await children('/smartstack/services/users')).toEqual(usersBefore);
    expect(await children('/smartstack/services/secure')).toEqual(secureBefore);
    expect(result.ok).toBeGreaterThan(10);
    expect(result.failures).toEqual([]);
    expect(nerve.child.exitCode).toBeNull();
  });

  test("synapse's own sample config/synapse.conf.json starts as it is, warning once per ignored key", async () => {
    const sample = spawnAgent(['synapse', '--config', join(__dirname, 'fixtures', 'upstream', 'synapse.conf.json')]);
    agents.push(sample);
    await sample.waitForLog((r) => r.msg === 'synapse starting');
    const ignored = await eventually('the warnings', () => {
      const w = sample.logs().filter((r) => r.msg === 'config key ignored').map((r) => String(r.detail).split(' = ')[0].split(': ')[1]);
      return w.length === 4 ? w : undefined;
    });
    expect(ignored).toEqual(['statsd', 'haproxy.do_checks', 'haproxy.candidate_config_file_path', 'haproxy.check_command']);
    expect(sample.child.exitCode).toBeNull();
    expect(await sample.stop('SIGTERM')).toBe(0);
  });

  test('a SIGTERM the moment an agent says it is starting is a clean stop (exit 0), not a kill', async () => {
    const nerveFile = join(dir, 'nerve-stopped-at-start.conf.json');
    const [http] = backends;
    writeFileSync(nerveFile, JSON.stringify({ instance_id: 'early', services: { early: { host: http.host, port: http.port, reporter_type: 'zookeeper', zk_hosts: cluster.connectString.split(','), zk_path: '/nerve/early', check_interval: 1, checks: [{ type: 'tcp' }] } } }));
    for (const args of [['synapse', '--config', join(__dirname, 'fixtures', 'upstream', 'synapse.conf.json')], ['nerve', '--config', nerveFile]]) {
      const agent = spawnAgent(args);
      agents.push(agent);
      await agent.waitForLog((r) => r.msg === `${args[0]} starting`);
      expect({ agent: args[0], exit: await agent.stop('SIGTERM') }).toEqual({ agent: args[0], exit: 0 });
    }
  });

  test("nerve's own example/nerve.conf.json: refused naming the etcd service; without the rabbitmq and etcd services it registers", async () => {
    const raw = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'upstream', 'nerve.conf.json'), 'utf8')) as { services: { [k: string]: { [k: string]: unknown } } };
    const file = join(dir, 'nerve-sample.conf.json');
    // The sample's relative service_conf_dir, made absolute; nothing else changed.
    writeFileSync(file, JSON.stringify({ ...raw, service_conf_dir: join(__dirname, 'fixtures', 'upstream', 'nerve_services') }));
    const refused = spawnAgent(['nerve', '--config', file]);
    agents.push(refused);
    expect(await refused.exited()).toBe(2);
    expect(refused.stderr()).toContain(`${file}: services.etcd_service1.reporter_type = "etcd": must be "zookeeper"`);

    // The sample's 1.2.3.4 and localhost:2181 swapped for loopback backends and the test ensemble.
    const [http, tcp] = backends;
    const services: { [k: string]: unknown } = {};
    for (const [name, b] of [['your_http_service', http], ['your_tcp_service', tcp]] as const) {
      services[name] = { ...raw.services[name], host: b.host, port: b.port, zk_hosts: cluster.connectString.split(',') };
    }
    writeFileSync(file, JSON.stringify({ ...raw, service_conf_dir: undefined, services }));
    const sample = spawnAgent(['nerve', '--config', file]);
    agents.push(sample);
    await eventually('both sample services registered', async () =>
      (await children('/nerve/services/your_http_service/services')).length === 1 && (await children('/nerve/services/your_tcp_service/services')).length === 1, 30000);
    expect(sample.logs().filter((r) => r.msg === 'config key ignored').map((r) => String(r.detail).split(' = ')[0].split(': ')[1]))
      .toEqual(['max_repeated_report_failures', 'statsd']);
    // No zk_session_timeout and no flag: upstream nerve's 32 s.
    const [node] = await children('/nerve/services/your_http_service/services');
    expect(await negotiatedTimeoutMs(node.owner)).toBe(32000);
    expect(await sample.stop('SIGTERM')).toBe(0);
    expect(await children('/nerve/services/your_http_service/services')).toEqual([]);
  });

  test('without an admin socket synapse still writes haproxy.cfg and runs reload_command at its first sync, as upstream', async () => {
    const own = join(dir, 'socketless');
    const { mkdirSync } = await import('fs');
    mkdirSync(own);
    const port = await freePort();
    const configPath = join(own, 'haproxy.cfg');
    // A stale file from before: upstream runs reload_command at its first loop all the same.
    writeFileSync(configPath, '# stale\n');
    writeFileSync(join(own, 'synapse.conf.json'), JSON.stringify({
      services: { users: { discovery: { method: 'zookeeper', path: '/smartstack/services/users', hosts: cluster.connectString.split(',') }, haproxy: { port, listen: ['mode http'] } } },
      haproxy: {
        config_file_path: configPath,
        do_socket: false,
        reload_command: `P=${own}/haproxy.pid; if [ -s $P ] && kill -0 $(cat $P) 2>/dev/null; then kill -USR2 $(cat $P); else ${HAPROXY_BINARY} -D -p $P -f ${configPath}; fi`,
        defaults: ['timeout connect 1s', 'timeout client 10s', 'timeout server 10s'],
      },
    }));
    const socketless = spawnAgent(['synapse', '--config', join(own, 'synapse.conf.json')]);
    agents.push(socketless);
    try {
      const ours = backends[0];
      await eventually('traffic through the HAProxy it started', () => httpGet(`http://127.0.0.1:${port}/`).then((t) => t.includes(`${ours.host}:${ours.port}`), () => false), 60000, 200)
        .catch((e: Error) => Promise.reject(new Error(`${e.message}\n${socketless.stdout()}${socketless.stderr()}`)));
      expect(readFileSync(configPath, 'utf8')).toContain(`bind 127.0.0.1:${port}`);
    } finally {
      await socketless.stop('SIGKILL');
      const pid = existsSync(join(own, 'haproxy.pid')) ? Number(readFileSync(join(own, 'haproxy.pid'), 'utf8').trim()) : undefined;
      if (pid !== undefined) process.kill(pid, 'SIGTERM');
    }
  });

  test('an HAProxy that dies is started again the same way', async () => {
    const before = haproxyPid()!;
    process.kill(before, 'SIGTERM');
    await eventually('HAProxy gone', () => httpGet(`http://127.0.0.1:${localPort}/`).then(() => false, () => true), 10000);
    const ours = backends[0];
    await eventually('traffic through a new HAProxy', () => httpGet(`http://127.0.0.1:${localPort}/`).then((t) => t.includes(`${ours.host}:${ours.port}`), () => false), 40000, 200);
    expect(haproxyPid()).not.toBe(before);
    expect(synapse.logs().filter((r) => r.msg === 'haproxy started with reload_command').length).toBeGreaterThanOrEqual(2);
  });
});
