import { existsSync, readFileSync } from 'fs';
import { Server } from 'http';
import { join } from 'path';
import { isLogLevel, Logger, LogLevel } from '../agent/log';
import { Metrics } from '../agent/metrics';
import { Nerve } from '../agent/nerve';
import { registryStatus, renderStatus } from '../agent/registry-status';
import { Synapse } from '../agent/synapse';
import { ZkSessionOptions } from '../agent/zk-session';
import { ConfigError } from '../schema/config-error';
import { ConfigReader } from '../schema/config-reader';
import { loadNerveConfig } from '../agent/nerve-config-loader';
import { loadSynapseConfig } from '../agent/synapse-config-loader';
import { readZookeeperCredentials } from '../schema/zookeeper-credentials';
import { REHEARSAL_LOAD_DEFAULTS } from '../model/rehearsal-load';
import { closestName, CommandSpec, OptionSpec, parseCommandLine, ParsedCommand, renderCommandHelp, renderMainHelp, UsageError } from './command-line';

/** Exit codes: 0 done, 1 failed while running, 2 bad usage or config. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const LOG_LEVEL: OptionSpec = { name: 'log-level', value: 'LEVEL', description: 'debug, info, warn or error', defaultText: 'info' };
const ZK_SESSION_TIMEOUT: OptionSpec = {
  name: 'zk-session-timeout',
  value: 'MS',
  description: 'the ZooKeeper session timeout to ask for, in milliseconds (at least 1000);\nthe ensemble bounds it to 2-20 ticks',
  defaultText: "the file's zk_session_timeout, else 32000 for nerve and 36000 for synapse, as upstream",
};

const NERVE: CommandSpec = {
  name: 'nerve',
  summary: 'health-check the services this host provides and register them in ZooKeeper',
  description:
    'Reads nerve.conf.json (the upstream nerve format), checks each service and keeps an ephemeral\n' +
    'registration under its zk_path while the service is healthy. SIGTERM or SIGINT deletes the\n' +
    'registrations and exits 0. Logs JSON lines to stdout.',
  positionals: [],
  options: [
    { name: 'config', short: 'c', value: 'FILE', description: 'nerve.conf.json to read', env: 'NERVE_CONFIG' },
    LOG_LEVEL,
    ZK_SESSION_TIMEOUT,
  ],
  notes: 'example: smartstack nerve -c /etc/smartstack/nerve.conf.json',
};

const SYNAPSE: CommandSpec = {
  name: 'synapse',
  summary: 'watch ZooKeeper and keep the local HAProxy pointed at healthy instances',
  description:
    'Reads synapse.conf.json (the upstream synapse format), watches each discovery path and changes\n' +
    "HAProxy's servers through its admin socket, reloading only when a backend needs it. SIGTERM or\n" +
    'SIGINT exits 0 and leaves HAProxy on its current servers. Logs JSON lines to stdout.',
  positionals: [],
  options: [
    { name: 'config', short: 'c', value: 'FILE', description: 'synapse.conf.json to read', env: 'SYNAPSE_CONFIG' },
    LOG_LEVEL,
    ZK_SESSION_TIMEOUT,
  ],
  notes: 'example: smartstack synapse -c /etc/smartstack/synapse.conf.json',
};

const STATUS: CommandSpec = {
  name: 'status',
  summary: 'print what ZooKeeper says is registered',
  description: 'Lists every service under the base path and its registered instances. Exits 1 when ZooKeeper\ncannot be read.',
  positionals: [],
  options: [
    { name: 'zk', value: 'HOSTS', description: 'the ensemble, host:port[,host:port...] (required)' },
    { name: 'path', value: 'PATH', description: 'the base path the services are registered under', defaultText: '/services' },
    {
      name: 'auth-file',
      value: 'FILE',
      description:
        'read ZooKeeper as the digest identity in FILE, needed where ACLs protect the registry;\n' +
        'FILE is JSON {"scheme":"digest","user":"reader","password":"..."} of mode 0600',
    },
    { name: 'json', description: 'print JSON instead of a table' },
    ZK_SESSION_TIMEOUT,
  ],
  notes: 'example: smartstack status --zk 10.10.0.11:2181,10.10.0.12:2181,10.10.0.13:2181',
};

const LOCAL: CommandSpec = {
  name: 'local',
  summary: "run a synthesized stack on this machine's loopback addresses",
  description:
    'Reads what `cdktf synth` wrote, gives each host a loopback address of its own (127.77.0.x), and\n' +
    "starts the ZooKeeper members, each sidecar's HAProxy, nerve and synapse, and a backend for each\n" +
    'provided service. Shows hosts, endpoints and registrations until stopped: Ctrl-C, SIGTERM or\n' +
    'SIGHUP stop everything it started and remove the files it created. Needs java (Debian package\n' +
    'zookeeper) and haproxy.',
  positionals: [{ name: 'OUTDIR', description: 'the folder `cdktf synth` wrote', defaultText: 'cdktf.out' }],
  options: [
    { name: 'stack', value: 'NAME', description: 'the stack to run', defaultText: 'the only stack in OUTDIR' },
    {
      name: 'backend-command',
      value: 'CMD',
      description:
        'run CMD (through sh -c) for each provided service instead of the built-in backend;\n' +
        'it runs in the folder smartstack was started in and must listen on {address}:{port}',
      defaultText: "a built-in backend that answers the service's own health check\nand names its instance",
    },
    {
      name: 'loopback-prefix',
      value: '127.N',
      description: 'the first two octets of the hosts\' loopback addresses (two meshes at once need two)',
      defaultText: '127.77',
    },
    {
      name: 'workdir',
      value: 'DIR',
      description: "where the hosts' files and the logs go (kept after the run)",
      defaultText: 'a new temporary folder, removed when the mesh stops',
    },
  ],
  notes: [
    'placeholders in --backend-command:',
    "  {address}   the providing host's loopback address, e.g. 127.77.0.4",
    "  {port}      the service's port (SmartStackService port), e.g. 8080",
    '  {service}   the service name, e.g. user-service',
    '  {instance}  the providing host, e.g. app1',
    '',
    "example: smartstack local cdktf.out --backend-command './my-server --listen {address}:{port}'",
  ].join('\n'),
};

const GRAPH: CommandSpec = {
  name: 'graph',
  summary: 'draw a synthesized mesh: hosts, the ensemble, services, who provides and who consumes',
  description:
    'Reads what `cdktf synth` wrote and prints the topology: the ZooKeeper members as the ensemble, every\n' +
    'other host, each service, an edge from each host that provides it (with its port) and from each\n' +
    'host that consumes it (with its local port). Mermaid renders on GitHub in a ```mermaid block; SVG\n' +
    "needs Graphviz's dot (Debian package graphviz).",
  positionals: [{ name: 'OUTDIR', description: 'the folder `cdktf synth` wrote', defaultText: 'cdktf.out' }],
  options: [
    { name: 'stack', value: 'NAME', description: 'the stack to draw', defaultText: 'the only stack in OUTDIR' },
    { name: 'format', value: 'FORMAT', description: 'mermaid, dot (Graphviz source) or svg (through dot)', defaultText: 'mermaid' },
    { name: 'out', short: 'o', value: 'FILE', description: 'write to FILE', defaultText: 'standard output' },
  ],
  notes: 'example: smartstack graph cdktf.out --format svg -o mesh.svg',
};

// Listed here for the help and the suggestions; its own options are read by lib/cli/rehearse.ts.
const REHEARSE: CommandSpec = {
  name: 'rehearse',
  summary: 'apply a synthesized stack to real Debian hosts on this machine, then a change under load',
  description:
    'Boots a real Debian 12 host on this machine for every VdsNode of a synthesized stack (systemd\n' +
    'containers on a bridge of their own in 198.18.0.0/15; each host\'s private address mapped onto the\n' +
    "fleet's /24, keeping the host part where it can, and the networks the stack opens ports to onto\n" +
    "that /24; its disks by their /dev/disk/by-id/ names), applies the stack with terraform over SSH\n" +
    'exactly as synthesized but for the addresses and the SSH host keys, starts a stand-in for every\n' +
    'provided service that answers its health check, and shows the live status: hosts and roles, the\n' +
    "ZooKeeper members' modes, the registered instances, what each consumer's HAProxy serves. No traffic\n" +
    "ever goes to the stack's own addresses: an address the rehearsal cannot map stops it before\n" +
    'anything boots, naming the address and where it is.\n' +
    '\n' +
    'With --then, a second synthesis of the same stack is applied onto the running fleet while a bounded\n' +
    "load goes through every consumer's local port of each service, and the rehearsal reports per\n" +
    'service the requests, the failed ones and the seconds until every provider was back in service\n' +
    '(on every consumer, and stayed so for --stable-seconds), the server slots, and the fewest\n' +
    'ZooKeeper members up meanwhile. New hosts of the second synthesis are booted before its apply;\n' +
    'hosts it no longer has are powered off after it, as deleting their VMs would.\n' +
    'Then it destroys the fleet and exits (0 when the apply succeeded and every provider is back).\n' +
    'Without --then it runs until Ctrl-C. Ctrl-C or SIGTERM destroys the fleet at any point.',
  positionals: [{ name: 'OUTDIR', description: 'the folder `cdktf synth` wrote', defaultText: 'cdktf.out' }],
  options: [
    { name: 'stack', value: 'NAME', description: 'the stack in OUTDIR', defaultText: 'the only one' },
    { name: 'then', value: 'DIR', description: 'a second cdktf.out to apply under load' },
    { name: 'then-stack', value: 'NAME', description: 'its stack', defaultText: '--stack, else the only one' },
    { name: 'load-requests', value: 'N', description: 'at most N requests per consumer and service', defaultText: String(REHEARSAL_LOAD_DEFAULTS.loadRequests) },
    { name: 'load-seconds', value: 'S', description: 'and for at most S seconds', defaultText: String(REHEARSAL_LOAD_DEFAULTS.loadSeconds) },
    { name: 'settle-seconds', value: 'S', description: 'time the providers have after the apply to be back', defaultText: String(REHEARSAL_LOAD_DEFAULTS.settleSeconds) },
    { name: 'stable-seconds', value: 'S', description: 'how long all must then stay in service to count as back', defaultText: String(REHEARSAL_LOAD_DEFAULTS.stableSeconds) },
    { name: 'report', value: 'FILE', description: 'also write the report as JSON' },
    { name: 'workdir', value: 'DIR', description: "the fleet's directory", defaultText: 'a new one under /var/tmp; removed at the end' },
  ],
  notes:
    "Variables: ssh_private_key is the fleet's own key; every other variable is read from TF_VAR_<name>\n" +
    'in the environment, and a sensitive one without a value (such as <ensemble>_secret) gets a random\n' +
    'value for the run.\n' +
    '\n' +
    'Needs: root, systemd-nspawn (Debian package systemd-container), debootstrap, ssh, and terraform >= 1.4\n' +
    'on the PATH. The first run builds the Debian image (a few minutes; cached in\n' +
    '/var/cache/cdktf-smartstack/fleet).',
};

const IMPORT: CommandSpec = {
  name: 'import',
  summary: "turn hand-written nerve and synapse files into a program using the constructs",
  description:
    "Reads Airbnb's nerve and synapse files (JSON or YAML, service_conf_dir included) and prints a\n" +
    'TypeScript program whose synthesis is the same mesh: the ZooKeeper hosts as an ensemble, a\n' +
    'SmartStackService per registration path (its port, check and path, and the local port synapse\n' +
    'listens on), and each host with what it provides and consumes. What has no construct equivalent\n' +
    'is a comment at the top naming the file and key, never dropped silently; so are ports moved\n' +
    "because a service uses one of the agents' own (metrics 3213 and 3214, HAProxy's stats 3212).\n" +
    '\n' +
    'Each PATH is a file or a folder. Files given directly are one host (named by nerve\'s instance_id);\n' +
    'a folder holding the files is one host named after it; a folder of such folders is one host per\n' +
    "folder. A host's address is the host its nerve registers; give the others with --address.\n" +
    'Refused input (an unreadable file, a file of neither agent, a key that cannot be imported) is named\n' +
    'with its file and key, exits 2 and writes nothing.',
  positionals: [{ name: 'PATH', description: 'nerve and synapse files, or folders of them', variadic: true }],
  options: [
    { name: 'address', value: 'NAME=IP[,...]', description: "addresses of hosts whose files do not give one, and of ZooKeeper hosts given by name" },
    { name: 'out', short: 'o', value: 'FILE', description: 'write the program to FILE', defaultText: 'standard output' },
    { name: 'library', value: 'MODULE', description: 'the module the program imports the constructs from', defaultText: 'cdktf-smartstack' },
    { name: 'stack', value: 'NAME', description: "the stack's name", defaultText: 'imported' },
  ],
  notes: 'example: smartstack import estate/ --address web1=10.0.0.21,zk1.example.com=10.0.0.11 -o main.ts',
};

const COMMANDS: readonly CommandSpec[] = [NERVE, SYNAPSE, STATUS, LOCAL, GRAPH, REHEARSE, IMPORT];
/** The tools' commands, by their modules in this folder. */
const TOOL_MODULES: Record<string, string> = { local: 'local-command', graph: 'graph-command', rehearse: 'rehearse', import: 'import-command' };

