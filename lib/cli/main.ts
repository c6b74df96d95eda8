import { Server } from 'http';
import { isLogLevel, Logger, LogLevel } from '../agent/log';
import { Metrics } from '../agent/metrics';
import { Nerve } from '../agent/nerve';
import { registryStatus, renderStatus } from '../agent/registry-status';
import { Synapse } from '../agent/synapse';
import { ZkSessionOptions } from '../agent/zk-session';
import { ConfigError } from '../schema/config-error';
import { ConfigReader } from '../schema/config-reader';
import { loadNerveConfig } from '../schema/nerve-config-loader';
import { loadSynapseConfig } from '../schema/synapse-config-loader';
import { readZookeeperCredentials } from '../schema/zookeeper-credentials';

/** Exit codes: 0 done, 1 failed while running, 2 bad usage or config. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const USAGE = `usage:
  smartstack nerve --config nerve.conf.json [options]
  smartstack synapse --config synapse.conf.json [options]
  smartstack status --zk host:port[,host:port...] [--path /services] [--auth-file FILE] [--json]
  smartstack local [cdktf.out] [--stack NAME] [--backend-command CMD] [--workdir DIR]
  smartstack rehearse [cdktf.out] [--stack NAME] [--then SECOND_CDKTF_OUT]   (see smartstack rehearse --help)

options:
  --log-level debug|info|warn|error   default info
  --zk-session-timeout <ms>           requested ZooKeeper session timeout, default 10000
  --auth-file FILE                    status: read ZooKeeper as the digest identity in FILE, needed
                                      where ACLs protect the registry; FILE is JSON
                                      {"scheme":"digest","user":"reader","password":"..."} of mode 0600
`;

/** Parsed `--name value` flags and bare words. */
interface Args {
  readonly words: string[];
  readonly flags: { [name: string]: string };
}

class UsageError extends Error {}

/** Runs the command line; resolves with the exit code (the agents resolve on SIGTERM/SIGINT). */
export async function main(argv: string[]): Promise<number> {
  // Its own options (util.parseArgs), and only loaded when asked for: the agents never need the fleet code.
  if (argv[0] === 'rehearse') return (await import('./rehearse')).runRehearse(argv.slice(1));
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`smartstack: ${(e as Error).message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const command = args.words[0];
  try {
    switch (command) {
      case 'nerve':
        return await runNerve(args);
      case 'synapse':
        return await runSynapse(args);
      case 'status':
        return await runStatus(args);
      case 'local': {
        // Loaded on demand: the agents on a host never need the local-mesh code.
        const { runLocal } = await import('./local-command');
        return await runLocal(args.words, args.flags);
      }
      case undefined:
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? EXIT_USAGE : EXIT_OK;
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`smartstack ${command}: invalid config: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`smartstack: ${e.message}\n${USAGE}`);
      return EXIT_USAGE;
    }
    process.stderr.write(`smartstack ${command}: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT_FAILURE;
  }
}

async function runNerve(args: Args): Promise<number> {
  const config = loadNerveConfig(requireFlag(args, 'config'));
  const log = logger(args, 'nerve');
  const metrics = new Metrics();
  const nerve = new Nerve(config, { log, metrics, zk: zkOptions(args) });
  const server = config.metricsPort !== undefined ? await metrics.serve(config.metricsPort) : undefined;
  log.info('nerve starting', { instance_id: config.instanceId, services: config.services.map((s) => s.name), metrics_port: config.metricsPort });
  nerve.start();
  const signal = await untilSignal();
  log.info('nerve stopping: deleting registrations', { signal });
  await withDeadline(nerve.stop(), 5000);
  await closeServer(server);
  log.info('nerve stopped');
  return EXIT_OK;
}

async function runSynapse(args: Args): Promise<number> {
  const config = loadSynapseConfig(requireFlag(args, 'config'));
  const log = logger(args, 'synapse');
  const metrics = new Metrics();
  const synapse = new Synapse(config, { log, metrics, zk: zkOptions(args) });
  const server = config.metricsPort !== undefined ? await metrics.serve(config.metricsPort) : undefined;
  log.info('synapse starting', { services: config.services.map((s) => s.name), metrics_port: config.metricsPort });
  await synapse.start();
  const signal = await untilSignal();
  // HAProxy keeps its servers: stopping synapse must not change the traffic path.
  log.info('synapse stopping; haproxy keeps its current servers', { signal });
  await withDeadline(synapse.stop(), 5000);
  await closeServer(server);
  return EXIT_OK;
}

async function runStatus(args: Args): Promise<number> {
  const r = new ConfigReader('--zk');
  const hosts = requireFlag(args, 'zk').split(',').map((h, i) => r.hostPort(`--zk[${i}]`, h));
  const base = args.flags.path === undefined ? '/services' : r.zkPath('--path', args.flags.path);
  const authFile = args.flags['auth-file'];
  const credentials = authFile === undefined ? undefined : readZookeeperCredentials(authFile);
  const status = await registryStatus(hosts.join(','), base, zkOptions(args), undefined, credentials);
  process.stdout.write(args.flags.json !== undefined ? JSON.stringify(status, null, 2) + '\n' : renderStatus(status));
  return status.reachable && status.error === undefined ? EXIT_OK : EXIT_FAILURE;
}

function parseArgs(argv: string[]): Args {
  const words: string[] = [];
  const flags: { [name: string]: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      words.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (name === 'json') {
      flags.json = 'true';
    } else if (eq >= 0) {
      flags[name] = a.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      flags[name] = argv[++i];
    }
  }
  return { words, flags };
}

function requireFlag(args: Args, name: string): string {
  const value = args.flags[name];
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function logger(args: Args, agent: string): Logger {
  const level = args.flags['log-level'] ?? 'info';
  if (!isLogLevel(level)) throw new UsageError(`--log-level ${level}: must be debug, info, warn or error`);
  return new Logger({ agent }, level as LogLevel);
}

function zkOptions(args: Args): Omit<ZkSessionOptions, 'log'> {
  const raw = args.flags['zk-session-timeout'];
  if (raw === undefined) return {};
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1000) throw new UsageError(`--zk-session-timeout ${raw}: must be milliseconds, at least 1000`);
  return { sessionTimeoutMs: Number(raw) };
}

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

async function withDeadline(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

function closeServer(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

/** Runs the command line and exits with its code: the entry point of `bin/smartstack`. */
export function runAndExit(argv: string[]): void {
  void main(argv).then((code) => {
    // The agents hold sockets and timers; once they have stopped there is nothing left to wait for.
    process.exit(code);
  });
}

if (require.main === module) runAndExit(process.argv.slice(2));
