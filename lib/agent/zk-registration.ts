import { CoalescedRun } from './coalesced-run';
import { Logger } from './log';
import { CreateMode, refusedRetryMs, ZK_NO_AUTH, ZK_NO_NODE, ZkAcl, ZkConnectedEvent, ZkError, ZkPermission, ZkSession } from './zk-session';
import { decodeRegistration } from '../schema/registration-codec';
import { ZookeeperCredentials, zookeeperDigest } from '../schema/zookeeper-credentials';

/** What a registration tells its owner, for metrics. */
export interface ZkRegistrationEvents {
  onRegistered?(path: string): void;
  onDeregistered?(path: string): void;
  onError?(error: Error): void;
  /** ZooKeeper refused a request for lack of permission (also reported to `onError`). */
  onNoAuth?(error: ZkError): void;
}

/** Pause before retrying a failed step while connected. */
const RETRY_MS = 1000;

/** With credentials, the service path is the bootstrap's to create, not ours. */
class ServicePathMissing extends Error {}

/**
 * One instance's ephemeral sequential node `<zkPath>/<instanceId>_<seq>`, kept in line with
 * whether the service is up. Every change of want or of the session runs one idempotent
 * reconcile, serialized, so there is never more than one node for the instance:
 *
 * - before creating, it lists its own children (`<instanceId>_*` with the same host and port) and
 *   adopts one this session made (a create whose answer was lost) or deletes them (a previous
 *   incarnation's, still waiting for its old session to expire);
 * - after a new session the old node is gone with the old session, so it registers again at once.
 *
 * With `credentials` (the service's `zk_auth_file`) the service path must exist already: a path
 * nerve created would carry the wrong ACL. The node gets ALL for the session's own identities
 * (the `auth` scheme) and READ for every id that may read the service path, so consumers keep
 * reading it and nobody else may change or delete it (see {@link childAcl}).
 */
export class ZkRegistration {
  private want = false;
  private node?: { path: string; generation: number };
  private verify = false;
  /** A create failed without a clear answer: a node of ours may exist that we do not know of. */
  private uncertain = false;
  private readonly run = new CoalescedRun(() => this.reconcileOnce());
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private missingLogged = false;
  private noAuthInARow = 0;
  private hiddenReadersLogged = false;

  public constructor(
    private readonly session: ZkSession,
    public readonly zkPath: string,
    private readonly instanceId: string,
    private readonly payload: string,
    private readonly log: Logger,
    private readonly events: ZkRegistrationEvents = {},
    private readonly credentials?: ZookeeperCredentials,
    /** Ids given READ on the registration (`zk_read_acl`); without them, taken from the service path's ACL. */
    private readonly readAcl?: string[],
  ) {
    session.on('connected', this.onConnected);
  }

  /** The node's path while registered. */
  public get registeredPath(): string | undefined {
    return this.node?.generation === this.session.generation ? this.node.path : undefined;
  }

  public setUp(up: boolean): void {
    if (this.want === up) return;
    this.want = up;
    this.kick();
  }

  /**
   * Has the next reconcile check that the node still exists and re-create it when it was deleted
   * from outside, as upstream's `ping?` does every check round: one `exists` while registered.
   */
  public verifyExists(): void {
    if (this.stopped || this.registeredPath === undefined) return;
    this.verify = true;
    this.kick();
  }

  /** Deletes the node (if any; unless `deleteNode` is false) and stops following the session. */
  public async stop(timeoutMs = 3000, deleteNode = true): Promise<void> {
    this.want = false;
    this.stopped = true;
    this.run.stop();
    clearTimeout(this.retryTimer);
    this.session.off('connected', this.onConnected);
    const deadline = Date.now() + timeoutMs;
    while (this.run.running && Date.now() < deadline) await sleep(20);
    if (this.node && this.session.connected && deleteNode) {
      await this.session.remove(this.node.path).catch(() => undefined);
      this.events.onDeregistered?.(this.node.path);
      this.log.info('deregistered', { path: this.node.path, reason: 'shutdown' });
      this.node = undefined;
    }
  }

  private readonly onConnected = (event: ZkConnectedEvent): void => {
    // Within one session the node survives a lost connection, but a create may have been cut off.
    if (!event.newSession) this.verify = true;
    this.kick();
  };

  private kick(): void {
    this.run.request();
  }

