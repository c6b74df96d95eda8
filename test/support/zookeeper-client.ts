import * as zookeeper from 'node-zookeeper-client';
import { zookeeperAuthData, ZookeeperCredentials } from '../../lib/schema/zookeeper-credentials';

/**
 * A raw client session for probing an ensemble in tests, authenticated as `identities` (none:
 * anonymous). Rejects, and closes the client, when no session comes within `timeoutMs`.
 */
export function connectZookeeper(
  connectString: string,
  options: Partial<zookeeper.Option> = {},
  identities: ZookeeperCredentials[] = [],
  timeoutMs = 20000,
): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString, options);
  for (const identity of identities) client.addAuthInfo(identity.scheme, zookeeperAuthData(identity));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.close();
      reject(new Error(`no ZooKeeper session with ${connectString} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.connect();
  });
}
