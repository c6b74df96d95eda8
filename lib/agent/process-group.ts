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
