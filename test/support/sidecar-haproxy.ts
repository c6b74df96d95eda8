import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

/**
 * Runs the real HAProxy on synthesized files, unedited. The files name the agent users (the admin
 * socket belongs to `synapse`). HAProxy runs in a private mount namespace whose /etc/passwd and
 * /etc/group define them at fixed ids, whether or not this machine has users of those names; the
 * machine's own files are never changed, so no user is left behind.
 */

const AGENT_USERS = [
  { name: 'nerve', id: 60901 },
  { name: 'synapse', id: 60902 },
];

export interface ToolRun {
  readonly status: number | null;
  readonly output: string;
}

function run(command: string, args: string[], input?: string): ToolRun {
  const result = spawnSync(command, args, { encoding: 'utf8', input, timeout: 60_000 });
  if (result.error) throw new Error(`${command} could not run (${result.error.message}): install the Debian package that provides it`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/**
 * The machine's passwd and group text with the agent users defined by us, at fixed ids: an entry
 * the machine already has under one of these names (a host with Airbnb's agents has a `synapse`
 * user) is replaced in the copy, so what the tests expect does not depend on the machine.
 */
export function withAgentAccounts(passwd: string, group: string): { passwd: string; group: string } {
  const names = new Set(AGENT_USERS.map((u) => u.name));
  const others = (text: string) => text.split('\n').filter((line) => line !== '' && !names.has(line.split(':')[0]));
  return {
    passwd: [...others(passwd), ...AGENT_USERS.map((u) => `${u.name}:x:${u.id}:${u.id}::/nonexistent:/usr/sbin/nologin`)].join('\n') + '\n',
    group: [...others(group), ...AGENT_USERS.map((u) => `${u.name}:x:${u.id}:`)].join('\n') + '\n',
  };
}

/** The agent users' ids inside the namespace, by name. */
export const AGENT_USER_IDS: Readonly<Record<string, number>> = Object.fromEntries(AGENT_USERS.map((u) => [u.name, u.id]));

/** A directory with the namespace's passwd and group files; /etc is never written. */
function accountsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'smartstack-haproxy-'));
  const files = withAgentAccounts(readFileSync('/etc/passwd', 'utf8'), readFileSync('/etc/group', 'utf8'));
  writeFileSync(join(dir, 'passwd'), files.passwd);
  writeFileSync(join(dir, 'group'), files.group);
  return dir;
}

function inNamespace(dir: string, script: string, isolateNetwork: boolean): ToolRun {
  const prelude = [
    'set -eu',
    `mount --bind ${dir}/passwd /etc/passwd`,
    `mount --bind ${dir}/group /etc/group`,
  ].join('\n');
  const result = run('unshare', ['--mount', ...(isolateNetwork ? ['--net'] : []), 'sh', '-s'], `${prelude}\n${script}\n`);
  if (/unshare: (unshare|cannot)/.test(result.output)) {
    throw new Error(`these checks run HAProxy in a private mount namespace and need root (unshare): ${result.output}`);
  }
  return result;
}

/** `haproxy -c -f` on the config text, as it would run on the host. */
export function haproxyCheck(config: string): ToolRun {
  const dir = accountsDir();
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  return inNamespace(dir, `exec haproxy -c -f ${dir}/haproxy.cfg 2>&1`, false);
}

export interface HaproxyLifecycle {
  readonly log: string;
  /** `show info` on the admin socket, as key/value pairs. */
  readonly info: Record<string, string>;
  /** `ls -ln` lines of the sockets. */
  readonly sockets: string[];
  /** Master CLI `show proc` before and after the reload. */
  readonly procBefore: string;
  readonly procAfter: string;
  readonly metrics: string;
  readonly stats: string;
  /** Status a request to each consumed local port gets (503: no server yet). */
  readonly localPortStatus: Record<string, number>;
  readonly masterPidBefore: string;
  readonly masterPidAfter: string;
}

/**
 * Starts HAProxy the way the host does: the document's own `install -d` commands, then the unit's
 * ExecStartPre and ExecStart (under the unit's LimitNOFILE), then its ExecReload, in private mount
 * and network namespaces with /run and /var/lib on tmpfs. Only the bootstrap file's location is
 * mapped (from /etc/smartstack to a temporary directory).
 */
