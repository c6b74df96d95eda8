import { readFileSync } from 'fs';

/**
 * A process as recorded by the harness: its PID plus its start time (field 22 of /proc/PID/stat),
 * so a recycled PID is never mistaken for the one recorded.
 */
export interface ProcessRef {
  readonly pid: number;
  readonly startTime: string;
}

/** The reference of a running process, or undefined when it is gone. */
export function processRef(pid: number): ProcessRef | undefined {
  const startTime = startTimeOf(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

/** True when the recorded process still runs (same PID, same start time) and is not a zombie. */
export function isAlive(ref: ProcessRef): boolean {
  const stat = statFields(ref.pid);
  return stat !== undefined && stat[19] === ref.startTime && stat[0] !== 'Z';
}

/** A signal (SIGKILL unless told) to the recorded process, only if it is still that process. Returns whether it was sent. */
export function killRecorded(ref: ProcessRef, signal: NodeJS.Signals | number = 'SIGKILL'): boolean {
  if (!isAlive(ref)) return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits (polling, bounded) until the recorded process is gone. Returns false on timeout. */
export async function waitGone(ref: ProcessRef, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(ref)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function startTimeOf(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Fields of /proc/PID/stat after the command name: [0] is the state, [19] the start time. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: split after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  } catch {
    return undefined;
  }
}

/**
 * The container's init among a systemd-nspawn process's children: the one that is PID 1 of its own PID
 * namespace. Undefined when there is none (not started yet, or gone).
 */
export function containerInitOf(nspawnPid: number): ProcessRef | undefined {
  let children: string[];
  try {
    children = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  }
  for (const child of children) {
    try {
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1].trim().split(/\s+/);
      if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === '1') return processRef(Number(child));
    } catch {
      // exited in between
    }
  }
  return undefined;
}
