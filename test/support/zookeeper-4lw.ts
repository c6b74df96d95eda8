import { fourLetterWord } from '../../lib/local/four-letter-word';

export { fourLetterWord };

/** The member's mode from `srvr`: leader, follower, standalone, or '' when it does not serve. */
export async function zookeeperMode(host: string, port: number): Promise<string> {
  return /^Mode: (\w+)/m.exec(await fourLetterWord(host, port, 'srvr'))?.[1] ?? '';
}
