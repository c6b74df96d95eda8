import { Aspects, TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';

// Work that needs every construct of the app to exist: a sidecar's part of the host documents
// depends on services that may be created after it. It runs once, in the order it was deferred,
// before anything reads a document: a rendering, a validation, or the synthesis. Keyed by the app,
// since work of one stack can change hosts of another.
const pending = new WeakMap<IConstruct, Array<() => void>>();
const running = new WeakSet<IConstruct>();
const stacksThatRun = new WeakSet<TerraformStack>();

/** Defers work until the app's documents are first read. */
export function deferUntilRead(scope: IConstruct, work: () => void): void {
  const root = scope.node.root;
  let list = pending.get(root);
  if (!list) pending.set(root, (list = []));
  list.push(work);
}

/** Runs the app's deferred work, if any is left; a no-op inside that work. */
export function runDeferred(scope: IConstruct): void {
  const root = scope.node.root;
  const list = pending.get(root);
  if (!list || list.length === 0 || running.has(root)) return;
  running.add(root);
  try {
    while (list.length > 0) list.shift()!();
  } finally {
    running.delete(root);
  }
}

/**
 * Runs the deferred work when the scope's stack is synthesized, before any of its resources is
 * rendered (aspects run first, in `app.synth()` and in `Testing.synth`): resources read plain
 * fields such as `dependsOn`, which no lazy value would update in time.
 */
export function runDeferredAtSynth(scope: IConstruct): void {
  const stack = TerraformStack.of(scope);
  if (stacksThatRun.has(stack)) return;
  stacksThatRun.add(stack);
  Aspects.of(stack).add({ visit: (node) => (node === stack ? runDeferred(stack) : undefined) });
}
