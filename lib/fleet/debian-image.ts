import { createHash } from 'crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'fs';
import { join } from 'path';
import { runChecked } from './bounded-command';
import { isAlive, processRef, ProcessRef, sleep } from './owned-process';
import { signalProcessGroup } from '../agent/process-group';

/** Packages the roles' hosts get in the image, so an apply finds them installed and needs no archive. */
export const FLEET_IMAGE_PACKAGES: readonly string[] = [
  'cloud-init', // the apply script feeds it the document
  'zookeeper', // the ensemble members' jar and java
  'haproxy',
  'socat', // the HAProxy unit's reload dumps the server state with it
  'nftables',
  'nodejs', // the agents
  'sudo', // for a non-root SSH user
  'python3',
  'e2fsprogs', // mkfs.ext4 for the data disks
  'util-linux', // lsblk, blkid, mount
  'mount',
  'procps',
  'iproute2',
  'ca-certificates',
  'curl', // tests send requests through a sidecar's local port with it
  'linux-image-cloud-amd64', // the kernel and initrd a VM host boots (containers ignore it)
  'locales', // cloud-init's locale module at a first boot from user data, as on a cloud image
];

/** Bumped when the way the image is made changes, so older cached images are not reused. */
const RECIPE_VERSION = 2;
const BASE_INCLUDE = ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'iproute2'];
export const DEFAULT_IMAGE_CACHE = '/var/cache/cdktf-smartstack/fleet';

export interface DebianImageOptions {
  /** @default 'bookworm' (Debian 12) */
  readonly suite?: string;
  /** @default FLEET_IMAGE_PACKAGES */
  readonly packages?: readonly string[];
  /** Where images are kept, one directory per package list and suite. @default DEFAULT_IMAGE_CACHE */
  readonly cacheDir?: string;
  /** Debian archive URL. @default the one this machine's apt uses, else Debian's CDN */
  readonly mirror?: string;
  /** Bound of the whole build. @default 20 minutes */
  readonly timeoutMs?: number;
  /** Progress lines (timings). @default stderr */
  readonly log?: (line: string) => void;
}

export interface DebianImage {
  /** The root filesystem; hosts get an overlay on it and never write to it. */
  readonly rootfs: string;
  /** The cache key: a hash of the suite, the package list and the recipe. */
  readonly key: string;
  readonly suite: string;
  readonly packages: readonly string[];
  /** True when this call built the image (false: taken from the cache). */
  readonly built: boolean;
  /** Seconds the build took (the cached build's figure when taken from the cache). */
  readonly buildSeconds: number;
}

interface ImageManifest {
  readonly key: string;
  readonly suite: string;
  readonly packages: readonly string[];
  readonly mirror: string;
  readonly builtAt: string;
  readonly buildSeconds: number;
  readonly debootstrapSeconds: number;
  readonly installSeconds: number;
}

interface BuildLock {
  readonly owner: ProcessRef;
  readonly buildDir: string;
  /** The build step running now (debootstrap, the chroot install): the leader of its own process group. */
  readonly worker?: ProcessRef;
}

/**
 * The Debian image the fleet's hosts boot, from the cache or built now: `debootstrap --variant=minbase`
 * plus the roles' packages installed in a chroot. The build goes to a temporary directory renamed into
 * place when complete, so an interrupted build is never used; a lock file names the building process,
 * so a second run waits for it instead of building the same image twice.
 */
export async function ensureDebianImage(options: DebianImageOptions = {}): Promise<DebianImage> {
  const suite = options.suite ?? 'bookworm';
  const packages = [...new Set(options.packages ?? FLEET_IMAGE_PACKAGES)].sort();
  for (const p of packages) {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw new Error(`ensureDebianImage: packages contains ${JSON.stringify(p)}, which is not a Debian package name`);
  }
  if (!/^[a-z]+$/.test(suite)) throw new Error(`ensureDebianImage: suite = ${JSON.stringify(suite)}: expected a Debian code name such as 'bookworm'`);
  const cacheDir = options.cacheDir ?? DEFAULT_IMAGE_CACHE;
  const log = options.log ?? ((line: string) => process.stderr.write(`fleet: ${line}\n`));
  const timeoutMs = options.timeoutMs ?? 20 * 60_000;
  const key = createHash('sha256').update(JSON.stringify({ RECIPE_VERSION, suite, BASE_INCLUDE, packages })).digest('hex').slice(0, 16);
  const imageDir = join(cacheDir, key);
  mkdirSync(cacheDir, { recursive: true });

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const cached = readManifest(imageDir);
    if (cached) {
      log(`image ${key} (${suite}, ${packages.length} packages) from the cache, built in ${cached.buildSeconds.toFixed(0)} s`);
      return { rootfs: join(imageDir, 'rootfs'), key, suite, packages, built: false, buildSeconds: cached.buildSeconds };
    }
    if (takeLock(cacheDir, key)) break;
    if (Date.now() > deadline) throw new Error(`image ${key}: another process held the build lock ${lockPath(cacheDir, key)} for longer than ${timeoutMs / 1000} s`);
    await sleep(2000);
  }
  try {
    const mirror = options.mirror ?? aptMirror(suite);
    const manifest = await build({ key, suite, packages, mirror, cacheDir, imageDir, log, deadline });
    return { rootfs: join(imageDir, 'rootfs'), key, suite, packages, built: true, buildSeconds: manifest.buildSeconds };
  } finally {
    unlinkSync(lockPath(cacheDir, key));
  }
}

