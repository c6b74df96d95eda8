/**
 * A process hosting some of the fan-out benchmark's watchers, each with its own ZooKeeper session.
 * Driven over IPC by bench/fanout.ts:
 *
 *   → start {connect, path, kind, count, expect}   ← ready {ms, reads, listed}   (every watcher listed `expect` children)
 *   → await {id, child, change, timeoutMs}         ← seen {id, at[], reads}
 *   → stop                                          (closes the sessions and exits)
 *
 * Times are the machine's monotonic clock in ms, comparable with the driver's.
 */
import { ZkSession } from '../lib/agent/zk-session';
import { BenchWatcher, createWatcher, WatcherKind } from './fanout-watchers';
import { monotonicMs } from './stats';
import { sleep } from './subprocess';

export type WorkerCommand =
  | { type: 'start'; connect: string; path: string; kind: WatcherKind; count: number; expect: number; timeoutMs: number }
  | { type: 'await'; id: number; child: string; change: 'add' | 'remove'; timeoutMs: number; settleMs: number }
  | { type: 'stop' };

/** Cumulative reads of all this process's watchers. */
export interface ReadCount {
  readonly lists: number;
  readonly gets: number;
}

export type WorkerReply =
  | { type: 'ready'; ms: number; reads: ReadCount; listed: number }
  | { type: 'seen'; id: number; at: Array<number | null>; reads: ReadCount }
  | { type: 'error'; message: string };

/** What one watcher has seen. */
interface View {
  /** The children this watcher knows now. */
  known: Set<string>;
  /** When a child first appeared in, and last left, this watcher's view. */
  readonly added: Map<string, number>;
  readonly removed: Map<string, number>;
}

interface Watched {
  readonly session: ZkSession;
  readonly watcher: BenchWatcher;
  readonly view: View;
}

const watched: Watched[] = [];

function send(reply: WorkerReply): void {
  process.send?.(reply);
}

const totalReads = (): ReadCount => ({
  lists: watched.reduce((n, w) => n + w.watcher.lists, 0),
  gets: watched.reduce((n, w) => n + w.watcher.gets, 0),
});

async function start(cmd: Extract<WorkerCommand, { type: 'start' }>): Promise<void> {
  const t0 = monotonicMs();
  for (let i = 0; i < cmd.count; i++) {
    const session = new ZkSession(cmd.connect, { sessionTimeoutMs: 10_000, spinDelayMs: 200 });
    const view: View = { known: new Set(), added: new Map(), removed: new Map() };
    const watcher = createWatcher(cmd.kind, session, cmd.path, (children) => {
      const now = monotonicMs();
      const next = new Set(children);
      for (const c of next) if (!view.known.has(c) && !view.added.has(c)) view.added.set(c, now);
      for (const c of view.known) if (!next.has(c)) view.removed.set(c, now);
      view.known = next;
    });
    watched.push({ session, watcher, view });
  }
  // Connect all sessions, then start watching.
  const connected = await Promise.all(watched.map((w) => w.session.start(cmd.timeoutMs)));
  if (connected.some((c) => !c)) throw new Error(`${connected.filter((c) => !c).length} of ${cmd.count} sessions did not connect`);
  for (const w of watched) w.watcher.start();
  const deadline = Date.now() + cmd.timeoutMs;
  while (watched.some((w) => w.view.known.size < cmd.expect)) {
    if (Date.now() > deadline) {
      const short = watched.filter((w) => w.view.known.size < cmd.expect).length;
      throw new Error(`${short} of ${cmd.count} watchers did not list ${cmd.expect} children within ${cmd.timeoutMs} ms`);
    }
    await sleep(20);
  }
  send({ type: 'ready', ms: monotonicMs() - t0, reads: totalReads(), listed: Math.min(...watched.map((w) => w.view.known.size)) });
}

async function awaitChange(cmd: Extract<WorkerCommand, { type: 'await' }>): Promise<void> {
  const has = (w: Watched) => (cmd.change === 'add' ? w.view.added : w.view.removed).has(cmd.child);
  const deadline = Date.now() + cmd.timeoutMs;
  while (!watched.every(has) && Date.now() < deadline) await sleep(2);
  // Let stragglers' reads finish, so that they are counted with this change and not the next.
  await sleep(cmd.settleMs);
  const at = watched.map((w) => (cmd.change === 'add' ? w.view.added : w.view.removed).get(cmd.child) ?? null);
  send({ type: 'seen', id: cmd.id, at, reads: totalReads() });
}

async function stop(): Promise<void> {
  for (const w of watched) w.watcher.stop();
  await Promise.all(watched.map((w) => w.session.close(1000)));
  process.exit(0);
}

process.on('message', (cmd: WorkerCommand) => {
  const run = cmd.type === 'start' ? start(cmd) : cmd.type === 'await' ? awaitChange(cmd) : stop();
  run.catch((e: Error) => send({ type: 'error', message: e.stack ?? e.message }));
});
process.on('disconnect', () => process.exit(0));