  /** One reconcile; on failure, another after a pause while the session lasts. */
  private async reconcileOnce(): Promise<void> {
    let retryMs = RETRY_MS;
    try {
      await this.reconcile();
      this.noAuthInARow = 0;
      return;
    } catch (e) {
      this.events.onError?.(e as Error);
      if (e instanceof ServicePathMissing) {
        if (!this.missingLogged) this.log.warn(e.message, { path: this.zkPath });
        this.missingLogged = true;
      } else if (e instanceof ZkError && e.code === ZK_NO_AUTH) {
        this.noAuthInARow += 1;
        retryMs = refusedRetryMs(this.noAuthInARow);
        this.events.onNoAuth?.(e);
        this.log.error('zookeeper refused the request: no permission for this identity; retrying', {
          operation: e.operation, path: e.path, user: this.credentials?.user ?? '(none: no zk_auth_file)', retry_ms: retryMs,
        });
      } else {
        this.log.warn('registration step failed; retrying', { error: e as Error });
      }
    }
    if (this.session.connected && !this.stopped) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.kick(), retryMs);
    }
  }

  private async reconcile(): Promise<void> {
    if (!this.session.connected) return; // `connected` kicks again
    const generation = this.session.generation;
    const current = this.node?.generation === generation ? this.node : undefined;
    if (!this.want) {
      this.node = undefined;
      if (current) {
        await this.session.remove(current.path).catch(ignoreNoNode);
        this.events.onDeregistered?.(current.path);
        this.log.info('deregistered', { path: current.path, reason: 'service down' });
      }
      if (this.uncertain) {
        await this.adoptOrClean(false);
        this.uncertain = false;
      }
      return;
    }
    if (current && !this.verify) return;
    if (current && (await this.session.exists(current.path))) {
      this.verify = false;
      return;
    }
    this.verify = false;
    if (current) {
      this.node = undefined;
      this.log.warn('registration is gone from zookeeper; registering again', { path: current.path });
    }
    if (!this.credentials) {
      await this.session.mkdirp(this.zkPath);
    } else if (!(await this.session.exists(this.zkPath))) {
      throw new ServicePathMissing('service path does not exist; waiting for it (with zk_auth_file nerve does not create it)');
    } else if (this.missingLogged) {
      this.missingLogged = false;
      this.log.info('service path exists now', { path: this.zkPath });
    }
    const adopted = await this.adoptOrClean(true);
    if (adopted) {
      this.node = { path: adopted, generation };
      this.log.info('registration kept', { path: adopted });
      return;
    }
    const acl = this.credentials ? await this.childAcl() : undefined;
    this.uncertain = true;
    const created = await this.session.create(`${this.zkPath}/${this.instanceId}_`, Buffer.from(this.payload), CreateMode.EPHEMERAL_SEQUENTIAL, acl);
    this.uncertain = false;
    this.node = { path: created, generation };
    this.events.onRegistered?.(created);
    this.log.info('registered', { path: created, session: this.session.sessionId });
  }

  /**
   * ALL for the session's own identities, READ for every other id that may read the service path.
   * Read afresh before each create, so a reader the bootstrap adds later is honoured.
   *
   * ZooKeeper shows digest ids only to who holds ADMIN on the node; others get `user:x`, which
   * names no identity. For such readers the node gets READ for everyone instead: writing and
   * deleting stay with its owner, listing the path stays with its readers.
   */
  private async childAcl(): Promise<ZkAcl[]> {
    if (this.readAcl) {
      const readers = this.readAcl.map((id): ZkAcl => {
        const colon = id.indexOf(':');
        return { perms: ZkPermission.READ, scheme: id.slice(0, colon), id: id.slice(colon + 1) };
      });
      return [{ perms: ZkPermission.ALL, scheme: 'auth', id: '' }, ...readers];
    }
    const ownIds = new Set(this.session.credentials.map((c) => zookeeperDigest(c.user, c.password)));
    const ownUsers = new Set(this.session.users);
    const readers = new Map<string, ZkAcl>();
    const hidden: string[] = [];
    for (const a of await this.session.getAcl(this.zkPath)) {
      if ((a.perms & ZkPermission.READ) === 0) continue;
      if (a.scheme === 'digest') {
        const [user, digest] = a.id.split(':');
        if (ownIds.has(a.id) || (digest === 'x' && ownUsers.has(user))) continue;
        if (digest === 'x') {
          hidden.push(user);
          continue;
        }
      }
      readers.set(`${a.scheme}:${a.id}`, { perms: ZkPermission.READ, scheme: a.scheme, id: a.id });
    }
    if (hidden.length > 0) {
      readers.set('world:anyone', { perms: ZkPermission.READ, scheme: 'world', id: 'anyone' });
      if (!this.hiddenReadersLogged) {
        this.log.info('the service path hides its readers\' digests from this identity (no ADMIN there): registrations are readable by all, changeable by none', {
          path: this.zkPath, readers: hidden,
        });
      }
      this.hiddenReadersLogged = true;
    }
    return [{ perms: ZkPermission.ALL, scheme: 'auth', id: '' }, ...readers.values()];
  }

  /** Keeps (when `adopt`) one node this session made with our payload; deletes our other nodes. */
  private async adoptOrClean(adopt: boolean): Promise<string | undefined> {
    const prefix = `${this.instanceId}_`;
    const children = (await this.session.getChildren(this.zkPath)).filter((c) => c.startsWith(prefix) && /^[0-9]+$/.test(c.slice(prefix.length))).sort();
    const ours = decodeRegistration(this.payload);
    let adopted: string | undefined;
    for (const child of children) {
      const path = `${this.zkPath}/${child}`;
      const node = await this.session.getData(path).catch((e: ZkError) => (e.code === ZK_NO_NODE ? undefined : Promise.reject(e)));
      if (!node) continue;
      const theirs = decodeRegistration(node.data);
      const sameEndpoint = ours.ok && theirs.ok && theirs.registration.host === ours.registration.host && theirs.registration.port === ours.registration.port;
      if (!sameEndpoint) continue; // the same instance id for another endpoint is not ours to judge
      const mine = node.stat.ephemeralOwner.toString('hex') === this.session.sessionId;
      if (adopt && mine && adopted === undefined && node.data.toString() === this.payload) {
        adopted = path;
        continue;
      }
      await this.session.remove(path).catch(ignoreNoNode);
      this.log.info('removed a stale registration of this instance', { path, same_session: mine });
    }
    return adopted;
  }
}

function ignoreNoNode(e: ZkError): void {
  if (e.code !== ZK_NO_NODE) throw e;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
