import { createHash } from 'crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'fs';
import { dirname, resolve } from 'path';
import { ConfigError } from './config-error';

/**
 * A ZooKeeper identity the agents authenticate as, read from a credentials file:
 *
 * ```json
 * {"scheme":"digest","user":"registrar-user-service","password":"<64 hex characters>"}
 * ```
 *
 * The file must be readable by its owner only (mode 0600 or 0400), except that in the unit's
 * systemd credentials directory group bits are allowed (see {@link readZookeeperCredentials}).
 * Not part of the jsii API.
 */
export interface ZookeeperCredentials {
  readonly scheme: 'digest';
  readonly user: string;
  readonly password: string;
}

/** Letters, digits, `_ . -`; never `:`, which ends the user in a digest id. */
const USER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const KEYS = ['scheme', 'user', 'password'];

/**
 * The ACL id ZooKeeper derives for a digest identity with
 * `-Dzookeeper.DigestAuthenticationProvider.digestAlg=SHA-256`: `user:` + base64(sha256(`user:password`)).
 */
export function zookeeperDigest(user: string, password: string): string {
  return `${user}:${createHash('sha256').update(`${user}:${password}`, 'utf8').digest('base64')}`;
}

/** What `addAuthInfo('digest', …)` sends: `user:password`. */
export function zookeeperAuthData(credentials: ZookeeperCredentials): Buffer {
  return Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8');
}

/**
 * Reads and checks a credentials file. Refuses, with a {@link ConfigError} naming the file and
 * the field, a file that group or others may access (as ssh does with private keys), one that is
 * not JSON, an unknown scheme, a user outside the whitelist, and an empty or multi-line password.
 * No message ever carries the password, nor the file's text.
 *
 * A file directly in `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`) may show group bits:
 * where the file system supports ACLs systemd leaves the copy root's, mode 0400, and grants the
 * unit's user read through an ACL entry, whose mask the group bits then show (0440). systemd
 * guards that directory itself; bits for others are still refused there.
 */
export function readZookeeperCredentials(path: string): ZookeeperCredentials {
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    // The mode of the file actually opened, not of whatever the path names a moment later.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(path, '(file)', path, 'must be a regular file');
    const mode = stat.mode & 0o777;
    const systemd = process.env.CREDENTIALS_DIRECTORY !== undefined && dirname(resolve(path)) === resolve(process.env.CREDENTIALS_DIRECTORY);
    if ((mode & (systemd ? 0o007 : 0o077)) !== 0) {
      throw new ConfigError(path, '(mode)', mode.toString(8).padStart(4, '0'), 'credentials must not be accessible by group or others: chmod 600');
    }
    text = readFileSync(fd, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(path, '(file)', path, `cannot be read: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return parseZookeeperCredentials(text, path);
}

/** Checks the text of a credentials file; `source` names it in errors. */
export function parseZookeeperCredentials(text: string, source: string): ZookeeperCredentials {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text around the error, which may be the password.
    throw new ConfigError(source, '(file)', source, 'is not valid JSON (expected {"scheme":"digest","user":"…","password":"…"})');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(source, '(file)', source, 'must hold a JSON object {"scheme":"digest","user":"…","password":"…"}');
  }
  const o = raw as { [key: string]: unknown };
  for (const key of Object.keys(o)) {
    if (!KEYS.includes(key)) throw new ConfigError(source, key, '(not shown)', `unknown key: only ${KEYS.join(', ')}`);
  }
  if (o.scheme !== 'digest') throw new ConfigError(source, 'scheme', o.scheme, 'must be "digest" (the only scheme supported)');
  if (typeof o.user !== 'string' || !USER.test(o.user)) {
    throw new ConfigError(source, 'user', typeof o.user === 'string' ? o.user : typeof o.user, 'must be 1-100 letters, digits and _ . - (no ":"), starting with a letter or digit');
  }
  const password = o.password;
  if (typeof password !== 'string' || password.length === 0) throw new ConfigError(source, 'password', '(not shown)', 'must be a non-empty string');
  if (/[\x00-\x1f\x7f]/.test(password)) throw new ConfigError(source, 'password', '(not shown)', 'must be one line without control characters');
  return { scheme: 'digest', user: o.user, password };
}
