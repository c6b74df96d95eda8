import { spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';

/** What a fleet host's identity and SSH access need from its fleet. */
export interface HostAccess {
  /** Root's authorized key (the run's public key) and the private key's file, for SSH. */
  readonly sshPublicKey: string;
  readonly sshPrivateKeyPath: string;
  readonly knownHostsPath: string;
}

/**
 * Writes a host's identity into its root filesystem — host name, machine id, root's authorized key
 * and an SSH host key of its own — and adds the host key to the run's `known_hosts`. Returns the
 * public host key (`ssh-ed25519 AAAA…`).
 */
export function writeHostIdentity(root: string, name: string, address: string, access: HostAccess): string {
  writeFileSync(join(root, 'etc/hostname'), `${name}\n`);
  writeFileSync(join(root, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  writeFileSync(join(root, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
  mkdirSync(join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
  chmodSync(join(root, 'root/.ssh'), 0o700);
  writeFileSync(join(root, 'root/.ssh/authorized_keys'), `${access.sshPublicKey.trim()}\n`, { mode: 0o600 });
  const keyFile = join(root, 'etc/ssh/ssh_host_ed25519_key');
  const keygen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', keyFile], { encoding: 'utf8', timeout: 30_000 });
  if (keygen.status !== 0) throw new Error(`${name}: ssh-keygen failed: ${keygen.stdout ?? ''}${keygen.stderr ?? ''}`);
  const [type, key] = readFileSync(`${keyFile}.pub`, 'utf8').trim().split(/\s+/);
  const hostKey = `${type} ${key}`;
  writeFileSync(access.knownHostsPath, `${address} ${hostKey}\n`, { flag: 'a' });
  return hostKey;
}

/** ssh's options for a fleet host: the run's key only, the run's known hosts only, bounded waits. */
export function sshClientOptions(access: HostAccess, connectTimeoutSeconds: number): string[] {
  return [
    '-i', access.sshPrivateKeyPath,
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${access.knownHostsPath}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `ConnectTimeout=${connectTimeoutSeconds}`,
    '-o', 'ServerAliveInterval=5',
    '-o', 'ServerAliveCountMax=3',
    '-o', 'LogLevel=ERROR',
  ];
}