/** Runs the command line; resolves with the exit code (the agents resolve on SIGTERM/SIGINT). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [first, ...rest] = argv;
  // The tools' commands are loaded only when asked for: the agents' package on a host does not hold them.
  const missing = TOOL_MODULES[first ?? ''] !== undefined && !existsSync(join(__dirname, `${TOOL_MODULES[first!]}.js`));
  if (missing) {
    process.stderr.write(`smartstack ${first}: not on this host: the agents' package holds nerve, synapse and status; run 'smartstack ${first}' where the stack is synthesized\n`);
    return EXIT_USAGE;
  }
  if (first === undefined) {
    process.stderr.write(renderMainHelp(COMMANDS));
    return EXIT_USAGE;
  }
  if (first === '--help' || first === '-h') {
    process.stdout.write(renderMainHelp(COMMANDS));
    return EXIT_OK;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(`${packageVersion()}\n`);
    return EXIT_OK;
  }
  let command: CommandSpec | undefined;
  try {
    if (first === 'help') return help(rest);
    command = COMMANDS.find((c) => c.name === first);
    if (!command) throw unknownCommand(first);
    const parsed = parseCommandLine(command, rest, env);
    if (parsed.help) {
      process.stdout.write(renderCommandHelp(command));
      return EXIT_OK;
    }
    switch (command.name) {
      case 'nerve':
        return await runNerve(parsed);
      case 'synapse':
        return await runSynapse(parsed);
      case 'status':
        return await runStatus(parsed);
      case 'rehearse': {
        const { runRehearse } = await import('./rehearse');
        return await runRehearse(parsed);
      }
      case 'graph': {
        const { runGraph } = await import('./graph-command');
        return runGraph(parsed);
      }
      case 'import': {
        const { runImport } = await import('./import-command');
        return runImport(parsed);
      }
      default: {
        const { runLocal } = await import('./local-command');
        return await runLocal(parsed);
      }
    }
  } catch (e) {
    const name = command ? ` ${command.name}` : '';
    if (e instanceof ConfigError) {
      process.stderr.write(`smartstack${name}: invalid config: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      const about = e.command ?? command?.name;
      const helpCommand = about ? `smartstack ${about} --help` : 'smartstack --help';
      process.stderr.write(`smartstack${name}: ${e.message}\n(${helpCommand} shows the usage)\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`smartstack${name}: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT_FAILURE;
  }
}

function help(words: string[]): number {
  const command = words.length === 0 ? undefined : COMMANDS.find((c) => c.name === words[0]);
  if (words.length > 0 && !command) throw unknownCommand(words[0]);
  process.stdout.write(command ? renderCommandHelp(command) : renderMainHelp(COMMANDS));
  return EXIT_OK;
}

function unknownCommand(word: string): UsageError {
  const what = word.startsWith('-') ? `unknown option '${word}' (a command's options follow its name)` : `unknown command '${word}'`;
  const suggestion = closestName(word.replace(/^-+/, ''), [...COMMANDS.map((c) => c.name), 'help']);
  const names = COMMANDS.map((c) => c.name).join(', ');
  return new UsageError(`${what}; ${suggestion ? `did you mean '${suggestion}'?` : `the commands are ${names}`}`);
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

async function runNerve(args: ParsedCommand): Promise<number> {
  // Every option is checked before the config file is read.
  const log = logger(args, 'nerve');
  const zk = zkOptions(args);
  const config = loadNerveConfig(requireOption(args, 'config', 'NERVE_CONFIG'));
  const metrics = new Metrics();
  const nerve = new Nerve(config, { log, metrics, zk });
  const server = config.metricsPort !== undefined ? await metrics.serve(config.metricsPort) : undefined;
  // Listening before anything starts: a SIGTERM right after start is a clean stop, not a kill.
  const stopSignal = untilSignal();
  log.info('nerve starting', { instance_id: config.instanceId, services: config.services.map((s) => s.name), metrics_port: config.metricsPort });
  nerve.start();
  const signal = await stopSignal;
  log.info('nerve stopping: deleting registrations', { signal });
  await withDeadline(nerve.stop(), 5000);
  await closeServer(server);
  log.info('nerve stopped');
  return EXIT_OK;
}

async function runSynapse(args: ParsedCommand): Promise<number> {
  // Every option is checked before the config file is read.
  const log = logger(args, 'synapse');
  const zk = zkOptions(args);
  const config = loadSynapseConfig(requireOption(args, 'config', 'SYNAPSE_CONFIG'));
  const metrics = new Metrics();
  const synapse = new Synapse(config, { log, metrics, zk });
  const server = config.metricsPort !== undefined ? await metrics.serve(config.metricsPort) : undefined;
  // Listening before anything starts: a SIGTERM right after start is a clean stop, not a kill.
  const stopSignal = untilSignal();
  log.info('synapse starting', { services: config.services.map((s) => s.name), metrics_port: config.metricsPort });
  await synapse.start();
  const signal = await stopSignal;
  // HAProxy keeps its servers: stopping synapse must not change the traffic path.
  log.info('synapse stopping; haproxy keeps its current servers', { signal });
  await withDeadline(synapse.stop(), 5000);
  await closeServer(server);
  return EXIT_OK;
}

async function runStatus(args: ParsedCommand): Promise<number> {
  const r = new ConfigReader('smartstack status');
  const zk = requireOption(args, 'zk');
  const hosts = optionValue(() => zk.split(',').map((h) => r.hostPort('--zk', h)));
  const base = args.values.path === undefined ? '/services' : optionValue(() => r.zkPath('--path', String(args.values.path)));
  const authFile = args.values['auth-file'] as string | undefined;
  const credentials = authFile === undefined ? undefined : readZookeeperCredentials(authFile);
  const status = await registryStatus(hosts.join(','), base, zkOptions(args), undefined, credentials);
  process.stdout.write(args.values.json === true ? JSON.stringify(status, null, 2) + '\n' : renderStatus(status));
  return status.reachable && status.error === undefined ? EXIT_OK : EXIT_FAILURE;
}

/** A value checked by the config reader: its refusal is bad usage, naming the option. */
function optionValue<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(`${e.key} ${e.value}: ${e.reason}`);
    throw e;
  }
}

function requireOption(args: ParsedCommand, name: string, env?: string): string {
  const value = args.values[name];
  if (typeof value !== 'string') throw new UsageError(`--${name} is required${env ? ` (or the environment variable ${env})` : ''}`);
  return value;
}

function logger(args: ParsedCommand, agent: string): Logger {
  const level = String(args.values['log-level'] ?? 'info');
  if (!isLogLevel(level)) throw new UsageError(`--log-level ${level}: must be debug, info, warn or error`);
  return new Logger({ agent }, level as LogLevel);
}

function zkOptions(args: ParsedCommand): Omit<ZkSessionOptions, 'log'> {
  const raw = args.values['zk-session-timeout'];
  if (typeof raw !== 'string') return {};
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
