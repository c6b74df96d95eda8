import { EventEmitter } from 'events';
import * as zookeeper from 'node-zookeeper-client';
import { Logger } from './log';
import { ZookeeperCredentials, zookeeperAuthData } from '../schema/zookeeper-credentials';

/** Where the session stands; `expired` lasts only until the replacement session connects. */
export type ZkConnectionState = 'connecting' | 'connected' | 'disconnected' | 'expired' | 'closed';

export interface ZkSessionOptions {
  /** Requested session timeout; the ensemble clamps it to 2–20 ticks. Default 10 s. */
  readonly sessionTimeoutMs?: number;
  /** Longest random pause after every member was tried once. Default 1 s. */
  readonly spinDelayMs?: number;
  /** A request without an answer fails after this long. Default: the session timeout. */
  readonly operationTimeoutMs?: number;
  readonly log?: Logger;
}

/** What the `connected` event carries. */
export interface ZkConnectedEvent {
  /** True for the first connection of a session: ephemeral nodes and watches of any earlier one are gone. */
  readonly newSession: boolean;
  /** Counts sessions, starting at 1. */
  readonly generation: number;
}

/** A request that failed; `code` is ZooKeeper's error code when there is one. */
export class ZkError extends Error {
  public constructor(
    message: string,
    public readonly code?: number,
    /** The request (`create`, `delete`, `children`, ...) and its path, when known. */
    public readonly operation?: string,
    public readonly path?: string,
  ) {
    super(message);
    this.name = 'ZkError';
  }
}

export const ZK_NO_NODE = zookeeper.Exception.NO_NODE;
export const ZK_NODE_EXISTS = zookeeper.Exception.NODE_EXISTS;
export const ZK_NOT_EMPTY = zookeeper.Exception.NOT_EMPTY;
/** The session's identities lack the permission the request needs. */
export const ZK_NO_AUTH = zookeeper.Exception.NO_AUTH;

/**
 * The pause before the next try after `inARow` refusals (NoAuth, rejected credentials): 1 s,
 * doubling up to 30 s, since only an operator fixes a permission.
 */
export function refusedRetryMs(inARow: number): number {
  return Math.min(30000, 1000 * 2 ** Math.min(inARow - 1, 5));
}

export const ZkPermission = zookeeper.Permission;

/** One ACL entry: `perms` (a mask of {@link ZkPermission}) for `scheme:id`. */
export interface ZkAcl {
  readonly perms: number;
  readonly scheme: string;
  readonly id: string;
}

/** Everyone may do everything: what nodes get without an ACL, as upstream nerve makes them. */
const OPEN_ACL: ZkAcl[] = [{ perms: zookeeper.Permission.ALL, scheme: 'world', id: 'anyone' }];

/** A node's data and its metadata, as one read returns them. */
export interface ZkNodeData {
  readonly data: Buffer;
  readonly stat: zookeeper.Stat;
}

export type ZkWatcher = (event: zookeeper.Event) => void;

/**
 * One ZooKeeper session that never gives up: connection losses are retried by the client
 * (watches are re-armed within the session), and an expired session is replaced by a new one at
 * once instead of ending the process. Emits `connected` ({@link ZkConnectedEvent}), `disconnected`
 * and `expired`. Requests fail fast while not connected; callers act again on `connected`.
 */
export class ZkSession extends EventEmitter {
  private client?: zookeeper.Client;
  private currentState: ZkConnectionState = 'closed';
  private sessions = 0;
  private freshSession = false;
  private closing = false;
  private readonly sessionTimeoutMs: number;
  private readonly spinDelayMs: number;
  private readonly operationTimeoutMs: number;
  private readonly log?: Logger;

  private lastAnswerAt = 0;
  private watchdog?: NodeJS.Timeout;
  private probing = false;
  /** The connection whose handshake is awaited, and since when. */
  private handshake?: { socket: unknown; since: number };
  private readonly identities: ZookeeperCredentials[] = [];
  private authRetryTimer?: NodeJS.Timeout;

  /** Connection losses seen (each is followed by a reconnect attempt). */
  public disconnects = 0;
  /** Sessions the ensemble expired. */
  public expirations = 0;
  /** Replies the client library could not parse (each answered by a reconnect). */
  public protocolErrors = 0;
  /** Times the ensemble refused the session's credentials (each followed by a new session after a pause). */
  public authFailures = 0;

  public constructor(public readonly connectString: string, options: ZkSessionOptions = {}) {
    super();
    // Every registration and every watched service of an agent listens on its one session.
    this.setMaxListeners(0);
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? 10000;
    this.spinDelayMs = options.spinDelayMs ?? 1000;
    this.operationTimeoutMs = options.operationTimeoutMs ?? this.sessionTimeoutMs;
    this.log = options.log?.child({ zk: connectString });
  }

