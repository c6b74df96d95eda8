/**
 * Every string property of the constructs that reaches a rendered file, as a target for the
 * injection property tests: how to put a value there, a value that is accepted, the characters
 * near-valid values are made of, and the field the error must name. Plus the arbitraries and the
 * structure a rendering must keep whatever value got in.
 */
import * as fc from 'fast-check';
import { parse } from 'yaml';
import { AgentRuntime } from '../../lib';
import { buildWorld, World, WorldInput } from './injection-world';

export interface InjectionTarget {
  /** The construct kind the error starts with. */
  readonly kind: 'VdsNode' | 'ZookeeperEnsemble' | 'SmartStackService' | 'HaproxySidecar' | 'AgentRuntime.node' | 'CloudConfig';
  /** The field the error names. */
  readonly field: string;
  /** An accepted value, for the baseline rendering. */
  readonly sample: string;
  /** Characters near-valid values are built from (mostly the accepted ones, a few not). */
  readonly alphabet: string;
  readonly input: (value: string) => WorldInput;
  /** The value reaches haproxy.cfg. */
  readonly haproxy?: boolean;
  /** How the error shows the value, when not as given. */
  readonly shown?: (value: string) => string;
  /** The value is a file's literal content: it must arrive unchanged rather than keep a structure. */
  readonly literal?: boolean;
  /** Values of the form the whitelist accepts, where the alphabet seldom hits one (addresses, keys). */
  readonly valid?: fc.Arbitrary<string>;
  /** The value chooses which packages the document installs (a filesystem's type, its mkfs tools). */
  readonly choosesPackages?: boolean;
}

const PEM = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
const disks = (data: string) => [
  { name: data, device: '/dev/disk/by-id/virtio-data' },
  { name: 'zk-txlog', device: '/dev/disk/by-id/virtio-txlog' },
];
const HOSTILE = ' ;#$%{}"\'\\\n`';
const cidr = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, bits]) => `${a}/${bits}`);
const base64 = fc.base64String({ minLength: 4, maxLength: 60 });
const version = fc.stringMatching(/^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}([-+][0-9A-Za-z.-]{1,8})?$/);
const segments = (chars: RegExp) => fc.array(fc.stringMatching(chars), { minLength: 1, maxLength: 4 }).map((parts) => '/' + parts.join('/'));