interface BuildInput {
  readonly key: string;
  readonly suite: string;
  readonly packages: readonly string[];
  readonly mirror: string;
  readonly cacheDir: string;
  readonly imageDir: string;
  readonly log: (line: string) => void;
  readonly deadline: number;
}

async function build(input: BuildInput): Promise<ImageManifest> {
  const { key, suite, packages, mirror, imageDir, log, deadline } = input;
  // Each step dies with this process (parent-death signal), and is recorded in the lock so a run
  // that takes over an abandoned build can kill what is left of it.
  const lock = lockPath(input.cacheDir, key);
  const step = (argv: string[]) => ({
    argv: ['setpriv', '--pdeathsig', 'KILL', '--', ...argv],
    onStart: (pid: number) => {
      const held = JSON.parse(readFileSync(lock, 'utf8')) as BuildLock;
      writeFileSync(lock, JSON.stringify({ ...held, worker: processRef(pid) }));
    },
  });
  const buildDir = buildPath(input.cacheDir, key);
  const rootfs = join(buildDir, 'rootfs');
  const logFile = join(input.cacheDir, `${key}.build.log`);
  writeFileSync(logFile, '');
  mkdirSync(rootfs, { recursive: true });
  const left = () => Math.max(1000, deadline - Date.now());
  const started = Date.now();
  log(`image ${key}: debootstrap ${suite} (minbase) from ${mirror}; log in ${logFile}`);
  // In a private mount namespace: whatever debootstrap mounts in the target vanishes with it, even when killed.
  const debootstrap = step(['unshare', '--mount', '--propagation', 'private', '--', 'debootstrap', '--variant=minbase', `--include=${BASE_INCLUDE.join(',')}`, suite, rootfs, mirror]);
  await runChecked(debootstrap.argv, { timeoutMs: left(), logFile, onStart: debootstrap.onStart });
  const debootstrapSeconds = (Date.now() - started) / 1000;
  log(`image ${key}: debootstrap took ${debootstrapSeconds.toFixed(0)} s; installing ${packages.join(' ')}`);

  writeFileSync(join(rootfs, 'etc/apt/sources.list'), [
    `deb ${mirror} ${suite} main`,
    `deb ${mirror} ${suite}-updates main`,
    `deb ${securityMirror(suite, mirror)} ${suite}-security main`,
    '',
  ].join('\n'));
  // Nothing starts inside the chroot; the hosts start their services when they boot.
  writeFileSync(join(rootfs, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  const installStarted = Date.now();
  const chroot = 'chroot "$0" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8';
  const script = [
    'set -eu',
    'mount --bind /proc "$0/proc"',
    'mount --rbind /sys "$0/sys"',
    'mount --rbind /dev "$0/dev"',
    `${chroot} apt-get update -q`,
    `${chroot} apt-get install -y -q --no-install-recommends "$@"`,
    `${chroot} apt-get clean`,
    // Hosts configure their static address with systemd-networkd.
    `${chroot} systemctl enable systemd-networkd.service`,
    // The locale cloud-init sets at a first boot (en_US.UTF-8), generated as a cloud image has it.
    `if [ -f "$0/etc/locale.gen" ]; then sed -i 's/^# *\\(en_US.UTF-8 UTF-8\\)/\\1/' "$0/etc/locale.gen" && ${chroot} locale-gen; fi`,
    `${chroot} dpkg-query -W -f '\${Package} \${Version}\\n' > "$0/../packages.txt"`,
  ].join('\n');
  const install = step(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, rootfs, ...packages]);
  await runChecked(install.argv, { timeoutMs: left(), logFile, onStart: install.onStart });
  const installSeconds = (Date.now() - installStarted) / 1000;

  // Each host gets its own identity: no shared SSH host keys, machine id or name server.
  rmSync(join(rootfs, 'usr/sbin/policy-rc.d'));
  for (const f of readdirSync(join(rootfs, 'etc/ssh'))) {
    if (f.startsWith('ssh_host_')) rmSync(join(rootfs, 'etc/ssh', f));
  }
  writeFileSync(join(rootfs, 'etc/machine-id'), '');
  rmSync(join(rootfs, 'var/lib/dbus/machine-id'), { force: true });
  rmSync(join(rootfs, 'etc/resolv.conf'), { force: true });
  writeFileSync(join(rootfs, 'etc/hostname'), 'localhost\n');

  const manifest: ImageManifest = {
    key,
    suite,
    packages,
    mirror,
    builtAt: new Date().toISOString(),
    buildSeconds: (Date.now() - started) / 1000,
    debootstrapSeconds,
    installSeconds,
  };
  writeFileSync(join(buildDir, 'image.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(buildDir, imageDir);
  log(`image ${key}: built in ${manifest.buildSeconds.toFixed(0)} s (debootstrap ${debootstrapSeconds.toFixed(0)} s, packages ${installSeconds.toFixed(0)} s)`);
  return manifest;
}

function readManifest(imageDir: string): ImageManifest | undefined {
  try {
    return JSON.parse(readFileSync(join(imageDir, 'image.json'), 'utf8')) as ImageManifest;
  } catch {
    return undefined;
  }
}

function lockPath(cacheDir: string, key: string): string {
  return join(cacheDir, `${key}.lock`);
}

function buildPath(cacheDir: string, key: string): string {
  return join(cacheDir, `.build-${key}`);
}

/**
 * Takes the build lock (a file created exclusively, naming this process). A lock whose process is
 * gone is taken over: the interrupted build it recorded is removed first.
 */
function takeLock(cacheDir: string, key: string): boolean {
  const path = lockPath(cacheDir, key);
  const me: BuildLock = { owner: processRef(process.pid)!, buildDir: buildPath(cacheDir, key) };
  try {
    const fd = openSync(path, 'wx');
    writeFileSync(fd, JSON.stringify(me));
    closeSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    let held: BuildLock | undefined;
    try {
      held = JSON.parse(readFileSync(path, 'utf8')) as BuildLock;
    } catch {
      return false; // being written right now
    }
    if (isAlive(held.owner)) return false;
    if (held.worker && isAlive(held.worker)) {
      signalProcessGroup(held.worker.pid, 'SIGKILL');
      return false; // taken over at the next poll, once the group is gone
    }
    unlinkSync(path);
    return takeLock(cacheDir, key);
  }
  // Ours now: an earlier, interrupted build may have left its directory (never mounts: they lived in its own namespace).
  if (existsSync(me.buildDir)) rmSync(me.buildDir, { recursive: true, force: true });
  return true;
}

/** The Debian archive this machine's apt uses for `suite` (sources.list and deb822 .sources files). */
export function aptMirror(suite: string): string {
  const fallback = 'http://deb.debian.org/debian';
  for (const entry of aptSources()) {
    if (entry.suites.includes(suite) && /\/debian\/?$/.test(entry.uri)) return entry.uri.replace(/\/$/, '');
  }
  return fallback;
}

function securityMirror(suite: string, mirror: string): string {
  for (const entry of aptSources()) {
    if (entry.suites.includes(`${suite}-security`)) return entry.uri.replace(/\/$/, '');
  }
  return mirror.replace(/\/debian$/, '/debian-security');
}

interface AptSource {
  readonly uri: string;
  readonly suites: string[];
}

function aptSources(): AptSource[] {
  const sources: AptSource[] = [];
  const files = ['/etc/apt/sources.list'];
  try {
    files.push(...readdirSync('/etc/apt/sources.list.d').filter((f) => f.endsWith('.list') || f.endsWith('.sources')).map((f) => join('/etc/apt/sources.list.d', f)));
  } catch {
    // no sources.list.d
  }
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1].trim().split(/\s+/) ?? [];
        if (!field('Types').includes('deb') || field('Enabled')[0] === 'no') continue;
        for (const uri of field('URIs')) sources.push({ uri, suites: field('Suites') });
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m) sources.push({ uri: m[1], suites: [m[2]] });
      }
    }
  }
  return sources;
}
