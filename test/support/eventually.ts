import { get } from 'http';

/**
 * Polls `probe` until it gives a value other than undefined or false, at most `timeoutMs`. A probe
 * that rejects (a member moving, a socket not there yet) counts as "not yet"; the last rejection is
 * named when time runs out.
 */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    const value = await Promise.resolve()
      .then(probe)
      .catch((e: Error) => {
        last = e;
        return undefined;
      });
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** GETs a URL and resolves with the body. */
export function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
