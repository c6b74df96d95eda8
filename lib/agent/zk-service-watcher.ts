import { CoalescedRun } from './coalesced-run';
import { Logger } from './log';
import { refusedRetryMs, ZK_NO_AUTH, ZK_NO_NODE, ZkConnectedEvent, ZkError, ZkSession } from './zk-session';
import { decodeChildName, decodeRegistration, DecodedRegistration } from '../schema/registration-codec';
import { Registration } from '../schema/registration';

/** A registration found under a service's path. */
export interface DiscoveredInstance {
  /** The child node's name, e.g. `app1_0000000042`. */
  readonly child: string;
  readonly registration: Registration;
}

export interface ZkServiceWatcherHooks {
  /** Called with the full list each time it changes (and after the first listing of a session). */
  onInstances(instances: DiscoveredInstance[]): void;
  /** One ZooKeeper read: `list` of the path or `get` of a child. */
  onRead?(op: 'list' | 'get'): void;
  /** A child that is not a usable registration; it is skipped until it goes away. */
  onRejected?(child: string, reason: string): void;
  /** ZooKeeper refused a read for lack of permission. */
  onNoAuth?(operation: string, path: string): void;
}

/** Pause before retrying a failed listing while connected. */
const RETRY_MS = 1000;

/**
 * Watches one service's path: a child watch re-lists the children after each change, and only
 * children not seen before are read (one `get` each, or none when the name carries the payload).
 * Registrations do not change in place (nerve re-creates them), so a known child is never read
 * again — not after a reconnect and not after a new session, which costs a single listing.
 * While ZooKeeper is unreachable nothing is reported, so the last known instances stay in use.
 *
 * With a `user` (credentials configured) a missing path is not created, since it would carry the
 * wrong ACL: a watch on its existence says when the bootstrap has made it. A listing refused for
 * lack of permission is retried with a growing pause and, like any failed read, changes nothing.
 */
export class ZkServiceWatcher {
  /** Child name → its registration, or null for a child that was refused. */
  private readonly cache = new Map<string, Registration | null>();
  private readonly run = new CoalescedRun(() => this.refreshOnce());
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private reported = false;
  private missingLogged = false;
  private noAuthInARow = 0;

  public constructor(
    private readonly session: ZkSession,
    public readonly path: string,
    private readonly log: Logger,
    private readonly hooks: ZkServiceWatcherHooks,
    /** The digest user the path is read as, when the service has credentials. */
    private readonly user?: string,
  ) {}

  public start(): void {
    this.session.on('connected', this.onConnected);
    if (this.session.connected) this.kick();
  }

  public stop(): void {
    this.stopped = true;
    this.run.stop();
    clearTimeout(this.retryTimer);
    this.session.off('connected', this.onConnected);
  }

  /** The instances as last read. */
  public instances(): DiscoveredInstance[] {
    const out: DiscoveredInstance[] = [];
    for (const [child, registration] of this.cache) if (registration) out.push({ child, registration });
    return out.sort((a, b) => (a.child < b.child ? -1 : a.child > b.child ? 1 : 0));
  }

  private readonly onConnected = (_event: ZkConnectedEvent): void => {
    // Same session: the client re-arms the watch itself, but a listing may have failed while
    // disconnected. New session: the watch is gone. One listing covers both.
    this.kick();
  };

  private readonly onChildrenChanged = (): void => this.kick();

  private kick(): void {
    this.run.request();
  }

  /** One listing; on failure, another after a pause while the session lasts. */
  private async refreshOnce(): Promise<void> {
    let retryMs = RETRY_MS;
    try {
      await this.refresh();
      this.noAuthInARow = 0;
      return;
    } catch (e) {
      if (e instanceof ZkError && e.code === ZK_NO_AUTH) {
        this.noAuthInARow += 1;
        retryMs = refusedRetryMs(this.noAuthInARow);
        this.hooks.onNoAuth?.(e.operation ?? '', e.path ?? this.path);
        this.log.error('zookeeper refused the read: no permission for this identity; keeping the last servers and retrying', {
          operation: e.operation, path: e.path, user: this.user ?? '(none: no auth_file)', retry_ms: retryMs,
        });
      } else {
        this.log.warn('listing the service path failed; retrying', { path: this.path, error: e as Error });
      }
    }
    if (this.session.connected && !this.stopped) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.kick(), retryMs);
    }
  }

  private async refresh(): Promise<void> {
    if (!this.session.connected) return;
    let children: string[];
    let missing = false;
    try {
      this.hooks.onRead?.('list');
      children = await this.session.getChildren(this.path, this.onChildrenChanged);
    } catch (e) {
      if ((e as ZkError).code !== ZK_NO_NODE) throw e;
      // Nothing registered yet. Without credentials, create the path so the child watch can be set
      // (as upstream does); with them, watch for the bootstrap to create it.
      const exists = this.user === undefined
        ? await this.session.mkdirp(this.path).then(() => true)
        : (await this.session.exists(this.path, this.onChildrenChanged)) !== undefined;
      if (exists) {
        this.hooks.onRead?.('list');
        children = await this.session.getChildren(this.path, this.onChildrenChanged);
      } else {
        if (!this.missingLogged) this.log.warn('service path does not exist; waiting for it (with auth_file synapse does not create it)', { path: this.path });
        this.missingLogged = true;
        missing = true;
        children = [];
      }
    }
    if (!missing) this.missingLogged = false;

    const present = new Set(children);
    let changed = false;
    for (const child of [...this.cache.keys()]) {
      if (!present.has(child)) {
        if (this.cache.get(child)) changed = true;
        this.cache.delete(child);
      }
    }
    for (const child of children) {
      if (this.cache.has(child)) continue;
      const decoded = await this.read(child);
      if (decoded === undefined) continue; // gone between the listing and the read
      if (decoded.ok) {
        this.cache.set(child, decoded.registration);
        changed = true;
      } else {
        this.cache.set(child, null);
        this.log.warn('registration refused', { path: `${this.path}/${child}`, reason: decoded.reason });
        this.hooks.onRejected?.(child, decoded.reason);
      }
    }
    if (changed || !this.reported) {
      this.reported = true;
      this.hooks.onInstances(this.instances());
    }
  }

  private async read(child: string): Promise<DecodedRegistration | undefined> {
    // Upstream falls back to the node's data when a `base64_` name does not decode; so do we.
    const fromName = decodeChildName(child);
    if (fromName?.ok) return fromName;
    this.hooks.onRead?.('get');
    try {
      const node = await this.session.getData(`${this.path}/${child}`);
      return decodeRegistration(node.data);
    } catch (e) {
      if ((e as ZkError).code === ZK_NO_NODE) return undefined;
      // One registration we may not read must not stop the others from being seen.
      if ((e as ZkError).code === ZK_NO_AUTH) {
        this.hooks.onNoAuth?.('get', `${this.path}/${child}`);
        return { ok: false, reason: `not readable as ${this.user ?? 'an unauthenticated client'} (NoAuth)` };
      }
      throw e;
    }
  }
}
