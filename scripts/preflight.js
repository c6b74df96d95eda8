#!/usr/bin/env node
// Finds the programs the real-tool tests run and, as root on Debian/Ubuntu, installs the missing
// ones with apt-get. Elsewhere it says exactly what to install and stops.
const { spawnSync } = require('child_process');
const { existsSync } = require('fs');

const needs = [
  { what: 'ZooKeeper (zookeeper.jar and java)', present: () => existsSync('/usr/share/java/zookeeper.jar') && onPath('java'), pkg: 'zookeeper' },
  { what: 'HAProxy', present: () => onPath('haproxy'), pkg: 'haproxy' },
  { what: 'cloud-init', present: () => onPath('cloud-init'), pkg: 'cloud-init' },
  { what: 'nftables (nft)', present: () => onPath('nft'), pkg: 'nftables' },
  { what: 'socat (the HAProxy unit dumps server state with it)', present: () => onPath('socat'), pkg: 'socat' },
  { what: "Graphviz's dot (smartstack graph --format svg)", present: () => onPath('dot'), pkg: 'graphviz' },
];

// The fleet tests boot Debian hosts as systemd containers: they need root, and these programs.
// Without root they are skipped with a message (under CI they fail), so they are only looked for as root.
if (typeof process.getuid === 'function' && process.getuid() === 0) {
  needs.push(
    { what: 'debootstrap (builds the fleet image)', present: () => onPath('debootstrap'), pkg: 'debootstrap' },
    { what: 'systemd-nspawn (boots the fleet hosts)', present: () => onPath('systemd-nspawn'), pkg: 'systemd-container' },
    { what: 'ssh and ssh-keygen (reach the fleet hosts)', present: () => onPath('ssh') && onPath('ssh-keygen'), pkg: 'openssh-client' },
    { what: 'mkfs.ext4', present: () => onPath('mkfs.ext4'), pkg: 'e2fsprogs' },
    { what: 'ip (the fleet bridge)', present: () => onPath('ip'), pkg: 'iproute2' },
    { what: 'mkfs.xfs (a used disk the disk step must refuse)', present: () => onPath('mkfs.xfs'), pkg: 'xfsprogs' },
    { what: 'sfdisk (a partitioned disk the disk step must refuse)', present: () => onPath('sfdisk'), pkg: 'fdisk' },
  );
}

// `--bench`: the benchmarks also drive load with wrk and count instructions with valgrind.
if (process.argv.includes('--bench')) {
  needs.push(
    { what: 'wrk (load generator)', present: () => onPath('wrk'), pkg: 'wrk' },
    { what: 'valgrind (instruction counts)', present: () => onPath('valgrind'), pkg: 'valgrind' },
  );
}

function onPath(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

let missing = needs.filter((n) => !n.present());
if (missing.length > 0) {
  const pkgs = missing.map((n) => n.pkg);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && onPath('apt-get')) {
    console.log(`preflight: installing ${pkgs.join(' ')} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
    if (update.status !== 0 || install.status !== 0) {
      console.error(`preflight: apt-get could not install ${pkgs.join(' ')}`);
      process.exit(1);
    }
    missing = needs.filter((n) => !n.present());
  }
  if (missing.length > 0) {
    console.error('preflight: the real-tool tests need programs this machine does not have:');
    for (const n of missing) console.error(`  - ${n.what}: Debian/Ubuntu package '${n.pkg}'`);
    console.error(`Install them with:  sudo apt-get install -y ${missing.map((n) => n.pkg).join(' ')}`);
    process.exit(1);
  }
}

if (!onPath('terraform')) {
  const message = 'preflight: terraform is not on the PATH; the terraform validate/plan tests need terraform >= 1.4 (not packaged by Debian: install it from HashiCorp)';
  if (process.env.CI) {
    console.error(message);
    process.exit(1);
  }
  console.warn(`${message}. They are skipped.`);
}
console.log(`preflight: ${needs.map((n) => n.pkg).join(', ')}${onPath('terraform') ? ', terraform' : ''} found`);