export const TARGETS: InjectionTarget[] = [
  { kind: 'VdsNode', field: 'hostname', sample: 'app1', alphabet: 'az09-A_.' + HOSTILE, input: (v) => ({ host: { hostname: v } }) },
  { kind: 'VdsNode', field: 'privateAddress', sample: '10.10.0.11', alphabet: '01259.:/ ', input: (v) => ({ host: { privateAddress: v } }), valid: fc.ipV4() },
  {
    kind: 'VdsNode', field: 'privateNetwork', sample: '10.10.0.0/24', alphabet: '0124./ ',
    input: (v) => ({ host: { privateAddress: '10.10.0.11', privateNetwork: v } }),
    valid: fc.integer({ min: 0, max: 32 }).map((bits) => `${bits === 0 ? '0.0.0.0' : '10.10.0.11'}/${bits}`),
  },
  { kind: 'VdsNode', field: 'sshAddress', sample: 'app1.example.com', alphabet: 'az09.-A_:' + HOSTILE, input: (v) => ({ host: { sshAddress: v } }) },
  { kind: 'VdsNode', field: 'sshUser', sample: 'deploy', alphabet: 'az09_-A.' + HOSTILE, input: (v) => ({ host: { sshUser: v } }) },
  {
    kind: 'VdsNode', field: 'sshHostKey', sample: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5', alphabet: 'sh-ed25519 AZaz09+/=' + HOSTILE,
    input: (v) => ({ host: { sshHostKey: v } }), valid: base64.map((key) => `ssh-ed25519 ${key}`),
  },
  {
    kind: 'VdsNode', field: 'sshPrivateKey', sample: PEM, alphabet: 'AZaz09+/=-\n ' + HOSTILE, input: (v) => ({ host: { sshPrivateKey: v } }),
    shown: () => '(hidden)', valid: base64.map((body) => `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n-----END OPENSSH PRIVATE KEY-----\n`),
  },
  {
    kind: 'VdsNode', field: 'disks[0].name', sample: 'zk-data', alphabet: 'az09-onyes_A' + HOSTILE,
    input: (v) => ({ host: { disks: disks(v) }, ensemble: { dataDisk: v } }),
  },
  {
    kind: 'VdsNode', field: 'disks[0].device', sample: '/dev/disk/by-id/virtio-data', alphabet: '/devaz09._:+-' + HOSTILE,
    input: (v) => ({ host: { disks: [{ name: 'zk-data', device: v }, { name: 'zk-txlog', device: '/dev/disk/by-id/virtio-txlog' }] } }),
    valid: segments(/^[A-Za-z0-9._:+-]{1,12}$/).filter((p) => !/\/\.\.?(\/|$)/.test(p)).map((p) => `/dev${p}`),
  },
  {
    kind: 'VdsNode', field: 'readinessChecks[1].description', sample: 'the app answers', alphabet: 'az09 .:-#\u00e9' + HOSTILE,
    // After the member's own check. nerve's goes before it, but only once the sidecar writes its part
    // (at synth): a check is named by how many were added before it.
    input: (v) => ({ extra: (host) => host.addReadinessCheck({ description: v, script: 'true' }) }),
  },
  // Ids get a prefix: an empty id, or one of another construct, is the constructs library's error.
  {
    kind: 'ZookeeperEnsemble', field: 'node.path', sample: '', alphabet: 'az09 _.:-/' + HOSTILE, input: (v) => ({ ensembleId: `zk${v}` }),
    shown: (v) => `fuzz/zk${v.split('/').join('--')}`,
  },
  {
    kind: 'ZookeeperEnsemble', field: 'jvmFlags[0]', sample: '-XX:+UseNUMA', alphabet: '-XXaz09:+=._/,' + HOSTILE, input: (v) => ({ ensemble: { jvmFlags: [v] } }),
    valid: fc.stringMatching(/^-[A-Za-z0-9:+=._/,-]{1,30}$/),
  },
  { kind: 'ZookeeperEnsemble', field: 'clientNetworks[0]', sample: '10.20.0.0/16', alphabet: '0126./ ', input: (v) => ({ ensemble: { clientNetworks: [v] } }), valid: cidr },
  {
    kind: 'ZookeeperEnsemble', field: 'dataDir', sample: '/var/lib/zookeeper', alphabet: '/az09._-' + HOSTILE, input: (v) => ({ ensemble: { dataDir: v } }),
    valid: segments(/^[a-z0-9._-]{1,12}$/),
  },
  {
    kind: 'ZookeeperEnsemble', field: 'dataLogDir', sample: '/var/lib/zookeeper-txlog', alphabet: '/az09._-' + HOSTILE, input: (v) => ({ ensemble: { dataLogDir: v } }),
    valid: segments(/^[a-z0-9._-]{1,12}$/),
  },
  {
    kind: 'ZookeeperEnsemble', field: 'fourLetterWords', sample: 'mntr', alphabet: 'mntrsv', input: (v) => ({ ensemble: { fourLetterWords: ['srvr', 'ruok', 'conf', v] } }),
    valid: fc.constantFrom('conf', 'cons', 'crst', 'dirs', 'dump', 'envi', 'gtmk', 'isro', 'mntr', 'srst', 'stat', 'stmk', 'wchc', 'wchp', 'wchs'),
  },
  { kind: 'SmartStackService', field: 'serviceName', sample: 'user-service', alphabet: 'az09_.-A:' + HOSTILE, input: (v) => ({ service: { serviceName: v } }), haproxy: true },
  {
    kind: 'SmartStackService', field: 'discoveryPath', sample: '/services/user-service', alphabet: '/az09_.-:' + HOSTILE, input: (v) => ({ service: { discoveryPath: v } }),
    valid: segments(/^[A-Za-z0-9_.-]{1,12}$/),
  },
  { kind: 'SmartStackService', field: 'healthCheck.path', sample: '/health', alphabet: '/az09._~?&=:@+,-' + HOSTILE, input: (v) => ({ check: { path: v } }), haproxy: true },
  { kind: 'SmartStackService', field: 'healthCheck.expectBody', sample: 'ok', alphabet: 'az09._:/@+=-' + HOSTILE, input: (v) => ({ check: { expectBody: v } }), haproxy: true },
  {
    kind: 'SmartStackService', field: 'clientNetworks[0]', sample: '10.30.0.0/16', alphabet: '0136./ ', input: (v) => ({ service: { clientNetworks: [v] } }), valid: cidr,
  },
  { kind: 'SmartStackService', field: 'labels', sample: 'az', alphabet: 'az09_./-' + HOSTILE, input: (v) => ({ service: { labels: { [v]: 'x' } } }) },
  { kind: 'SmartStackService', field: 'labels.az', sample: 'oslo-1', alphabet: 'az09 _.:/@+=,-' + HOSTILE, input: (v) => ({ service: { labels: { az: v } } }) },
  {
    kind: 'SmartStackService', field: 'defaultServers[0].name', sample: 'fallback', alphabet: 'az09_.-A' + HOSTILE,
    input: (v) => ({ service: { defaultServers: [{ name: v, host: '10.10.0.99', port: 8080 }] } }), haproxy: true,
  },
  {
    kind: 'SmartStackService', field: 'defaultServers[0].host', sample: 'legacy.example.com', alphabet: 'az09.-:' + HOSTILE,
    input: (v) => ({ service: { defaultServers: [{ name: 'fallback', host: v, port: 8080 }] } }), haproxy: true, valid: fc.oneof(fc.ipV4(), fc.domain()),
  },
  {
    kind: 'SmartStackService', field: 'retryOn[0]', sample: '503', alphabet: 'con-failure503', input: (v) => ({ service: { retryOn: [v] } }), haproxy: true,
    valid: fc.constantFrom('conn-failure', 'empty-response', 'junk-response', 'response-timeout', '0rtt-rejected', 'all-retryable-errors', '401', '403', '404', '408', '425', '500', '501', '502', '503', '504'),
  },
  {
    // Another version than this package's comes from the user's registry.
    kind: 'AgentRuntime.node', field: 'version', sample: '1.2.3', alphabet: '0129.-+a' + HOSTILE,
    input: (v) => ({ runtime: () => AgentRuntime.node({ version: v, npmRegistry: 'https://npm.example.org/' }) }),
    valid: version,
  },
  {
    kind: 'HaproxySidecar', field: 'runtime.synapseVersion', sample: '0.18.9', alphabet: '0189.-+a' + HOSTILE,
    input: (v) => ({ ensemble: { acls: false }, runtime: () => AgentRuntime.ruby({ synapseVersion: v }) }),
    valid: version,
  },
  {
    kind: 'CloudConfig', field: 'file.path', sample: '/etc/app/app.conf', alphabet: '/az09._@:+-' + HOSTILE, input: (v) => ({ extra: (_h, cc) => cc.addFile({ path: v, content: 'x\n' }) }),
    valid: segments(/^[A-Za-z0-9._@:+-]{1,12}$/).filter((p) => !/\/\.\.?(\/|$)/.test(p) && !p.startsWith('/etc/smartstack')),
  },
  { kind: 'CloudConfig', field: 'file.owner', sample: 'root:adm', alphabet: 'az09_-:' + HOSTILE, input: (v) => ({ extra: (_h, cc) => cc.addFile({ path: '/etc/app.conf', content: 'x\n', owner: v }) }) },
  {
    kind: 'CloudConfig', field: 'file.permissions', sample: '0640', alphabet: '01678', input: (v) => ({ extra: (_h, cc) => cc.addFile({ path: '/etc/app.conf', content: 'x\n', permissions: v }) }),
    valid: fc.stringMatching(/^[0-7]{3,4}$/),
  },
  // Content is literal: anything goes, and must arrive unchanged.
  {
    kind: 'CloudConfig', field: 'file.content', sample: 'key: value\n', alphabet: 'az09 :-#|>\n\t"\'\\${}%', literal: true,
    input: (v) => ({ extra: (_h, cc) => cc.addFile({ path: '/etc/app.conf', content: v }) }),
  },
  {
    kind: 'CloudConfig', field: 'package', sample: 'jq', alphabet: 'az09+.-=~:' + HOSTILE, input: (v) => ({ extra: (_h, cc) => cc.addPackage(v) }),
    valid: fc.stringMatching(/^[a-z0-9][a-z0-9+.-]{0,15}(=[A-Za-z0-9.+~:-]{1,10})?$/),
  },
  ...(['device', 'label', 'mountPoint', 'filesystem', 'mountOptions[0]'] as const).map((key): InjectionTarget => {
    const fs = { device: '/dev/disk/by-id/virtio-logs', label: 'logs', mountPoint: '/var/log/app', filesystem: 'xfs', mountOptions: ['noatime'] };
    const sample = key === 'mountOptions[0]' ? 'noatime' : fs[key];
    return {
      kind: 'CloudConfig', field: `filesystem.${key}`, sample, alphabet: '/az09._:+=-' + HOSTILE,
      valid: {
        device: segments(/^[A-Za-z0-9._:+-]{1,12}$/).filter((p) => !/\/\.\.?(\/|$)/.test(p)).map((p) => `/dev${p}`),
        label: undefined,
        mountPoint: segments(/^[a-z0-9._-]{1,12}$/).filter((p) => !/\/\.\.?(\/|$)/.test(p)),
        filesystem: fc.constantFrom('ext2', 'ext3', 'ext4', 'xfs', 'btrfs'),
        'mountOptions[0]': undefined,
      }[key],
      input: (v) => ({ extra: (_h, cc) => cc.addFilesystem(key === 'mountOptions[0]' ? { ...fs, mountOptions: [v] } : { ...fs, [key]: v }) }),
      choosesPackages: key === 'filesystem',
    };
  }),
  {
    kind: 'CloudConfig', field: 'unit.name', sample: 'my-app.service', alphabet: 'az09_:.@-/' + HOSTILE,
    input: (v) => ({ extra: (_h, cc) => cc.addUnit({ name: v, content: '[Service]\nExecStart=/bin/true\n' }) }),
    valid: fc.tuple(fc.stringMatching(/^[A-Za-z0-9_:@][A-Za-z0-9_:.@-]{0,20}$/), fc.constantFrom('service', 'socket', 'timer', 'target', 'path', 'mount')).map(([n, t]) => `${n}.${t}`),
  },
  {
    kind: 'CloudConfig', field: 'firewallRule.description', sample: 'app port', alphabet: 'az09 ,._:/-"' + HOSTILE,
    input: (v) => ({ extra: (_h, cc) => cc.addFirewallRule({ description: v, ports: [9000], sources: ['10.20.0.0/16'] }) }),
  },
  {
    kind: 'CloudConfig', field: 'firewallRule.sources[0]', sample: '10.20.0.0/16', alphabet: '0126./ ,}',
    input: (v) => ({ extra: (_h, cc) => cc.addFirewallRule({ description: 'app port', ports: [9000], sources: [v] }) }),
    valid: fc.oneof(fc.ipV4(), cidr),
  },
];

