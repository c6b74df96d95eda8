import { isHostname, isIpv4, isIpv4Cidr } from '../model/address';
import { HaproxyValueKind, haproxyUnsafeReason } from './haproxy-safe';

/**
 * The named whitelists every construct property passes before it reaches a rendered file: zoo.cfg,
 * java.env, systemd units, nftables rules, haproxy.cfg, the nerve and synapse JSON, the apply
 * script, the `#cloud-config` YAML, or the synthesized Terraform JSON.
 *
 * Each kind says what the value becomes, so its whitelist is narrow enough for every file it lands
 * in: no newline can start a directive or a YAML key, no `%` is a systemd specifier, no `$` or `{`
 * a Terraform interpolation or a shell expansion, no `;` or `#` a second HAProxy command or a
 * comment. Values bound for haproxy.cfg also pass {@link haproxyUnsafeReason}, the agents' whitelist,
 * so both sides give one answer. Values are accepted or refused, never repaired.
 */

interface Whitelist {
  /** Matches the accepted values (after the checks every kind shares). */
  readonly test: RegExp | ((value: string) => boolean);
  /** What an accepted value looks like, for the error message. */
  readonly expected: string;
  /** Also passes the HAProxy whitelist as this kind. */
  readonly haproxy?: HaproxyValueKind;
  /** The empty string is a valid value. */
  readonly mayBeEmpty?: boolean;
  /** Line breaks are part of the value (a PEM key); other control characters are still refused. */
  readonly multiline?: boolean;
}

/** `/`-separated segments of the given characters, none of them '.' or '..': the path names what it seems to. */
function absolutePath(prefix: string, characters: string): RegExp {
  return new RegExp(`^${prefix}(?:/(?!\\.\\.?(?:/|$))[${characters}]+)+$`);
}
const DIRECTORY = absolutePath('', 'A-Za-z0-9._-');
const FILE_PATH = absolutePath('', 'A-Za-z0-9._@:+-');
const DEVICE_PATH = absolutePath('/dev', 'A-Za-z0-9._:+-');
const UNIX_USER = '[a-z_][a-z0-9_-]{0,31}';

