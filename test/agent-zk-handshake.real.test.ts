/**
 * A member that accepts a connection and never answers the handshake (as a restarting ZooKeeper
 * sometimes does) must not hold the session until it expires: ZkSession drops such a connection
 * and the client tries again. Between the client and a real member sits a TCP relay that keeps
 * its first connection silent and relays every later one.
 */
import { createConnection, createServer, Server, Socket } from 'net';
import { Logger } from '../lib/agent/log';
import { ZkSession } from '../lib/agent/zk-session';
import { startLocalCluster, ZookeeperCluster } from './support/zookeeper-cluster';

describe('ZkSession and a handshake that goes unanswered', () => {
  let cluster: ZookeeperCluster;
  let relay: Server;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    cluster = await startLocalCluster(1, { firstAddress: 48 });
  });

  afterAll(async () => {
    sockets.forEach((s) => s.destroy());
    await new Promise((r) => (relay ? relay.close(r) : r(undefined)));
    await cluster?.stop();
  });

  test('the silent connection is dropped within a third of the session timeout and the next one connects', async () => {
    const [host, port] = cluster.connectString.split(':');
    let connections = 0;
    relay = createServer((client) => {
      sockets.push(client);
      connections += 1;
      if (connections === 1) return; // accepted, never answered
      const member = createConnection(Number(port), host);
      sockets.push(member);
      client.pipe(member).pipe(client);
      client.on('error', () => member.destroy());
      member.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.49', () => resolve()));
    const relayPort = (relay.address() as { port: number }).port;

    const lines: string[] = [];
    const session = new ZkSession(`127.0.0.49:${relayPort}`, { sessionTimeoutMs: 3000, spinDelayMs: 100, log: new Logger({}, 'info', (l) => lines.push(l)) });
    const started = Date.now();
    try {
      expect(await session.start(15000)).toBe(true);
      // A third of the session timeout, plus one watchdog tick and the reconnect.
      expect(Date.now() - started).toBeLessThan(4000);
      expect(connections).toBe(2);
      expect(lines.join('')).toContain('zookeeper member accepted the connection but did not answer the handshake; trying again');
      expect(await session.getChildren('/')).toContain('zookeeper');
    } finally {
      await session.close();
    }
  });
});