/** Pieces of the attacks that matter somewhere: line breaks, separators, quotes, interpolations, YAML. */
const FRAGMENTS = [
  '\n', '\r\n', '\r', '\t', '\0', '\u0085', '\u2028', '\ufeff', ';', '#', '"', "'", '`', '\\', '${', '%{', '$(', '}', '%n', '@@secret:x@@',
  ' ', ': ', '- ', '? ', '|', '>', '&', '*', '!', '[', ']', '{', ',', '=', '<<', '~', '..', '/', '//', '/./', '-', '_', '.',
  'on', 'yes', 'null', '0644', '1:20', 'ExecStart=/bin/sh', '\nserver evil 10.6.6.6:80', '\nbogus: key', 'COMMANDS', 'é', '😀', 'A', 'z', '0', '9',
];
/** Values YAML 1.1 (cloud-init's reader) resolves to something other than a string. */
export const YAML_SCALARS = [
  'on', 'Off', 'YES', 'no', 'y', 'n', 'true', 'False', 'null', 'NULL', '~', '0644', '0_7', '0b1_0', '-0x1f', '+12', '1_000', '1:20', '-190:20:30',
  '1:20.5', '1.', '+.5', '1.5e+3', '.inf', '-.Inf', '.NaN', '2001-01-01', '2001-1-1 1:02:03', '2001-12-14t21:59:43.10-05:00', '=', '<<', '!', '&', '*',
];