const WHITELISTS = {
  /** A host name that is also a file name, a unit description and nerve's instance_id. */
  dnsLabel: { test: /^(?!-)[a-z0-9-]{1,63}(?<!-)$/, expected: 'a DNS label: lower-case letters, digits and inner hyphens, at most 63' },
  /** Where Terraform connects, or where HAProxy sends traffic. */
  address: {
    // All digits and dots is a bad address, not a name.
    test: (v) => isIpv4(v) || (isHostname(v) && !/^[0-9.]+$/.test(v)),
    expected: 'an IPv4 address or a host name of letters, digits, hyphens and dots',
  },
  ipv4: { test: isIpv4, expected: 'an IPv4 address' },
  ipv4Cidr: { test: isIpv4Cidr, expected: 'an IPv4 CIDR block such as 10.10.0.0/24' },
  /** An nftables source. */
  ipv4OrCidr: { test: (v) => isIpv4(v) || isIpv4Cidr(v), expected: 'an IPv4 address or CIDR block such as 10.10.0.0/24' },
  unixUser: { test: new RegExp(`^${UNIX_USER}$`), expected: 'a Unix user name: lower-case letters, digits, _ and -, starting with a letter or _, at most 32' },
  /** cloud-init `write_files` owner. */
  fileOwner: { test: new RegExp(`^${UNIX_USER}(?::${UNIX_USER})?$`), expected: 'user or user:group of Unix names' },
  /** cloud-init `write_files` permissions: an octal string. */
  filePermissions: { test: /^[0-7]{3,4}$/, expected: "an octal mode such as '0644'" },
  sshPublicKey: {
    test: /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}$/,
    expected: "one public key such as 'ssh-ed25519 AAAA...'",
  },
  /** A literal key written into the Terraform JSON: no `${` or `%{` can hide in base64. */
  pemPrivateKey: {
    test: /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=:, \r\n-]+\r?\n-----END [A-Z0-9 ]*PRIVATE KEY-----\r?\n?$/,
    expected: 'a PEM private key, or a Terraform expression such as a sensitive variable',
    multiline: true,
  },
  /** A data disk's name, which becomes its ext4 label (at most 16). */
  diskName: { test: /^[a-z0-9][a-z0-9-]{0,15}$/, expected: 'lower-case letters, digits and hyphens, at most 16 (it becomes the filesystem label)' },
  devicePath: { test: DEVICE_PATH, expected: "a device path under /dev/ of letters, digits and . _ : + -, without '.' or '..' segments" },
  /** A directory that is mounted, created and named in units and zoo.cfg. */
  directory: { test: DIRECTORY, expected: "an absolute path of letters, digits and . _ - segments, without '.' or '..' segments or a trailing /" },
  filePath: { test: FILE_PATH, expected: "an absolute path of letters, digits and . _ @ : + - segments, without '.' or '..' segments or a trailing /" },
  filesystemType: { test: /^(ext2|ext3|ext4|xfs|btrfs)$/, expected: 'one of ext2, ext3, ext4, xfs, btrfs' },
  /** One fstab mount option (they are joined with commas). */
  mountOption: { test: /^[A-Za-z0-9_.=:+-]+$/, expected: 'one mount option of letters, digits and _ . = : + -' },
  /** A systemd unit: its file goes to /etc/systemd/system and its name to systemctl. */
  unitName: {
    test: /^[A-Za-z0-9_:@][A-Za-z0-9_:.@-]{0,240}\.(service|socket|timer|target|path|mount)$/,
    expected: 'a unit file name such as my-app.service: letters, digits and _ : . @ -, not starting with - or .',
  },
  /** A package version as npm takes it. */
  packageVersion: { test: /^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$/, expected: 'a version such as 1.2.3 or 1.2.3-rc.1' },
  /** An npm registry's address, passed to `npm install --registry`. */
  registryUrl: { test: /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~\/-]*)?$/, expected: 'an http:// or https:// URL of letters, digits and . _ ~ / -' },
  /** Where a host fetches a file: it lands in a shell word of the apply. */
  fileUrl: {
    test: /^(?:https?:\/\/[A-Za-z0-9.-]+(?::[0-9]{1,5})?\/[A-Za-z0-9._~\/-]*[A-Za-z0-9._~-]|file:\/\/\/[A-Za-z0-9._~\/-]*[A-Za-z0-9._~-])$/,
    expected: 'an http://, https:// or file:/// URL of a file, of letters, digits and . _ ~ / -',
  },
  /** A Debian package, optionally pinned (`name=version`), as apt-get takes it. */
  packageName: { test: /^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?$/, expected: 'a Debian package name, optionally name=version' },
  /** Names HAProxy sections, ZooKeeper nodes, units' descriptions and JSON keys. */
  serviceName: {
    test: /^[a-z0-9][a-z0-9_.-]{0,62}$/,
    expected: 'lower-case letters, digits, _, . and -, starting with a letter or digit, at most 63 (it names HAProxy sections and ZooKeeper nodes)',
    haproxy: 'name',
  },
  /** An HAProxy server name. */
  serverName: { test: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, expected: 'letters, digits, _, . and -, at most 64', haproxy: 'name' },
  zkPath: {
    test: (v) => /^(\/[A-Za-z0-9_.-]+)+$/.test(v) && !v.split('/').some((p) => p === '.' || p === '..'),
    expected: 'an absolute ZooKeeper path of letters, digits, _, . and -, without a trailing /',
  },
  /** The health-check path: haproxy.cfg `option httpchk GET <path>` and nerve's `uri`. */
  httpPath: {
    test: /^\/[A-Za-z0-9._~/?&=:@+,-]{0,255}$/,
    expected: 'a path starting with / of letters, digits and ._~/?&=:@+,- (no spaces, quotes, # or ;), at most 256',
    haproxy: 'line',
  },
  /** The expected body word: haproxy.cfg `http-check expect string <word>` and nerve's `expect`. */
  checkWord: { test: /^[A-Za-z0-9._:/@+=-]{1,64}$/, expected: 'one word of letters, digits and ._:/@+=- (no spaces), at most 64', haproxy: 'line' },
  labelKey: { test: /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/, expected: 'a label key of letters, digits and _./-, at most 63' },
  labelValue: { test: /^[A-Za-z0-9 _.:/@+=,-]{0,256}$/, expected: 'a label value of letters, digits, spaces and _.:/@+=,-, at most 256', mayBeEmpty: true },
  /** One JVM flag in java.env's `JVM_FLAGS="..."`, which the unit expands unquoted. */
  jvmFlag: { test: /^-[A-Za-z0-9:+=._/,-]+$/, expected: 'one JVM flag starting with -, without spaces, quotes or shell characters' },
  /** A pinned package version, part of an install command run as root. */
  version: { test: /^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/, expected: 'an exact version such as 1.2.3' },
  /** A one-line description: a shell comment, a unit description, an nftables comment. */
  text: { test: (v) => v.length <= 256, expected: 'one line of at most 256 characters' },
  /** A construct path that names the construct in units and Terraform outputs. */
  constructPath: {
    test: /^[A-Za-z0-9 _.:/-]{1,256}$/,
    expected: 'construct ids of letters, digits, spaces and _ . : - (the path names the construct in systemd units and Terraform outputs)',
  },
} satisfies Record<string, Whitelist>;

