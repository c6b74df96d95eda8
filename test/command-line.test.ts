import { spawnSync } from 'child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

// Runs the built command, as a user would (npm test builds before jest runs).
const bin = join(__dirname, '..', 'bin', 'smartstack');
const dir = mkdtempSync(join(tmpdir(), 'smartstack-cli-'));

function smartstack(args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean = { ...process.env };
  delete clean.NERVE_CONFIG;
  delete clean.SYNAPSE_CONFIG;
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30000, env: { ...clean, ...env }, cwd: dir });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const SUBCOMMANDS: Record<string, string[]> = {
  nerve: ['--config FILE', '-c', '--log-level LEVEL', '--zk-session-timeout MS'],
  synapse: ['--config FILE', '-c', '--log-level LEVEL', '--zk-session-timeout MS'],
  status: ['--zk HOSTS', '--path PATH', '--auth-file FILE', '--json', '--zk-session-timeout MS'],
  local: ['OUTDIR', '--stack NAME', '--backend-command CMD', '--loopback-prefix 127.N', '--workdir DIR'],
  graph: ['OUTDIR', '--stack NAME', '--format FORMAT', '-o, --out FILE'],
};

describe('smartstack --help', () => {
  test.each([['--help'], ['-h'], ['help']])('smartstack %s lists every command and exits 0', (flag) => {
    const r = smartstack([flag]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^usage: smartstack COMMAND/);
    for (const name of Object.keys(SUBCOMMANDS)) expect(r.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
  });

  test('smartstack alone prints the usage on stderr and exits 2', () => {
    const r = smartstack([]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^usage: smartstack COMMAND/);
  });

  const cases = Object.entries(SUBCOMMANDS).flatMap(([name, options]) => ['--help', '-h'].map((flag) => [name, flag, options] as const));
  test.each(cases)('smartstack %s %s shows its usage and every option, and exits 0', (name, flag, options) => {
    const r = smartstack([name, flag]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^usage: smartstack ${name} `));
    for (const option of options) expect(r.stdout).toContain(option);
    expect(r.stdout).toContain('-h, --help');
  });

  test('smartstack help local is the same text as smartstack local --help', () => {
    expect(smartstack(['help', 'local']).stdout).toBe(smartstack(['local', '--help']).stdout);
  });

  test("local's help documents the backend command's placeholders, the folder it runs in, and the defaults", () => {
    const help = smartstack(['local', '--help']).stdout;
    for (const placeholder of ['{address}', '{port}', '{service}', '{instance}']) expect(help).toMatch(new RegExp(`^  \\${placeholder.slice(0, -1)}\\} +\\S`, 'm'));
    expect(help).toContain('it runs in the folder smartstack was started in');
    expect(help).toContain('(default: cdktf.out)');
    expect(help).toContain('(default: the only stack in OUTDIR)');
    expect(help).toContain('(default: a new temporary folder, removed when the mesh stops)');
  });

  test("the agents' help names the environment variable read when --config is not given", () => {
    expect(smartstack(['nerve', '-h']).stdout).toContain('(when not given: $NERVE_CONFIG)');
    expect(smartstack(['synapse', '-h']).stdout).toContain('(when not given: $SYNAPSE_CONFIG)');
  });
});

describe('smartstack refuses what it does not know, with the closest name', () => {
  test.each([
    [['local', '--backend-comand', 'x'], "smartstack local: unknown option '--backend-comand'; did you mean '--backend-command'?"],
    [['status', '--zk', 'a:1', '--jsno'], "smartstack status: unknown option '--jsno'; did you mean '--json'?"],
    [['nerve', '--conifg', 'x.json'], "smartstack nerve: unknown option '--conifg'; did you mean '--config'?"],
    [['stauts'], "smartstack: unknown command 'stauts'; did you mean 'status'?"],
    [['locla'], "smartstack: unknown command 'locla'; did you mean 'local'?"],
    [['frobnicate'], "smartstack: unknown command 'frobnicate'; the commands are nerve, synapse, status, local, graph, rehearse, import"],
    [['help', 'synaps'], "smartstack: unknown command 'synaps'; did you mean 'synapse'?"],
    [['local', 'cdktf.out', 'extra'], "smartstack local: unexpected argument 'extra': smartstack local takes at most OUTDIR"],
  ])('smartstack %j', (args, message) => {
    const r = smartstack(args);
    expect(r.stderr.split('\n')[0]).toBe(message);
    expect(r.stderr).toContain('--help shows the usage');
    expect(r.status).toBe(2);
  });
});

describe('smartstack validates values, naming the flag', () => {
  const out = join(dir, 'cdktf.out');
  mkdirSync(join(out, 'stacks', 'oslo'), { recursive: true });
  mkdirSync(join(out, 'stacks', 'bergen'), { recursive: true });
  writeFileSync(join(dir, 'a-file'), '');

  test.each([
    [['status', '--zk'], 'smartstack status: --zk needs a value (HOSTS)'],
    [['status', '--zk', '--json'], 'smartstack status: --zk needs a value (HOSTS)'],
    [['status', '--zk', 'a:1', '--json=yes'], "smartstack status: --json takes no value (given 'yes')"],
    [['status', '--zk', 'a:1', '--zk', 'b:1'], 'smartstack status: --zk is given twice'],
    [['status', '--zk', 'a:1', '--zk-session-timeout', '12x'], 'smartstack status: --zk-session-timeout 12x: must be milliseconds, at least 1000'],
    [['status', '--zk', 'a:1', '--path', 'services'], 'smartstack status: --path services: must be an absolute ZooKeeper path like /services/user-service (letters, digits, _ . : -)'],
    [['status', '--zk', '10.0.0.1:2181,nohost'], expect.stringMatching(/^smartstack status: --zk nohost: /)],
    [['status'], 'smartstack status: --zk is required'],
    [['nerve', '-c', 'x.json', '--log-level', 'loud'], 'smartstack nerve: --log-level loud: must be debug, info, warn or error'],
    [['nerve'], 'smartstack nerve: --config is required (or the environment variable NERVE_CONFIG)'],
    [['synapse'], 'smartstack synapse: --config is required (or the environment variable SYNAPSE_CONFIG)'],
    [['local', 'nowhere'], 'smartstack local: OUTDIR nowhere: no such folder; run cdktf synth first, or name the folder it wrote'],
    [['local', out, '--stack', 'olso'], `smartstack local: --stack olso: no such stack; did you mean 'oslo'? the stacks in ${out} are bergen, oslo`],
    [['local', out, '--stack', 'oslo', '--backend-command', 'srv --port {prot}'], 'smartstack local: --backend-command: unknown placeholder {prot}; did you mean {port}? (the placeholders are {address}, {port}, {service}, {instance})'],
    [['local', out, '--stack', 'oslo', '--workdir', join(dir, 'a-file')], `smartstack local: --workdir ${join(dir, 'a-file')}: exists and is not a folder`],
    [['local', out, '--stack', 'oslo', '--loopback-prefix', '10.0'], 'smartstack local: --loopback-prefix 10.0: expected 127.N with N from 0 to 255, such as 127.77'],
    [['local', out], `smartstack local: ${out} holds 2 stacks (bergen, oslo): choose one with --stack`],
    [['graph', out, '--stack', 'olso'], `smartstack graph: --stack olso: no such stack; did you mean 'oslo'? the stacks in ${out} are bergen, oslo`],
    [['graph', 'nowhere'], 'smartstack graph: OUTDIR nowhere: no such folder; run cdktf synth first, or name the folder it wrote'],
  ])('smartstack %j', (args, message) => {
    const r = smartstack(args);
    expect(r.stderr.split('\n')[0]).toEqual(message);
    expect(r.status).toBe(2);
  });
});

describe('the agents find their config as the upstream ones do: -c, --config, or the environment', () => {
  // An invalid file: the agent exits 2 naming the file it read, before it connects anywhere.
  const file = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, '{"services": 1}');
    return path;
  };

  test.each([
    ['nerve', ['-c'], {}],
    ['nerve', ['--config'], {}],
    ['nerve', [], { name: 'NERVE_CONFIG' }],
    ['synapse', ['-c'], {}],
    ['synapse', ['--config'], {}],
    ['synapse', [], { name: 'SYNAPSE_CONFIG' }],
  ] as Array<[string, string[], { name?: string }]>)('smartstack %s %j (environment %j)', (agent, flag, env) => {
    const path = file(`${agent}-${flag.join('') || 'env'}.json`);
    const r = smartstack([agent, ...(flag.length ? [...flag, path] : [])], env.name ? { [env.name]: path } : {});
    expect(r.stderr).toMatch(new RegExp(`^smartstack ${agent}: invalid config: ${path}: `));
    expect(r.status).toBe(2);
  });

  test('the flag wins over the environment variable', () => {
    const flagged = file('nerve-flagged.json');
    const r = smartstack(['nerve', '-c', flagged], { NERVE_CONFIG: join(dir, 'missing.json') });
    expect(r.stderr).toMatch(new RegExp(`^smartstack nerve: invalid config: ${flagged}: `));
  });
});
