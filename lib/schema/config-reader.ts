import { ConfigError } from './config-error';
import { haproxyUnsafeReason, HaproxyValueKind } from './haproxy-safe';

/** A JSON object from a config file, read key by key. */
export type JsonObject = { readonly [key: string]: unknown };

/**
 * Typed access to a parsed config file: each method returns the value or throws a
 * {@link ConfigError} that names the file, the key path and the value.
 */
export class ConfigReader {
  public constructor(public readonly source: string) {}

  public fail(key: string, value: unknown, reason: string): never {
    throw new ConfigError(this.source, key, value, reason);
  }

  public object(key: string, value: unknown): JsonObject {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(key, value, 'must be an object');
    return value as JsonObject;
  }

  public optionalObject(key: string, value: unknown): JsonObject | undefined {
    return value === undefined ? undefined : this.object(key, value);
  }

  public list(key: string, value: unknown): unknown[] {
    if (!Array.isArray(value)) this.fail(key, value, 'must be a list');
    return value;
  }

  public string(key: string, value: unknown): string {
    if (typeof value !== 'string' || value.length === 0) this.fail(key, value, 'must be a non-empty string');
    return value;
  }

  public optionalString(key: string, value: unknown): string | undefined {
    return value === undefined ? undefined : this.string(key, value);
  }

  /** A string that will reach haproxy.cfg, a ZooKeeper node name or the runtime socket. */
  public safe(key: string, value: unknown, kind: HaproxyValueKind): string {
    const reason = haproxyUnsafeReason(value, kind);
    if (reason !== undefined) this.fail(key, value, reason);
    return kind === 'port' ? String(Number(value)) : (value as string);
  }

  /** A port as a number; upstream files often write it as a string ("8080"). */
  public port(key: string, value: unknown): number {
    return Number(this.safe(key, value, 'port'));
  }

  public optionalPort(key: string, value: unknown): number | undefined {
    return value === undefined ? undefined : this.port(key, value);
  }

  public number(key: string, value: unknown, min: number, max: number): number {
    const n = typeof value === 'string' && /^[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) this.fail(key, value, `must be a number ${min}-${max}`);
    return n;
  }

  public integer(key: string, value: unknown, min: number, max: number): number {
    const n = this.number(key, value, min, max);
    if (!Number.isInteger(n)) this.fail(key, value, `must be an integer ${min}-${max}`);
    return n;
  }

  public boolean(key: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(key, value, 'must be true or false');
    return value;
  }

  /** `host:port` as ZooKeeper connection strings take it. */
  public hostPort(key: string, value: unknown): string {
    const text = this.string(key, value);
    const at = text.lastIndexOf(':');
    if (at <= 0) this.fail(key, value, 'must be host:port');
    const host = text.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    if (haproxyUnsafeReason(host, 'host') !== undefined || haproxyUnsafeReason(text.slice(at + 1), 'port') !== undefined) {
      this.fail(key, value, 'must be host:port with an IP address or hostname and a port 1-65535');
    }
    return text;
  }

  /**
   * A ZooKeeper host list as upstream takes it: `host:port` entries, the last (or any) of which may
   * carry a chroot suffix (`zk1:2181/smartstack`), which applies to the whole list. Returns the
   * hosts without it and the chroot ('' for none), which callers put in front of their paths.
   */
  public zkHosts(key: string, value: unknown): { hosts: string[]; chroot: string } {
    const list = this.list(key, value);
    if (list.length === 0) this.fail(key, value, 'must list at least one ZooKeeper host:port');
    let chroot = '';
    const hosts = list.map((entry, i) => {
      const text = this.string(`${key}[${i}]`, entry);
      const slash = text.indexOf('/');
      if (slash < 0) return this.hostPort(`${key}[${i}]`, text);
      const root = text.slice(slash);
      if (root !== '/') this.zkPath(`${key}[${i}] (chroot)`, root);
      if (chroot !== '' && root !== chroot) this.fail(`${key}[${i}]`, entry, `names chroot ${root}, another entry ${chroot}: a connection has one`);
      chroot = root === '/' ? '' : root;
      return this.hostPort(`${key}[${i}]`, text.slice(0, slash));
    });
    return { hosts, chroot };
  }

  /** An absolute file path without control characters. */
  public absolutePath(key: string, value: unknown): string {
    const text = this.string(key, value);
    if (!text.startsWith('/') || /[\x00-\x1f\x7f]/.test(text)) this.fail(key, value, 'must be an absolute path');
    return text;
  }

  /** A ZooKeeper path: absolute, no trailing slash, safe characters only. */
  public zkPath(key: string, value: unknown): string {
    const text = this.string(key, value);
    if (!/^(\/[A-Za-z0-9_.:-]+)+$/.test(text)) {
      this.fail(key, value, "must be an absolute ZooKeeper path like /services/user-service (letters, digits, _ . : -)");
    }
    return text;
  }
}
