/**
 * A real ZooKeeper ensemble for tests: one JVM per member, each in its own temp dir, on loopback.
 *
 * `startZookeeperCluster` runs members from given zoo.cfg texts (for example synthesized ones, with
 * addresses already mapped to loopback); `startLocalCluster(n)` writes the configs itself, on
 * distinct 127.0.0.x addresses and free ports. Both wait for a leader via the `srvr` four-letter word.
 * Call `stop()` in afterAll; members are also killed if the test process exits.
 */
import { fourLetterWord } from '../../lib/local/four-letter-word';
import { ChildProcess, spawn } from 'child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { AddressInfo, createServer, Server } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';

export const ZOOKEEPER_CLASSPATH = process.env.ZOOKEEPER_CLASSPATH
  ?? ['/usr/share/java/zookeeper.jar', '/usr/share/java/slf4j-log4j12.jar', '/usr/share/java/log4j-1.2.jar'].join(':');

export interface ZookeeperMemberSpec {
  readonly myid: number;
  /** The member's zoo.cfg. Its `dataDir` and `dataLogDir` are replaced by temp dirs. */
  readonly zooCfg: string;
}

export interface ZookeeperClusterOptions {
  /** How long to wait for a leader and all followers. Default 60 s. */
  readonly timeoutMs?: number;
  /** JVM heap per member. Default 128 MiB. */
  readonly heapMiB?: number;
  /** Extra JVM arguments, e.g. `-Dzookeeper.admin.enableServer=false`. */
  readonly jvmArgs?: string[];
}

export interface ZookeeperMember {
  readonly myid: number;
  /** host:port clients connect to, from `clientPortAddress`/`clientPort` or the `server.N` line. */
  readonly clientAddress: string;
  readonly dir: string;
  readonly running: boolean;
  /** Everything the JVM printed (log4j console output). */
  output(): string;
}

export interface ZookeeperCluster {
  readonly members: ZookeeperMember[];
  /** `host:port,host:port,...` for clients. */
  readonly connectString: string;
  member(myid: number): ZookeeperMember;
  /** Stops one member (SIGTERM, SIGKILL after 5 s). */
  stopMember(myid: number): Promise<void>;
  /** Starts a stopped member again with its data. */
  startMember(myid: number): void;
  /** Freezes a member (SIGSTOP): its connections stay open but nothing answers, like a hung VM. */
  pauseMember(myid: number): void;
  /** Resumes a frozen member (SIGCONT). */
  resumeMember(myid: number): void;
  /** The member whose client connections include the session (hex id), by the `cons` four-letter word. */
  memberServing(sessionIdHex: string): Promise<number | undefined>;
  /** Waits until the running members (or those given) report leader/follower. */
  waitForQuorum(myids?: number[], timeoutMs?: number): Promise<void>;
  /** The `Mode:` line of `srvr` for a member ('' when it does not serve). */
  mode(myid: number): Promise<string>;
  /** Stops every member and removes the temp dirs. */
  stop(): Promise<void>;
}

interface MemberState {
  myid: number;
  clientAddress: string;
  dir: string;
  confDir: string;
  process?: ChildProcess;
  log: string;
}

const LOG4J = [
  'log4j.rootLogger=INFO, CONSOLE',
  'log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender',
  'log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout',
  'log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [myid:%X{myid}] %c{1}: %m%n',
  '',
].join('\n');

const alive = new Set<ChildProcess>();
process.once('exit', () => alive.forEach((c) => c.kill('SIGKILL')));

/** Sends a four-letter word to `host:port` ('' when the member does not answer). */
function fourLetterWordAt(address: string, word: string): Promise<string> {
  const at = address.lastIndexOf(':');
  return fourLetterWord(address.slice(0, at), Number(address.slice(at + 1)), word);
}

