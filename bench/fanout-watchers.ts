/**
 * The two ways of watching a service's path that the fan-out benchmark compares, each on its own
 * ZooKeeper session and each counting its reads (a `getChildren` or a `getData` is one read):
 *
 * - `ours`: the agents' ZkServiceWatcher (child watch, cached registrations: one listing per change
 *   plus one read per new child);
 * - `reread-all`: the baseline, upstream synapse's way: on every child event, list the children and
 *   read every child's data again, one after the other.
 */
import { CoalescedRun } from '../lib/agent/coalesced-run';
import { Logger } from '../lib/agent/log';
import { ZkServiceWatcher } from '../lib/agent/zk-service-watcher';
import { ZkSession } from '../lib/agent/zk-session';

export type WatcherKind = 'ours' | 'reread-all';
export const WATCHER_KINDS: WatcherKind[] = ['ours', 'reread-all'];

/** One watcher: reports the set of children it knows each time it changes. */
export interface BenchWatcher {
  /** `getChildren` calls. */
  readonly lists: number;
  /** `getData` calls. */
  readonly gets: number;
  start(): void;
  stop(): void;
}

const SILENT = new Logger({ agent: 'bench' }, 'error', () => undefined);

export function createWatcher(kind: WatcherKind, session: ZkSession, path: string, onChildren: (children: string[]) => void): BenchWatcher {
  return kind === 'ours' ? new OursWatcher(session, path, onChildren) : new RereadAllWatcher(session, path, onChildren);
}

class OursWatcher implements BenchWatcher {
  public lists = 0;
  public gets = 0;
  private readonly watcher: ZkServiceWatcher;

  public constructor(session: ZkSession, path: string, onChildren: (children: string[]) => void) {
    this.watcher = new ZkServiceWatcher(session, path, SILENT, {
      onInstances: (instances) => onChildren(instances.map((i) => i.child)),
      onRead: (op) => {
        if (op === 'list') this.lists++;
        else this.gets++;
      },
    });
  }

  public start(): void {
    this.watcher.start();
  }

  public stop(): void {
    this.watcher.stop();
  }
}

/** Upstream synapse's ZooKeeper watcher, in outline: every event re-lists and re-reads everything. */
class RereadAllWatcher implements BenchWatcher {
  public lists = 0;
  public gets = 0;
  // A failed pass is retried on the next event or reconnect, as upstream does.
  private readonly run = new CoalescedRun(() => this.discover().catch(() => undefined));

  public constructor(private readonly session: ZkSession, private readonly path: string, private readonly onChildren: (children: string[]) => void) {}

  public start(): void {
    this.session.on('connected', this.kick);
    if (this.session.connected) this.kick();
  }

  public stop(): void {
    this.run.stop();
    this.session.off('connected', this.kick);
  }

  private readonly kick = (): void => this.run.request();

  private async discover(): Promise<void> {
    this.lists++;
    const children = await this.session.getChildren(this.path, () => this.kick());
    const found: string[] = [];
    for (const child of children) {
      this.gets++;
      try {
        const node = await this.session.getData(`${this.path}/${child}`);
        const data = JSON.parse(node.data.toString()) as { host?: unknown; port?: unknown };
        if (data.host !== undefined && data.port !== undefined) found.push(child);
      } catch {
        // Gone between the listing and the read, or not JSON: skipped, as upstream does.
      }
    }
    this.onChildren(found);
  }
}
