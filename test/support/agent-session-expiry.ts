/**
 * Ends someone else's ZooKeeper session the way the ensemble would on expiry: a second client
 * attaches to the session (same id and password), which moves it away from the first client, and
 * closes it. The first client then learns on reconnect that its session is gone.
 */
import * as zookeeper from 'node-zookeeper-client';

export async function expireSession(connectString: string, session: { id: Buffer; password: Buffer }, timeoutMs = 15000): Promise<void> {
  // The client accepts a session to resume; its typings do not list these options.
  const options = { sessionTimeout: 4000, sessionId: session.id, sessionPassword: session.password } as unknown as zookeeper.Option;
  const client = zookeeper.createClient(connectString, options);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('could not attach to the session to expire it')), timeoutMs);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.once('expired', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 3000);
    client.once('disconnected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.close();
  });
}