  public get state(): ZkConnectionState {
    return this.currentState;
  }

  public get connected(): boolean {
    return this.currentState === 'connected';
  }

  /** Sessions so far; changes exactly when ephemeral nodes and watches must be set up again. */
  public get generation(): number {
    return this.sessions;
  }

  /** The session id as hex, or '' before the first connection. */
  public get sessionId(): string {
    return this.client && this.connected ? this.client.getSessionId().toString('hex') : '';
  }

  /** The identities every connection of every session authenticates as. */
  public get credentials(): readonly ZookeeperCredentials[] {
    return this.identities;
  }

  /** The digest users, for log lines (never the passwords). */
  public get users(): string[] {
    return this.identities.map((c) => c.user);
  }

  /**
   * Adds a digest identity. The client library sends it on every connection of the session; a
   * new session (after expiry) is a new client, which gets every identity before it connects.
   */
  public addCredentials(credentials: ZookeeperCredentials): void {
    if (this.identities.some((c) => c.user === credentials.user && c.password === credentials.password)) return;
    this.identities.push(credentials);
    this.client?.addAuthInfo(credentials.scheme, zookeeperAuthData(credentials));
  }

  /** Session id and password, for tests that end the session from a second client. */
  public sessionCredentials(): { id: Buffer; password: Buffer } | undefined {
    return this.client && this.connected ? { id: this.client.getSessionId(), password: this.client.getSessionPassword() } : undefined;
  }

