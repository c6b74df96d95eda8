/**
 * Airbnb's own Ruby nerve 0.9.7 and synapse 0.18.9 beside ours, on one real ZooKeeper and two real
 * HAProxies: a host moving from one to the other must not notice which side registered an instance
 * or which side routes to it. Each nerve registers one instance of the same service (with a weight,
 * labels and per-server options); each synapse serves both; a failing check and a SIGTERM on either
 * side are followed by the other side's synapse.
 *
 * The Ruby agents are built from their sources by `.ci/run` (see README, "Airbnb's Ruby agents");
 * RUBY_SMARTSTACK_BIN names the folder of `ruby-nerve` and `ruby-synapse`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { spawn, ChildProcess } from 'child_process';
import { tmpdir } from 'os';
import { join } from 'path';
import { isInService, parseServersState, sendSocketCommand } from '../lib/agent/haproxy-runtime';
import { CreateMode, ZkSession } from '../lib/agent/zk-session';
import { startBackend, TestBackend } from './support/agent-backend';
import { AgentProcess, spawnAgent } from './support/agent-process';
import { startRequestLoop } from './support/agent-request-loop';
import { describeWhenPresent } from './support/describe-when';
import { eventually } from './support/eventually';
import { freePort, HAPROXY_BINARY } from './support/haproxy-process';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

const RUBY_BIN = process.env.RUBY_SMARTSTACK_BIN ?? '/var/cache/ruby-smartstack/bin';
const rubyMissing = ['ruby-nerve', 'ruby-synapse'].filter((b) => !existsSync(join(RUBY_BIN, b))).map((b) => `${join(RUBY_BIN, b)} (Airbnb's Ruby agents)`);
const RUBY_HINT = 'build them with: sh <ruby-smartstack sources>/build.sh, or set RUBY_SMARTSTACK_BIN';
/** `.ci/run` says `none` when this machine has no sources to build them from: skipped with a warning, even under CI. */
const describeRuby = RUBY_BIN === 'none'
  ? (console.warn(`test/ruby-interop.real.test.ts skipped — no sources of Airbnb's Ruby agents on this machine; ${RUBY_HINT}`), describe.skip)
  : describeWhenPresent('test/ruby-interop.real.test.ts', rubyMissing, RUBY_HINT);

const SERVICE = 'users';
const ZK_PATH = `/services/${SERVICE}`;