/**
 * What the fuzzed values are made of: full Unicode, attack fragments, and near-valid values built
 * from the target's alphabet and sample. `near` leaves out the first two, so that more values are
 * accepted (for the checks that only look at accepted values).
 */
export function valuesFor(target: InjectionTarget, near = false): fc.Arbitrary<string> {
  const alphabet = [...target.alphabet];
  const fragment = fc.constantFrom(...FRAGMENTS);
  const nearValid = [
    fc.string({ unit: fc.constantFrom(...alphabet), minLength: 1, maxLength: 40 }),
    fc.tuple(fc.nat(target.sample.length), fragment).map(([at, f]) => target.sample.slice(0, at) + f + target.sample.slice(at)),
    fc.tuple(fc.string({ unit: fc.constantFrom(...alphabet), maxLength: 12 }), fc.constantFrom(...YAML_SCALARS)).map(([a, b]) => a + b),
    fc.constantFrom(target.sample, ...YAML_SCALARS),
  ];
  if (target.valid) nearValid.push(target.valid, target.valid);
  if (near) return fc.oneof(...nearValid);
  return fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.array(fragment, { maxLength: 8 }).map((parts) => parts.join('')), ...nearValid);
}

/** Runs the construction; returns the world, or the ValidationError's message. */
export function attempt(target: InjectionTarget, value: string): { world?: World; error?: Error } {
  try {
    return { world: buildWorld(target.input(value)) };
  } catch (e) {
    return { error: e as Error };
  }
}

