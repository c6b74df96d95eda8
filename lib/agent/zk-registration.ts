import { CoalescedRun } from './coalesced-run';
import { Logger } from './log';
import { CreateMode, ZK_NO_NODE, ZkConnectedEvent, ZkError, ZkSession } from './zk-session';
import { decodeRegistration } from '../schema/registration-codec';

/** What a registration tells its owner, for metrics. */
export interface ZkRegistrationEvents {
  onRegistered?(path: string): void;
  onDeregistered?(path: string): void;
  onError?(error: Error): void;
}

/** Pause before retrying a failed step while connected. */
const RETRY_MS = 1000;

/**
 * One instance's ephemeral sequential node `<zkPath>/<instanceId>_<seq>`, kept in line with
 * whether the service is up. Every change of want or of the session runs one idempotent
 * reconcile, serialized, so there is never more than one node for the instance:
 *
 * - before creating, it lists its own children (`<instanceId>_*` with the same host and port) and
 *   adopts one this session made (a create whose answer was lost) or deletes them (a previous
 *   incarnation's, still waiting for its old session to expire);
 * - after a new session the old node is gone with the old session, so it registers again at once.
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

  public constructor(
    private readonly session: ZkSession,
    public readonly zkPath: string,
    private readonly instanceId: string,
    private readonly payload: string,
    private readonly log: Logger,
    private readonly events: ZkRegistrationEvents = {},
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

  /** Deletes the node (if any) and stops following the session. */
  public async stop(timeoutMs = 3000): Promise<void> {
    this.want = false;
    this.stopped = true;
    this.run.stop();
    clearTimeout(this.retryTimer);
    this.session.off('connected', this.onConnected);
    const deadline = Date.now() + timeoutMs;
    while (this.run.running && Date.now() < deadline) await sleep(20);
    if (this.node && this.session.connected) {
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
    try {
      await this.reconcile();
    } catch (e) {
      this.events.onError?.(e as Error);
      this.log.warn('registration step failed; retrying', { error: e as Error });
      if (this.session.connected && !this.stopped) {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.kick(), RETRY_MS);
      }
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
    await this.session.mkdirp(this.zkPath);
    const adopted = await this.adoptOrClean(true);
    if (adopted) {
      this.node = { path: adopted, generation };
      this.log.info('registration kept', { path: adopted });
      return;
    }
    this.uncertain = true;
    const created = await this.session.create(`${this.zkPath}/${this.instanceId}_`, Buffer.from(this.payload), CreateMode.EPHEMERAL_SEQUENTIAL);
    this.uncertain = false;
    this.node = { path: created, generation };
    this.events.onRegistered?.(created);
    this.log.info('registered', { path: created, session: this.session.sessionId });
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