/** A Ruby agent as a child process, its output kept for the failure message. */
interface RubyAgent {
  readonly child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function spawnRuby(agent: 'nerve' | 'synapse', config: string): RubyAgent {
  const child = spawn(join(RUBY_BIN, `ruby-${agent}`), [config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** One synapse's HAProxy: its port, config file, admin socket and pid file. */
interface Proxy {
  readonly side: 'ruby' | 'ours';
  readonly port: number;
  /** The listener of the zone-a backend (a label filter). */
  readonly zonePort: number;
  readonly configPath: string;
  readonly socket: string;
  readonly pidFile: string;
}

/** A server HAProxy sends traffic to, as `show servers state` tells it. */
interface Served {
  readonly address: string;
  readonly weight: number;
}

describeRuby("Airbnb's Ruby nerve and synapse beside ours, on one ensemble", () => {
  let dir: string;
  let cluster: ZookeeperCluster;
  const backends: Record<'ruby' | 'ours', TestBackend> = {} as Record<'ruby' | 'ours', TestBackend>;
  const proxies: Record<'ruby' | 'ours', Proxy> = {} as Record<'ruby' | 'ours', Proxy>;
  let rubyNerve: RubyAgent;
  let rubySynapse: RubyAgent;
  let ourNerve: AgentProcess;
  let ourSynapse: AgentProcess;
  const address = (b: TestBackend): string => `${b.host}:${b.port}`;

  /** What each side registers: the Ruby instance weight 3 in zone a, ours weight 2 in zone b. */
  const nerveConfig = (side: 'ruby' | 'ours'): object => {
    const b = backends[side];
    return {
      instance_id: `${side}-host`,
      services: {
        [SERVICE]: {
          host: b.host,
          port: b.port,
          reporter_type: 'zookeeper',
          zk_hosts: cluster.connectString.split(','),
          zk_path: ZK_PATH,
          check_interval: 0.2,
          weight: side === 'ruby' ? 3 : 2,
          labels: { az: side === 'ruby' ? 'a' : 'b' },
          haproxy_server_options: side === 'ruby' ? 'maxconn 51' : 'maxconn 52',
          checks: [{ type: 'http', uri: '/health', timeout: 0.5, rise: 1, fall: 2 }],
        },
      },
    };
  };

  /**
   * The same synapse file for both sides but for its paths. HAProxy 2.6 refuses a file without a
   * final newline, which the Ruby synapse writes: the reload command starts HAProxy from a copy with one.
   */
  const synapseConfig = (p: Proxy): object => {
    const running = `${p.configPath}.running`;
    return {
      services: {
        [SERVICE]: {
          discovery: { method: 'zookeeper', path: ZK_PATH, hosts: cluster.connectString.split(',') },
          haproxy: { port: p.port, server_options: 'check inter 500ms rise 1 fall 2', listen: ['mode http', 'option httpchk GET /health'] },
        },
        [`${SERVICE}-zone-a`]: {
          discovery: { method: 'zookeeper', path: ZK_PATH, hosts: cluster.connectString.split(','), label_filters: [{ label: 'az', value: 'a', condition: 'equals' }] },
          haproxy: { port: p.zonePort, server_options: 'check inter 500ms rise 1 fall 2', listen: ['mode http', 'option httpchk GET /health'] },
        },
      },
      haproxy: {
        config_file_path: p.configPath,
        socket_file_path: p.socket,
        do_writes: true,
        do_reloads: true,
        do_socket: true,
        reload_command:
          `cp ${p.configPath} ${running} && echo >> ${running} && P=${p.pidFile}; ` +
          `if [ -s $P ] && kill -0 $(cat $P) 2>/dev/null; then ${HAPROXY_BINARY} -D -p $P -f ${running} -sf $(cat $P); else ${HAPROXY_BINARY} -D -p $P -f ${running}; fi`,
        restart_interval: 1,
        // Registration weights are applied only when asked, by both synapses.
        use_nerve_weights: true,
        global: [`stats socket ${p.socket} mode 600 level admin`],
        defaults: ['timeout connect 1s', 'timeout client 10s', 'timeout server 10s'],
      },
    };
  };

  /** The servers of a backend that HAProxy would send a request to, with their weights. */
  async function served(p: Proxy, backend: string): Promise<Served[]> {
    const states = parseServersState(await sendSocketCommand(p.socket, 'show servers state'));
    return states
      .filter((s) => s.backend === backend && s.operationalState === 2 && isInService(s))
      .map((s) => ({ address: `${s.address}:${s.port}`, weight: s.weight }))
      .sort((a, b) => a.address.localeCompare(b.address));
  }

  /** Waits until both synapses' HAProxies serve exactly `expected` in `backend`. */
  async function bothServe(backend: string, expected: Served[], timeoutMs = 30000): Promise<void> {
    const want = JSON.stringify([...expected].sort((a, b) => a.address.localeCompare(b.address)));
    for (const p of Object.values(proxies)) {
      let last = '';
      await eventually(`${p.side} synapse's HAProxy serving ${want} in ${backend}`, async () => {
        last = JSON.stringify(await served(p, backend).catch((e: Error) => e.message));
        return last === want;
      }, timeoutMs, 100).catch((e: Error) => {
        throw new Error(`${e.message}; it serves ${last}\nRuby nerve:\n${rubyNerve.output().slice(-2000)}\nRuby synapse:\n${rubySynapse.output().slice(-2000)}`);
      });
    }
  }

  /** A short burst of requests through one side's HAProxy: who answered, and how many failed. */
  async function burst(p: Proxy, port = p.port) {
    const r = await startRequestLoop('127.0.0.1', port, { maxRequests: 40, maxDurationMs: 10000, pauseMs: 2 }).finished();
    return { answeredBy: Object.keys(r.answeredBy).sort(), failures: r.failures.length };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ruby-interop-'));
    // The Ruby agents' zk gem asks for its own session timeout; a 2 s tick grants up to 40 s.
    cluster = await startLocalCluster(1, { tickTimeMs: 2000 });
    backends.ruby = await startBackend('127.0.0.61');
    backends.ours = await startBackend('127.0.0.62');
    for (const side of ['ruby', 'ours'] as const) {
      proxies[side] = {
        side,
        port: await freePort(),
        zonePort: await freePort(),
        configPath: join(dir, `${side}-haproxy.cfg`),
        socket: join(dir, `${side}-admin.sock`),
        pidFile: join(dir, `${side}-haproxy.pid`),
      };
    }
    for (const side of ['ruby', 'ours'] as const) {
      writeFileSync(join(dir, `${side}-nerve.json`), JSON.stringify(nerveConfig(side), null, 2));
      writeFileSync(join(dir, `${side}-synapse.json`), JSON.stringify(synapseConfig(proxies[side]), null, 2));
    }
    rubyNerve = spawnRuby('nerve', join(dir, 'ruby-nerve.json'));
    rubySynapse = spawnRuby('synapse', join(dir, 'ruby-synapse.json'));
    ourNerve = spawnAgent(['nerve', '--config', join(dir, 'ours-nerve.json')]);
    ourSynapse = spawnAgent(['synapse', '--config', join(dir, 'ours-synapse.json')]);
  }, 60000);

  afterAll(async () => {
    await Promise.all([rubyNerve?.stop('SIGKILL'), rubySynapse?.stop('SIGKILL'), ourNerve?.stop('SIGKILL'), ourSynapse?.stop('SIGKILL')]);
    for (const p of Object.values(proxies)) {
      const pid = existsSync(p.pidFile) ? Number(readFileSync(p.pidFile, 'utf8').trim()) : undefined;
      try {
        if (pid) process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await Promise.all(Object.values(backends).map((b) => b.kill()));
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("each synapse serves both nerves' instances, with the weight each registered", async () => {
    await bothServe(SERVICE, [
      { address: address(backends.ruby), weight: 3 },
      { address: address(backends.ours), weight: 2 },
    ], 60000);
    for (const p of Object.values(proxies)) {
      expect({ side: p.side, ...(await burst(p)) }).toEqual({ side: p.side, answeredBy: [address(backends.ruby), address(backends.ours)].sort(), failures: 0 });
    }
  }, 90000);

  test("each synapse's label filter reads the other side's labels", async () => {
    await bothServe(`${SERVICE}-zone-a`, [{ address: address(backends.ruby), weight: 3 }]);
    for (const p of Object.values(proxies)) {
      expect({ side: p.side, ...(await burst(p, p.zonePort)) }).toEqual({ side: p.side, answeredBy: [address(backends.ruby)], failures: 0 });
    }
  }, 60000);

  test("each synapse writes the other side's per-instance HAProxy options on its server", async () => {
    // The Ruby synapse rewrites its file on every change; ours writes servers it adds through the
    // socket, and its file when it starts: both files name both instances with their options.
    for (const p of Object.values(proxies)) {
      const text = readFileSync(p.configPath, 'utf8');
      for (const [side, option] of [['ruby', 'maxconn 51'], ['ours', 'maxconn 52']] as const) {
        const line = text.split('\n').find((l) => l.trim().startsWith('server ') && l.includes(address(backends[side])));
        expect({ file: p.side, instance: side, line: line?.includes(option) }).toEqual({ file: p.side, instance: side, line: true });
      }
    }
  }, 30000);

  test('a failing check on either side takes its instance out of both synapses, and back', async () => {
    for (const side of ['ruby', 'ours'] as const) {
      const other = side === 'ruby' ? 'ours' : 'ruby';
      backends[side].setHealthy(false);
      await bothServe(SERVICE, [{ address: address(backends[other]), weight: other === 'ruby' ? 3 : 2 }]);
      for (const p of Object.values(proxies)) expect({ side: p.side, ...(await burst(p)) }).toEqual({ side: p.side, answeredBy: [address(backends[other])], failures: 0 });
      backends[side].setHealthy(true);
      await bothServe(SERVICE, [
        { address: address(backends.ruby), weight: 3 },
        { address: address(backends.ours), weight: 2 },
      ]);
    }
  }, 120000);

  test("a SIGTERM to either nerve removes its instance from both synapses, and no request fails", async () => {
    const loops = Object.values(proxies).map((p) => ({ p, loop: startRequestLoop('127.0.0.1', p.port, { maxDurationMs: 60000, pauseMs: 5 }) }));
    await ourNerve.stop('SIGTERM');
    await bothServe(SERVICE, [{ address: address(backends.ruby), weight: 3 }]);
    // Ours back, then the Ruby nerve stopped: the other direction.
    ourNerve = spawnAgent(['nerve', '--config', join(dir, 'ours-nerve.json')]);
    await bothServe(SERVICE, [
      { address: address(backends.ruby), weight: 3 },
      { address: address(backends.ours), weight: 2 },
    ]);
    await rubyNerve.stop('SIGTERM');
    await bothServe(SERVICE, [{ address: address(backends.ours), weight: 2 }]);
    for (const { p, loop } of loops) {
      const r = await loop.stop();
      expect({ side: p.side, failures: r.failures.slice(0, 3), sent: r.sent > 50 }).toEqual({ side: p.side, failures: [], sent: true });
    }
  }, 120000);

  test('with every instance gone, both synapses keep the last servers (use_previous_backends, on by default)', async () => {
    const rubyLogFrom = rubySynapse.output().length;
    await ourNerve.stop('SIGTERM');
    // Both synapses have seen the registration go (each says it keeps the previous servers); then they still route to them.
    await eventually('the Ruby synapse keeping the previous backends', () => /no backends for service users and .*using previous backends/.test(rubySynapse.output().slice(rubyLogFrom)) || undefined, 20000, 100);
    await ourSynapse.waitForLog((r) => r.msg === 'no registrations; keeping the previous servers (use_previous_backends)', 20000);
    for (const p of Object.values(proxies)) {
      expect({ side: p.side, servers: await served(p, SERVICE) }).toEqual({ side: p.side, servers: [{ address: address(backends.ours), weight: 2 }] });
      expect({ side: p.side, ...(await burst(p)) }).toEqual({ side: p.side, answeredBy: [address(backends.ours)], failures: 0 });
    }
  }, 60000);
});

describeRuby("upstream's sample synapse.conf.json, run by both synapses: the same servers", () => {
  let dir: string;
  let cluster: ZookeeperCluster;
  let zk: ZkSession;
  const agents: { stop(signal?: NodeJS.Signals): Promise<unknown> }[] = [];
  let ruby: RubyAgent;
  let ours: AgentProcess;

  /** The sample as upstream ships it, but for its ZooKeeper hosts and an output_directory per side (no HAProxy: its do_* keys are false). */
  const sampleFor = (side: 'ruby' | 'ours'): string => {
    const sample = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'upstream', 'synapse.conf.json'), 'utf8'));
    for (const service of Object.values<any>(sample.services)) service.discovery.hosts = cluster.connectString.split(',');
    sample.file_output = { output_directory: join(dir, side) };
    delete sample.statsd;
    const file = join(dir, `${side}-synapse.json`);
    writeFileSync(file, JSON.stringify(sample, null, 2));
    return file;
  };

  /** Each service's servers as a side's file_output has them: name, host, port, weight, sorted. */
  const servers = (side: 'ruby' | 'ours', service: string) => {
    const file = join(dir, side, `${service}.json`);
    if (!existsSync(file)) return undefined;
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: string; host: string; port: number; weight?: number }[])
      .map((s) => ({ name: s.name, host: s.host, port: s.port, weight: s.weight }))
      .sort((a, b) => `${a.host}:${a.port}`.localeCompare(`${b.host}:${b.port}`));
  };
  const bothSay = async (service: string, expected: object[]) => {
    for (const side of ['ruby', 'ours'] as const) {
      let last: unknown;
      await eventually(`${side} synapse's ${service}.json`, () => {
        last = servers(side, service);
        return JSON.stringify(last) === JSON.stringify(expected) || undefined;
      }, 30000, 100).catch((e: Error) => {
        throw new Error(`${e.message}: it holds ${JSON.stringify(last)}${side === 'ruby' ? `\n${ruby.output().slice(-1500)}` : ''}`);
      });
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ruby-samples-'));
    cluster = await startLocalCluster(1, { tickTimeMs: 2000 });
    zk = new ZkSession(cluster.connectString, { sessionTimeoutMs: 10000 });
    await zk.start(20000);
    ruby = spawnRuby('synapse', sampleFor('ruby'));
    ours = spawnAgent(['synapse', '--config', sampleFor('ours')]);
    agents.push(ruby, ours, { stop: () => zk.close() });
  }, 60000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('with nothing registered, both serve the default servers', async () => {
    await bothSay('service1', [{ name: 'default1', host: 'localhost', port: 8423 }]);
    await bothSay('service2', [{ name: 'default1', host: 'localhost', port: 8422 }]);
  }, 60000);

  test('registrations replace the default servers, with their names and weights, in both', async () => {
    await zk.mkdirp('/services/service1');
    const registration = (name: string, host: string, port: number, weight: number) => JSON.stringify({ host, port, name, weight });
    await zk.create('/services/service1/i-1_0000000001', Buffer.from(registration('app1', '10.1.0.1', 8423, 3)), CreateMode.EPHEMERAL);
    await zk.create('/services/service1/i-2_0000000002', Buffer.from(registration('app2', '10.1.0.2', 8423, 1)), CreateMode.EPHEMERAL);
    await bothSay('service1', [
      { name: 'app1', host: '10.1.0.1', port: 8423, weight: 3 },
      { name: 'app2', host: '10.1.0.2', port: 8423, weight: 1 },
    ]);
    await zk.remove('/services/service1/i-2_0000000002');
    await bothSay('service1', [{ name: 'app1', host: '10.1.0.1', port: 8423, weight: 3 }]);
    // service2 still has none registered.
    await bothSay('service2', [{ name: 'default1', host: 'localhost', port: 8422 }]);
  }, 60000);
});
