import { LocalMesh } from '../local/local-mesh';
import { renderMeshStatus } from '../local/mesh-status-table';

/**
 * `smartstack local`: starts the mesh, shows its status until interrupted, then stops everything
 * it started and removes what it created.
 */
export async function runLocal(words: string[], flags: { [name: string]: string }): Promise<number> {
  let mesh: LocalMesh;
  try {
    mesh = new LocalMesh({
      outdir: words[1] ?? 'cdktf.out',
      stack: flags.stack,
      workdir: flags.workdir,
      backendCommand: flags['backend-command'],
      log: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (e) {
    // What was synthesized, or what this machine lacks: the message says what to do.
    process.stderr.write(`smartstack local: ${(e as Error).message}\n`);
    return 2;
  }
  const generated = Object.keys(mesh.variables);
  if (generated.length > 0) process.stderr.write(`random values for this run, for the secrets the hosts derive their credentials from: ${generated.join(', ')}\n`);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= mesh.stop());
  const interrupted = new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
  });
  try {
    await Promise.race([mesh.start(), interrupted]);
    process.stderr.write(`local mesh running in ${mesh.workdir}; Ctrl-C stops it\n`);
    let previous = '';
    for (;;) {
      const table = renderMeshStatus(await mesh.status());
      if (table !== previous) {
        process.stdout.write((process.stdout.isTTY ? '\x1b[2J\x1b[H' : '\n') + table);
        previous = table;
      }
      const tick = new Promise<'tick'>((resolve) => setTimeout(() => resolve('tick'), 2000));
      if ((await Promise.race([tick, interrupted.then(() => 'stop' as const)])) === 'stop') break;
    }
    return 0;
  } finally {
    process.stderr.write('stopping the local mesh\n');
    await stop();
  }
}