/** What a value is used as; each kind is one whitelist. */
export type ConfigValueKind = keyof typeof WHITELISTS;

// C0 and C1 controls, DEL, and the characters YAML 1.1 or JavaScript treat as line breaks or BOM.
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;
const CONTROL_BUT_LINE_BREAKS = /[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;

/**
 * Returns why `value` may not be used as a `kind`, or undefined when it may. The checks every
 * kind shares come first, so a newline, `;` or secret marker gets the same answer everywhere.
 */
export function configUnsafeReason(value: unknown, kind: ConfigValueKind): string | undefined {
  const list: Whitelist = WHITELISTS[kind];
  if (typeof value !== 'string') return `must be a string, got ${value === null ? 'null' : typeof value}`;
  if (value.length === 0) return list.mayBeEmpty ? undefined : 'must not be empty';
  const control = (list.multiline ? CONTROL_BUT_LINE_BREAKS : CONTROL).exec(value);
  if (control) {
    const code = control[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `contains control character U+${code} (newline, tab, NUL, ...), which would start a new line or directive`;
  }
  // ApplyTimeSecrets marks a secret as @@secret:<name>@@ in rendered text; Terraform puts the value there.
  if (value.includes('@@')) return "contains '@@', which marks an apply-time secret in rendered files";
  // The kind's own rule first, so the message states the rule this value is held to; HAProxy's
  // (looser) whitelist is a second guard for what goes into haproxy.cfg.
  const ok = typeof list.test === 'function' ? list.test(value) : list.test.test(value);
  if (!ok) return `expected ${list.expected}`;
  if (list.haproxy !== undefined) {
    const reason = haproxyUnsafeReason(value, list.haproxy);
    if (reason !== undefined) return `${reason} (it goes into haproxy.cfg)`;
  }
  return undefined;
}

/** How a construct reports a bad value: its own `fail`, which makes a ValidationError naming it. */
export type Fail = (field: string, value: unknown, reason: string) => Error;

/** Returns `value` when it is a TCP port (an integer 1-65535); otherwise throws `fail(field, value, reason)`. */
export function tcpPort(fail: Fail, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) throw fail(field, value, 'expected a TCP port 1-65535');
  return value;
}

/** Returns `value` when it is safe as a `kind`; otherwise throws `fail(field, value, reason)`. */
export function configSafe(fail: Fail, field: string, value: unknown, kind: ConfigValueKind): string {
  const reason = configUnsafeReason(value, kind);
  if (reason !== undefined) throw fail(field, value, reason);
  return value as string;
}