  /** Starts connecting; resolves when the first session is connected or `timeoutMs` has passed. */
  public start(timeoutMs = 0): Promise<boolean> {
    if (!this.client && !this.closing) this.newClient();
    if (this.connected || timeoutMs <= 0) return Promise.resolve(this.connected);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.off('connected', onConnected);
        resolve(false);
      }, timeoutMs);
      const onConnected = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.once('connected', onConnected);
    });
  }

  /** Ends the session (its ephemeral nodes go at once) and stops reconnecting. */
  public async close(timeoutMs = 2000): Promise<void> {
    this.closing = true;
    clearTimeout(this.authRetryTimer);
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    const wasConnected = this.connected;
    this.setState('closed');
    if (!wasConnected) {
      client.removeAllListeners();
      client.close();
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      client.once('disconnected', () => {
        clearTimeout(timer);
        resolve();
      });
      client.close();
    });
    client.removeAllListeners();
  }

  /** Creates a node; without `acl` it is open to everyone, as upstream nerve makes it. */
  public create(path: string, data: Buffer, mode: number, acl: ZkAcl[] = OPEN_ACL): Promise<string> {
    const acls = acl.map((a) => new zookeeper.ACL(a.perms, new zookeeper.Id(a.scheme, a.id)));
    return this.call<string>('create', path, (c, cb) => c.create(path, data, acls, mode, (e, created) => cb(e, created)));
  }

  public remove(path: string): Promise<void> {
    return this.call<void>('delete', path, (c, cb) => c.remove(path, -1, (e) => cb(e, undefined)));
  }

  /** The node's ACL. */
  public getAcl(path: string): Promise<ZkAcl[]> {
    return this.call<ZkAcl[]>('getACL', path, (c, cb) => c.getACL(path, (e, acl) => cb(e, (acl ?? []).map(plainAcl))));
  }

  /** The node's metadata, or undefined when it does not exist. */
  public exists(path: string, watcher?: ZkWatcher): Promise<zookeeper.Stat | undefined> {
    return this.call<zookeeper.Stat | undefined>('exists', path, (c, cb) => {
      const done = (e: Error | zookeeper.Exception | null, stat: zookeeper.Stat): void => cb(e, stat ?? undefined);
      if (watcher) c.exists(path, watcher, done);
      else c.exists(path, done);
    });
  }

  public getData(path: string, watcher?: ZkWatcher): Promise<ZkNodeData> {
    return this.call<ZkNodeData>('get', path, (c, cb) => {
      const done = (e: Error | zookeeper.Exception | null, data: Buffer, stat: zookeeper.Stat): void => cb(e, { data: data ?? Buffer.alloc(0), stat });
      if (watcher) c.getData(path, watcher, done);
      else c.getData(path, done);
    });
  }

  public getChildren(path: string, watcher?: ZkWatcher): Promise<string[]> {
    return this.call<string[]>('children', path, (c, cb) => {
      const done = (e: Error | zookeeper.Exception | null, children: string[]): void => cb(e, children);
      if (watcher) c.getChildren(path, watcher, done);
      else c.getChildren(path, done);
    });
  }

  /** Creates the path and its missing parents as empty persistent nodes. */
  public mkdirp(path: string): Promise<void> {
    return this.call<void>('mkdirp', path, (c, cb) => c.mkdirp(path, (e) => cb(e, undefined)));
  }

  private newClient(): void {
    const client = zookeeper.createClient(this.connectString, {
      sessionTimeout: this.sessionTimeoutMs,
      spinDelay: this.spinDelayMs,
      retries: 0,
    });
    this.client = client;
    this.freshSession = true;
    // Before connecting, so the client sends them ahead of any request on every connection.
    for (const c of this.identities) client.addAuthInfo(c.scheme, zookeeperAuthData(c));
    discardPartialFrameOnDisconnect(client);
    guardAgainstMisreadFrames(client, (e) => {
      this.protocolErrors += 1;
      this.log?.warn('zookeeper client misread a reply; reconnecting within the session', { error: e });
    });
    this.setState('connecting');
    this.startWatchdog();
    client.on('connected', () => {
      if (client !== this.client) return;
      const newSession = this.freshSession;
      if (newSession) this.sessions += 1;
      this.freshSession = false;
      this.setState('connected');
      this.log?.info(newSession ? 'zookeeper session established' : 'zookeeper connection restored', {
        session: client.getSessionId().toString('hex'),
        generation: this.sessions,
        timeout_ms: client.getSessionTimeout(),
      });
      this.lastAnswerAt = Date.now();
      const event: ZkConnectedEvent = { newSession, generation: this.sessions };
      this.emit('connected', event);
    });
    client.on('disconnected', () => {
      if (client !== this.client || this.currentState !== 'connected') return;
      this.disconnects += 1;
      this.setState('disconnected');
      this.log?.warn('zookeeper connection lost; reconnecting');
      this.emit('disconnected');
    });
    const replace = (why: string): void => {
      if (client !== this.client || this.closing) return;
      this.expirations += 1;
      this.setState('expired');
      this.log?.warn(`zookeeper session ${why}; starting a new session`);
      this.emit('expired');
      client.removeAllListeners();
      this.newClient();
    };
    client.on('expired', () => replace('expired'));
    client.on('authenticationFailed', () => {
      if (client !== this.client || this.closing) return;
      // The ensemble does not accept the scheme (digest auth switched off, say): retrying at once
      // would only hammer it, so the next session waits, longer each time, up to 30 s.
      this.authFailures += 1;
      const delayMs = refusedRetryMs(this.authFailures);
      this.setState('expired');
      this.log?.error('zookeeper refused the credentials; trying a new session later', { users: this.users, retry_ms: delayMs });
      this.emit('expired');
      client.removeAllListeners();
      client.close();
      this.authRetryTimer = setTimeout(() => {
        if (!this.closing) this.newClient();
      }, delayMs);
    });
    client.connect();
  }

  /**
   * A server that stops answering without closing the connection (a frozen VM, a dropped route)
   * would leave the client waiting forever: the client library has no read timeout. When nothing
   * has answered for a third of the session timeout, a cheap read probes; if that goes
   * unanswered too, the connection is dropped so the client moves to another member.
   * The same bound applies to the handshake (see {@link checkHandshake}).
   */
  private startWatchdog(): void {
    if (this.watchdog) return;
    const idleMs = Math.max(500, Math.floor(this.sessionTimeoutMs / 3));
    this.watchdog = setInterval(() => {
      if (!this.connected) {
        this.checkHandshake(idleMs);
        return;
      }
      if (this.probing || Date.now() - this.lastAnswerAt < idleMs) return;
      const client = this.client;
      this.probing = true;
      const timer = setTimeout(() => {
        this.probing = false;
        if (client !== this.client || !this.connected) return;
        this.log?.warn('zookeeper member stopped answering; dropping the connection', { silent_ms: Date.now() - this.lastAnswerAt });
        dropConnection(client);
      }, idleMs);
      client?.exists('/', (e) => {
        clearTimeout(timer);
        this.probing = false;
        if (!e || e instanceof zookeeper.Exception) this.lastAnswerAt = Date.now();
      });
    }, Math.max(250, Math.floor(idleMs / 2)));
    this.watchdog.unref();
  }

  /**
   * A member that is still starting can accept a connection and never answer its handshake (seen
   * with a restarted ZooKeeper 3.8). The client library stops its connect timer once the socket
   * opens, so it would wait until the session is gone; a handshake open longer than `idleMs` is
   * dropped instead and the client tries again.
   */
  private checkHandshake(idleMs: number): void {
    // Not public API: the connection manager's state and socket.
    const manager = (this.client as unknown as { connectionManager?: { state: number; socket?: { connecting: boolean; destroyed: boolean } } } | undefined)?.connectionManager;
    const socket = manager?.socket;
    if (!manager || !socket || socket.connecting || socket.destroyed || manager.state !== CONNECTING_STATE) {
      this.handshake = undefined;
      return;
    }
    if (this.handshake?.socket !== socket) {
      this.handshake = { socket, since: Date.now() };
      return;
    }
    const waited = Date.now() - this.handshake.since;
    if (waited < idleMs) return;
    this.handshake = undefined;
    this.log?.warn('zookeeper member accepted the connection but did not answer the handshake; trying again', { waited_ms: waited });
    dropConnection(this.client);
  }

  private setState(state: ZkConnectionState): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.emit('state', state);
  }

  /** Runs one request on the current client with a deadline; fails fast when not connected. */
  private call<T>(operation: string, path: string, run: (client: zookeeper.Client, done: (e: Error | zookeeper.Exception | null, value: T) => void) => void): Promise<T> {
    const client = this.client;
    const what = `${operation} ${path}`;
    if (!client || !this.connected) return Promise.reject(new ZkError(`${what}: not connected to ZooKeeper (${this.currentState})`, undefined, operation, path));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new ZkError(`${what}: no answer within ${this.operationTimeoutMs} ms`, undefined, operation, path));
      }, this.operationTimeoutMs);
      try {
        run(client, (e, value) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (!e || e instanceof zookeeper.Exception) this.lastAnswerAt = Date.now();
          if (e) reject(new ZkError(`${what}: ${String(e)}`, e instanceof zookeeper.Exception ? e.getCode() : undefined, operation, path));
          else resolve(value);
        });
      } catch (e) {
        settled = true;
        clearTimeout(timer);
        reject(new ZkError(`${what}: ${(e as Error).message}`, undefined, operation, path));
      }
    });
  }
}

