import { connect } from 'net';

/** Sends a four-letter word to a ZooKeeper member and returns its answer ('' when it does not answer). */
export function fourLetterWord(host: string, port: number, word: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = connect({ host, port });
    const done = () => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, done);
    socket.on('connect', () => socket.write(word));
    socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
    socket.on('end', done);
    socket.on('error', done);
  });
}

/** The member's mode from `srvr`: leader, follower, standalone, or '' when it does not serve. */
export async function zookeeperMode(host: string, port: number): Promise<string> {
  return /^Mode: (\w+)/m.exec(await fourLetterWord(host, port, 'srvr'))?.[1] ?? '';
}