/** Runs the given members and waits for a leader and followers. */
export async function startZookeeperCluster(specs: ZookeeperMemberSpec[], options: ZookeeperClusterOptions = {}): Promise<ZookeeperCluster> {
  const base = mkdtempSync(join(tmpdir(), 'zk-cluster-'));
  const states: MemberState[] = specs.map((spec) => {
    const dir = join(base, `member-${spec.myid}`);
    const confDir = join(dir, 'conf');
    const dataDir = join(dir, 'data');
    const logDir = join(dir, 'txlog');
    for (const d of [confDir, dataDir, logDir]) mkdirSync(d, { recursive: true });
    const lines = spec.zooCfg.split('\n').filter((l) => !/^\s*(dataDir|dataLogDir)\s*=/.test(l));
    writeFileSync(join(confDir, 'zoo.cfg'), [...lines, `dataDir=${dataDir}`, `dataLogDir=${logDir}`, ''].join('\n'));
    writeFileSync(join(confDir, 'log4j.properties'), LOG4J);
    writeFileSync(join(dataDir, 'myid'), `${spec.myid}\n`);
    return { myid: spec.myid, clientAddress: clientAddressOf(spec), dir, confDir, log: '' };
  });

  const start = (m: MemberState): void => {
    const heap = options.heapMiB ?? 128;
    const child = spawn('java', [
      `-Xmx${heap}m`, '-Xms32m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xss512k',
      '-Dzookeeper.admin.enableServer=false',
      ...(options.jvmArgs ?? []),
      '-cp', `${m.confDir}:${ZOOKEEPER_CLASSPATH}`,
      'org.apache.zookeeper.server.quorum.QuorumPeerMain', join(m.confDir, 'zoo.cfg'),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (d: Buffer): void => {
      m.log += d.toString();
      if (m.log.length > 2_000_000) m.log = m.log.slice(-1_000_000);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    alive.add(child);
    child.once('exit', () => alive.delete(child));
    m.process = child;
  };

  const isRunning = (m: MemberState): boolean => m.process !== undefined && m.process.exitCode === null && m.process.signalCode === null;

  const stopMember = async (m: MemberState): Promise<void> => {
    const child = m.process;
    if (!child || !isRunning(m)) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  const find = (myid: number): MemberState => {
    const m = states.find((s) => s.myid === myid);
    if (!m) throw new Error(`no member with myid ${myid}`);
    return m;
  };

  const mode = async (m: MemberState): Promise<string> => {
    const answer = await fourLetterWordAt(m.clientAddress, 'srvr');
    return /^Mode: (\S+)/m.exec(answer)?.[1] ?? '';
  };

  const waitForQuorum = async (myids?: number[], timeoutMs = options.timeoutMs ?? 60000): Promise<void> => {
    const members = myids ? myids.map(find) : states.filter(isRunning);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const modes = await Promise.all(members.map(mode));
      const serving = modes.every((x) => x === 'leader' || x === 'follower' || x === 'standalone');
      const leaders = modes.filter((x) => x === 'leader' || x === 'standalone').length;
      if (serving && leaders === 1) return;
      const dead = members.find((m) => m.process && !isRunning(m));
      if (dead) throw new Error(`zookeeper member ${dead.myid} exited:\n${dead.log.slice(-3000)}`);
      if (Date.now() > deadline) {
        throw new Error(`no quorum within ${timeoutMs} ms (modes ${JSON.stringify(modes)}):\n${members.map((m) => m.log.slice(-1500)).join('\n---\n')}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const stopAll = async (): Promise<void> => {
    await Promise.all(states.map(stopMember));
    rmSync(base, { recursive: true, force: true });
  };

  states.forEach(start);
  try {
    await waitForQuorum(states.map((s) => s.myid));
  } catch (e) {
    await stopAll();
    throw e;
  }

  const view = (m: MemberState): ZookeeperMember => ({
    myid: m.myid,
    clientAddress: m.clientAddress,
    dir: m.dir,
    get running() {
      return isRunning(m);
    },
    output: () => m.log,
  });

  return {
    members: states.map(view),
    connectString: states.map((s) => s.clientAddress).join(','),
    member: (myid) => view(find(myid)),
    stopMember: (myid) => stopMember(find(myid)),
    startMember: (myid) => {
      const m = find(myid);
      if (!isRunning(m)) start(m);
    },
    pauseMember: (myid) => find(myid).process?.kill('SIGSTOP'),
    resumeMember: (myid) => find(myid).process?.kill('SIGCONT'),
    memberServing: async (sessionIdHex) => {
      const sid = `sid=0x${sessionIdHex.replace(/^0+/, '')}`;
      for (const m of states.filter(isRunning)) {
        if ((await fourLetterWordAt(m.clientAddress, 'cons')).includes(sid)) return m.myid;
      }
      return undefined;
    },
    waitForQuorum,
    mode: (myid) => mode(find(myid)),
    stop: stopAll,
  };
}

/** Options for {@link startLocalCluster}. */
export interface LocalClusterOptions extends ZookeeperClusterOptions {
  /** ZooKeeper's tick. Default 500 ms, so sessions may be 1–10 s and tests stay quick. */
  readonly tickTimeMs?: number;
  /** First loopback address's last byte; members take consecutive ones. Default 11. */
  readonly firstAddress?: number;
}

/** Writes n configs on 127.0.0.x with free ports and starts them. */
export async function startLocalCluster(n = 3, options: LocalClusterOptions = {}): Promise<ZookeeperCluster> {
  const first = options.firstAddress ?? 11;
  const members = [];
  for (let i = 0; i < n; i++) {
    const host = `127.0.0.${first + i}`;
    members.push({ myid: i + 1, host, ports: await freePorts(host, 3) });
  }
  const tick = options.tickTimeMs ?? 500;
  const servers = n > 1 ? members.map((m) => `server.${m.myid}=${m.host}:${m.ports[1]}:${m.ports[2]}`) : [];
  return startZookeeperCluster(
    members.map((m) => ({
      myid: m.myid,
      zooCfg: [
        `tickTime=${tick}`,
        'initLimit=20',
        'syncLimit=10',
        `clientPortAddress=${m.host}`,
        `clientPort=${m.ports[0]}`,
        '4lw.commands.whitelist=srvr,mntr,ruok,cons,stat',
        'admin.enableServer=false',
        'preAllocSize=4096',
        'snapCount=100000',
        'maxClientCnxns=200',
        ...servers,
        '',
      ].join('\n'),
    })),
    options,
  );
}

/** A client address from zoo.cfg: `clientPortAddress`+`clientPort`, or the `;addr:port` part of this member's server line. */
function clientAddressOf(spec: ZookeeperMemberSpec): string {
  const prop = (key: string): string | undefined => new RegExp(`^\\s*${key.replace(/\./g, '\\.')}\\s*=\\s*(\\S+)`, 'm').exec(spec.zooCfg)?.[1];
  const port = prop('clientPort');
  const address = prop('clientPortAddress');
  if (port) return `${address ?? '127.0.0.1'}:${port}`;
  const serverLine = prop(`server.${spec.myid}`);
  const client = serverLine?.split(';')[1];
  if (client) return client.includes(':') ? client : `127.0.0.1:${client}`;
  throw new Error(`zoo.cfg of member ${spec.myid} names no clientPort`);
}

async function freePorts(host: string, count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