export const CreateMode = zookeeper.CreateMode;

/** The library's ACL objects carry `permission`, though its typings say `perms`. */
function plainAcl(a: zookeeper.ACL): ZkAcl {
  const perms = (a as unknown as { permission?: number }).permission ?? a.perms;
  return { perms, scheme: a.id.scheme, id: a.id.id };
}

/**
 * node-zookeeper-client keeps a partly received frame across a reconnect and glues the next
 * connection's bytes to it, which misreads every later reply (seen as "Unknown code" errors
 * thrown from its socket handler). Dropping the fragment when a connection ends avoids that.
 */
function discardPartialFrameOnDisconnect(client: zookeeper.Client): void {
  // Not public API: the connection manager is an EventEmitter with a `state` event and the buffer.
  const manager = (client as unknown as { connectionManager?: { pendingBuffer: Buffer | null; on(event: 'state', listener: (state: number) => void): void } }).connectionManager;
  manager?.on('state', (state: number) => {
    if (state === DISCONNECTED_STATE) manager.pendingBuffer = null;
  });
}

/**
 * The client library parses replies inside its socket's `data` handler and throws on a reply it
 * misreads (a known upstream issue: "Unknown code: <n>", for instance when a handshake answer
 * arrives while it is closing). Thrown there, the error would end the agent. Caught here, the
 * connection is dropped instead and the client reconnects within the same session.
 */
function guardAgainstMisreadFrames(client: zookeeper.Client, onError: (e: Error) => void): void {
  // Not public API: the handler is bound from this property when each socket is created.
  const manager = (client as unknown as { connectionManager?: {
    pendingBuffer: Buffer | null;
    socket?: { destroy(): void };
    onSocketData(buffer: Buffer): void;
  } }).connectionManager;
  if (!manager || typeof manager.onSocketData !== 'function') return;
  const original = manager.onSocketData;
  manager.onSocketData = function guarded(buffer: Buffer): void {
    try {
      original.call(manager, buffer);
    } catch (e) {
      manager.pendingBuffer = null;
      manager.socket?.destroy();
      onError(e as Error);
    }
  };
}

/** The connection manager's DISCONNECTED and CONNECTING state codes. */
const DISCONNECTED_STATE = 0;
const CONNECTING_STATE = 1;

/** Closes the client's current socket; the client then reconnects within the same session. */
function dropConnection(client: zookeeper.Client | undefined): void {
  // Not public API: node-zookeeper-client keeps its socket on `connectionManager`.
  const internals = client as unknown as { connectionManager?: { socket?: { destroy(): void } } } | undefined;
  internals?.connectionManager?.socket?.destroy();
}