export function runHaproxyUnit(opts: { unit: string; bootstrap: string; steps: string; localPorts: number[]; statsPort: number }): HaproxyLifecycle {
  const dir = accountsDir();
  writeFileSync(join(dir, 'haproxy-bootstrap.cfg'), opts.bootstrap);
  const directive = (key: string) =>
    opts.unit
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1).replace(/\/etc\/smartstack\//g, `${dir}/`));
  const [limit] = directive('LimitNOFILE');
  const hardLimit = run('sh', ['-c', 'ulimit -Hn']).output.trim();
  if (hardLimit !== 'unlimited' && Number(limit) > Number(hardLimit)) {
    throw new Error(`the unit's LimitNOFILE=${limit} is above this machine's descriptor limit (${hardLimit}), which cannot be raised here`);
  }
  const [execStart] = directive('ExecStart');
  // The folders the document's steps make (`run 'install' '-d' ...`), as shell lines.
  const installs = opts.steps.split('\n').filter((line) => line.startsWith("run 'install' '-d' ")).map((line) => line.slice('run '.length));
  const sh = (line: string) => `sh -c ${JSON.stringify(line)}`;
  writeFileSync(join(dir, 'probe.js'), PROBE);
  const node = process.execPath;
  const script = `
ip link set lo up
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
mkdir -p /run/smartstack-haproxy
${installs.join('\n')}
${directive('ExecStartPre').map(sh).join('\n')}
prlimit --nofile=${limit}:${limit} ${execStart} > ${dir}/haproxy.log 2>&1 &
i=0; while [ ! -S /run/smartstack-haproxy/admin.sock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.2
MAINPID=$(cat /run/smartstack-haproxy/haproxy.pid)
${node} ${dir}/probe.js before ${opts.statsPort} ${opts.localPorts.join(',')} > ${dir}/before.json
${directive('ExecReload').map(sh).join('\n')}
sleep 0.5
${node} ${dir}/probe.js after ${opts.statsPort} ${opts.localPorts.join(',')} > ${dir}/after.json
echo "$MAINPID" > ${dir}/mainpid
ls -ln /run/smartstack-haproxy/ > ${dir}/sockets
kill -TERM "$MAINPID"; wait || true
`;
  const result = inNamespace(dir, script, true);
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const log = (() => {
    try {
      return read('haproxy.log');
    } catch {
      return '';
    }
  })();
  if (result.status !== 0) throw new Error(`the HAProxy unit did not run cleanly (exit ${result.status}):\n${result.output}\n${log}`);
  const before = JSON.parse(read('before.json'));
  const after = JSON.parse(read('after.json'));
  return {
    log,
    info: before.info,
    sockets: read('sockets').split('\n').filter((l) => l.startsWith('s')),
    procBefore: before.proc,
    procAfter: after.proc,
    metrics: before.metrics,
    stats: before.stats,
    localPortStatus: before.localPortStatus,
    masterPidBefore: before.masterPid,
    masterPidAfter: after.masterPid,
  };
}

/** Runs inside the namespace: asks the admin and master sockets and the local ports. */
const PROBE = `
const net = require('net');
const http = require('http');
const fs = require('fs');
const ask = (path, command) => new Promise((resolve) => {
  let out = '';
  const s = net.connect(path, () => s.write(command + '\\n'));
  s.on('data', (d) => (out += d));
  s.on('end', () => resolve(out));
  s.on('error', (e) => resolve('error: ' + e.message));
  setTimeout(() => { s.destroy(); resolve(out); }, 3000);
});
const get = (port, path) => new Promise((resolve) => {
  http.get({ host: '127.0.0.1', port, path }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => resolve({ status: res.statusCode, body }));
  }).on('error', (e) => resolve({ status: 0, body: e.message }));
});
(async () => {
  const [, , , statsPort, localPorts] = process.argv;
  const info = Object.fromEntries((await ask('/run/smartstack-haproxy/admin.sock', 'show info')).split('\\n').filter((l) => l.includes(': ')).map((l) => l.split(': ')));
  const proc = await ask('/run/smartstack-haproxy/master.sock', 'show proc');
  const metrics = (await get(Number(statsPort), '/metrics')).body;
  const stats = (await get(Number(statsPort), '/stats;csv')).body;
  const localPortStatus = {};
  for (const p of localPorts.split(',').filter(Boolean)) localPortStatus[p] = (await get(Number(p), '/')).status;
  const masterPid = fs.readFileSync('/run/smartstack-haproxy/haproxy.pid', 'utf8').trim();
  process.stdout.write(JSON.stringify({ info, proc, metrics, stats, localPortStatus, masterPid }));
})();
`;
