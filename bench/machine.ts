/** What the figures were measured on: cores, memory, load, and the versions of the programs involved. */
import { cpus, freemem, loadavg, totalmem } from 'os';
import { runCommand } from './subprocess';

export interface MachineFacts {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryMiB: number;
  readonly freeMemoryMiB: number;
  /** 1-minute load average when the bench started: a busy machine explains noisy figures. */
  readonly loadAverage1m: number;
  readonly node: string;
  readonly haproxy: string;
  readonly wrk: string;
  readonly java: string;
  readonly zookeeper: string;
  readonly kernel: string;
}

async function firstLine(command: string, args: string[], pattern?: RegExp): Promise<string> {
  const r = await runCommand(command, args, 10_000);
  const text = `${r.stdout}\n${r.stderr}`;
  if (r.status === null && !text.trim()) return 'not installed';
  const line = pattern ? pattern.exec(text)?.[0] : text.split('\n').find((l) => l.trim() !== '');
  return (line ?? 'unknown').trim();
}

export async function machineFacts(): Promise<MachineFacts> {
  const [haproxy, wrk, java, zookeeper, kernel] = await Promise.all([
    firstLine('haproxy', ['-v'], /HAProxy version \S+/),
    firstLine('wrk', ['--version'], /wrk \S+/),
    firstLine('java', ['-version'], /version "[^"]+"/),
    firstLine('dpkg-query', ['-W', '-f', '${Version}', 'zookeeper']),
    firstLine('uname', ['-r']),
  ]);
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
    freeMemoryMiB: Math.round(freemem() / 1024 / 1024),
    loadAverage1m: Math.round(loadavg()[0] * 100) / 100,
    node: process.version,
    haproxy,
    wrk,
    java: java === 'not installed' ? java : `java ${java}`,
    zookeeper: /^\d/.test(zookeeper) ? `zookeeper ${zookeeper}` : 'not installed',
    kernel,
  };
}
