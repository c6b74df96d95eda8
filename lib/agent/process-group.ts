import { ChildProcess } from 'child_process';

/**
 * Sends a signal to a whole process group: the group a child leads when spawned with `detached`,
 * so that what it started goes too. False when no process of the group is left (or pid is unknown).
 */
export function signalProcessGroup(pid: number | undefined, signal: NodeJS.Signals | 0): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Signals a process's whole group (it leads one: see spawn); false when none of it is left. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals | 0): boolean {
  return signalProcessGroup(child.pid, signal);
}

/**
 * Stops a process and everything in its group: the signal to the group, then SIGKILL to what is
 * left of it when the leader has not exited in time or the leader exited and left others behind.
 */
export async function stopProcessGroup(child: ChildProcess, timeoutMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const running = child.exitCode === null && child.signalCode === null;
  const exited = running ? new Promise<void>((resolve) => child.once('exit', () => resolve())) : Promise.resolve();
  if (!killGroup(child, signal) && !running) return;
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
  if ((await Promise.race([exited, timer])) === 'timeout') {
    killGroup(child, 'SIGKILL');
    await exited;
  }
  // The group outlives its leader when a shell's child ignored the signal or was slower to exit.
  const deadline = Date.now() + Math.min(timeoutMs, 5000);
  while (killGroup(child, 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  killGroup(child, 'SIGKILL');
}
