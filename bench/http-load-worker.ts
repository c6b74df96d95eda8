/**
 * The Node load client, used when wrk is not installed: `connections` keep-alive connections, each
 * sending GET requests back to back for `durationS` seconds. Prints a LoadResult as one JSON line.
 *
 *   http-load-worker.ts <url> <connections> <durationS>
 */
import { Agent, request } from 'http';
import { LoadResult } from './http-load';
import { percentile } from './stats';

async function main(): Promise<void> {
  const [url, connectionsArg, durationArg] = process.argv.slice(2);
  const connections = Number(connectionsArg);
  const durationS = Number(durationArg);
  if (!url || !(connections >= 1) || !(durationS > 0)) throw new Error('usage: http-load-worker.ts <url> <connections> <durationS>');
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latenciesUs: number[] = [];
  let failed = 0;
  const started = process.hrtime.bigint();
  const end = started + BigInt(Math.round(durationS * 1e9));

  const one = () => new Promise<void>((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = request(url, { agent, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 400) failed++;
        latenciesUs.push(Number(process.hrtime.bigint() - t0) / 1000);
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      failed++;
      resolve();
    });
    req.end();
  });

  await Promise.all(Array.from({ length: connections }, async () => {
    while (process.hrtime.bigint() < end) await one();
  }));
  agent.destroy();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const result: LoadResult = {
    client: 'node',
    connections,
    durationS: seconds,
    requests: latenciesUs.length,
    requestsPerSecond: latenciesUs.length / seconds,
    p50us: percentile(latenciesUs, 50),
    p90us: percentile(latenciesUs, 90),
    p99us: percentile(latenciesUs, 99),
    maxUs: latenciesUs.reduce((a, b) => Math.max(a, b), 0),
    failed,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
