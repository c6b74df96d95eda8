import { CreateMode, ZkConnectedEvent, ZkSession } from '../lib/agent/zk-session';
import { expireSession } from './support/agent-session-expiry';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

function nextEvent<T>(session: ZkSession, name: string, timeoutMs = 20000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${name}' within ${timeoutMs} ms`)), timeoutMs);
    session.once(name, (value: T) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

describe('ZkSession against a real 3-member ensemble', () => {
  let cluster: ZookeeperCluster;
  const sessions: ZkSession[] = [];
  beforeAll(async () => {
    cluster = await startLocalCluster(3);
  });
  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.close()));
    await cluster?.stop();
  });

  test('a forced expiry is followed by a new session at once; the process does not give up', async () => {
    const session = new ZkSession(cluster.connectString, { sessionTimeoutMs: 4000, spinDelayMs: 200 });
    sessions.push(session);
    const first = nextEvent<ZkConnectedEvent>(session, 'connected');
    await session.start();
    expect(await first).toEqual({ newSession: true, generation: 1 });
    await session.mkdirp('/t');
    const node = await session.create('/t/n_', Buffer.from('x'), CreateMode.EPHEMERAL_SEQUENTIAL);
    expect(await session.exists(node)).toBeDefined();

    const expired = nextEvent<void>(session, 'expired');
    await expireSession(cluster.connectString, session.sessionCredentials()!);
    await expired;
    // The client may reconnect to the moved session first; what counts is the next new session.
    expect(await nextEvent<ZkConnectedEvent>(session, 'connected')).toEqual({ newSession: true, generation: 2 });
    expect(await session.exists(node)).toBeUndefined();
    expect(session.expirations).toBe(1);
  });

  test('losing a member keeps the session; a session whose only member stays away past the timeout is replaced', async () => {
    const single = new ZkSession(cluster.members[0].clientAddress, { sessionTimeoutMs: 3000, spinDelayMs: 200 });
    const spread = new ZkSession(cluster.connectString, { sessionTimeoutMs: 6000, spinDelayMs: 200 });
    sessions.push(single, spread);
    expect(await single.start(20000)).toBe(true);
    expect(await spread.start(20000)).toBe(true);
    const spreadId = spread.sessionId;

    await cluster.stopMember(1);
    await cluster.waitForQuorum([2, 3]);
    // Past the single-member session's timeout: the remaining quorum expires it.
    await new Promise((r) => setTimeout(r, 4500));
    const replaced = nextEvent<ZkConnectedEvent>(single, 'connected', 30000);
    cluster.startMember(1);
    await cluster.waitForQuorum([1, 2, 3]);
    expect(await replaced).toEqual({ newSession: true, generation: 2 });
    expect(single.expirations).toBe(1);

    expect(spread.connected).toBe(true);
    expect(spread.sessionId).toBe(spreadId);
    expect(spread.generation).toBe(1);
  });

  test('a member that hangs without closing the connection is left for another within the session', async () => {
    const session = new ZkSession(`${cluster.member(1).clientAddress},${cluster.member(2).clientAddress}`, { sessionTimeoutMs: 6000, spinDelayMs: 200 });
    sessions.push(session);
    expect(await session.start(20000)).toBe(true);
    const id = session.sessionId;
    const serving = await cluster.memberServing(id);
    expect(serving === 1 || serving === 2).toBe(true);
    const frozenAt = Date.now();
    cluster.pauseMember(serving!);
    try {
      const event = await nextEvent<ZkConnectedEvent>(session, 'connected', 30000);
      expect(event.newSession).toBe(false);
      expect(session.sessionId).toBe(id);
      await session.exists('/');
      expect(Date.now() - frozenAt).toBeLessThan(25000);
    } finally {
      cluster.resumeMember(serving!);
    }
    await cluster.waitForQuorum([1, 2, 3]);
  });
});