/** True when the error is a validation error of the target's construct that names its field and the value. */
export function namesField(target: InjectionTarget, error: Error, value: string): boolean {
  const shown = JSON.stringify(target.shown ? target.shown(value) : value);
  return error.name === 'ValidationError' && error.message.startsWith(target.kind)
    && error.message.includes(`: ${target.field} = `)
    && error.message.includes(shown.length > 200 ? shown.slice(0, 200) : shown);
}

/**
 * The structure of everything a world renders, with the values left out: the YAML document's shape,
 * each written file's lines reduced to their directive (or its JSON shape), the apply script's
 * lines, and the Terraform JSON's shape and number of interpolations. A value may change what a line
 * says, never how many lines, directives, keys or interpolations there are.
 */
export function structure(world: World, target: InjectionTarget, value: string): Record<string, unknown> {
  const doc = parse(world.userData) as { write_files?: Array<{ path: string; content: string }>; packages?: string[] };
  if (target.choosesPackages) delete doc.packages;
  const files = (doc.write_files ?? [])
    .filter((f) => !(target.literal && f.content === value))
    .map((f) => JSON.stringify(/\.json$/.test(f.path) ? shape(JSON.parse(f.content)) : directives(f.content)))
    .sort();
  const tf = JSON.parse(world.terraformJson);
  const scripts = provisionedScripts(tf).map((s) => collapse(directives(s)));
  return {
    document: shape(doc),
    files,
    applyScript: directives(world.applyScript),
    terraform: shape(tf),
    scripts,
    interpolations: interpolations(world.terraformJson),
  };
}

/** Each line's first word, up to a space or `=`: `server`, `ExecStart`, `dataDir`, `#`. */
export function directives(text: string): string[] {
  return text.split('\n').map((line) => /^\s*(#|[^\s=]*)/.exec(line)![1]);
}

/**
 * Arrays by their elements (in any order: files sort by path), objects by number of keys, leaves by
 * type: what a JSON or YAML value is made of.
 */
export function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => JSON.stringify(shape(v))).sort();
  if (value !== null && typeof value === 'object') return Object.values(value).map(shape);
  return typeof value;
}

/**
 * The forms of the interpolations and directives Terraform would evaluate in the synthesized JSON,
 * each string's distinct ones (the ACL script repeats a digest per level of the discovery path),
 * sorted. The escapes of literal text — `${"$"}{` and `%%{` — are not among them.
 */
export function interpolations(json: string): string[] {
  const found: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') found.push(...new Set(expressionsIn(value)));
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(JSON.parse(json));
  return found.sort();
}

function expressionsIn(text: string): string[] {
  const plain = text.replace(/\$\{"\$+"\}/g, '').replace(/%%\{/g, '');
  const out: string[] = [];
  const start = /[$%]\{/g;
  for (let m = start.exec(plain); m; m = start.exec(plain)) {
    let depth = 0;
    let end = m.index + 1;
    for (; end < plain.length; end++) {
      if (plain[end] === '{') depth++;
      else if (plain[end] === '}' && --depth === 0) break;
    }
    // The expression's form: string literals and variable names stand for themselves, not their text.
    out.push(plain.slice(m.index, end + 1).replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/var\.[\w-]+/g, 'var.…'));
    start.lastIndex = end + 1;
  }
  return out;
}

/** Scripts staged by provisioners other than the host's document and apply script (the ACL bootstrap). */
function provisionedScripts(tf: { resource?: { null_resource?: Record<string, { provisioner?: Array<{ file?: { content?: string; destination?: string } }> }> } }): string[] {
  const out: string[] = [];
  for (const r of Object.values(tf.resource?.null_resource ?? {})) {
    for (const p of r.provisioner ?? []) {
      if (p.file?.content && p.file.destination && !/\/(user-data|apply\.sh)$/.test(p.file.destination)) out.push(p.file.content);
    }
  }
  return out;
}

/** Repeated directives in a row count once: the ACL script has a line per level of the discovery path. */
function collapse(lines: string[]): string[] {
  return lines.filter((l, i) => i === 0 || l !== lines[i - 1]);
}
