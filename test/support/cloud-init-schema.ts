/**
 * `cloud-init schema --config-file` for many documents in one process: cloud-init-schema.py runs
 * cloud-init's own validation under the interpreter cloud-init itself runs on.
 */
import { ChildProcessWithoutNullStreams, spawn, spawnSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';
import { createInterface } from 'readline';

export interface CloudInitVerdict {
  readonly ok: boolean;
  /** cloud-init's errors, when not ok. */
  readonly error: string;
  /** The document as cloud-init loaded it (its YAML 1.1 reader), when ok. */
  readonly config: unknown;
}

export class CloudInitSchema {
  /** Starts the validator; throws when cloud-init is not installed. */
  public static start(): CloudInitSchema {
    const which = spawnSync('sh', ['-c', 'command -v cloud-init'], { encoding: 'utf8' });
    const binary = which.stdout.trim();
    if (which.status !== 0 || binary === '') throw new Error('cloud-init is not on the PATH: install the Debian package cloud-init');
    // The interpreter and modules cloud-init itself uses, whatever python3 is first on the PATH.
    const shebang = /^#!\s*(\S+)/.exec(readFileSync(binary, 'utf8').split('\n')[0]);
    return new CloudInitSchema(spawn(shebang ? shebang[1] : 'python3', [join(__dirname, 'cloud-init-schema.py')]));
  }

  private readonly waiting = new Map<number, (verdict: CloudInitVerdict) => void>();
  private next = 0;
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const { id, ...verdict } = JSON.parse(line) as CloudInitVerdict & { id: number };
      this.waiting.get(id)?.(verdict);
      this.waiting.delete(id);
    });
    child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    child.on('exit', () => {
      for (const resolve of this.waiting.values()) resolve({ ok: false, error: `the cloud-init validator exited: ${this.stderr}`, config: undefined });
      this.waiting.clear();
    });
  }

  public check(document: string): Promise<CloudInitVerdict> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      if (this.child.exitCode !== null) return reject(new Error(`the cloud-init validator exited: ${this.stderr}`));
      this.waiting.set(id, resolve);
      this.child.stdin.write(JSON.stringify({ id, document }) + '\n');
    });
  }

  public close(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.stdin.end();
    });
  }
}
