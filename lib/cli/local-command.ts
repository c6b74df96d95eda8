import { existsSync, readdirSync, statSync } from 'fs';
import { join } from 'path';
import { LocalMesh } from '../local/local-mesh';
import { renderMeshStatus } from '../local/mesh-status-table';
import { closestName, ParsedCommand, UsageError } from './command-line';

/** The placeholders `--backend-command` may use. */
const BACKEND_PLACEHOLDERS = ['address', 'port', 'service', 'instance'];

/** What the options name must exist before anything starts: refused here, naming the option. */
function checkOptions(outdir: string, stack: string | undefined, backendCommand: string | undefined, workdir: string | undefined): void {
  if (!existsSync(outdir) || !statSync(outdir).isDirectory()) throw new UsageError(`OUTDIR ${outdir}: no such folder; run cdktf synth first, or name the folder it wrote`, 'local');
  const stacksDir = join(outdir, 'stacks');
  const stacks = existsSync(stacksDir) ? readdirSync(stacksDir).sort() : [];
  if (stack !== undefined && !stacks.includes(stack)) {
    const suggestion = closestName(stack, stacks);
    const known = stacks.length === 0 ? `${outdir} holds no synthesized stack` : `the stacks in ${outdir} are ${stacks.join(', ')}`;
    throw new UsageError(`--stack ${stack}: no such stack; ${suggestion ? `did you mean '${suggestion}'? ` : ''}${known}`, 'local');
  }
  for (const [, name] of (backendCommand ?? '').matchAll(/\{([^{}\s]*)\}/g)) {
    if (BACKEND_PLACEHOLDERS.includes(name)) continue;
    const suggestion = closestName(name, BACKEND_PLACEHOLDERS);
    throw new UsageError(
      `--backend-command: unknown placeholder {${name}}${suggestion ? `; did you mean {${suggestion}}?` : ''} (the placeholders are ${BACKEND_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`,
      'local',
    );
  }
  if (workdir !== undefined && existsSync(workdir) && !statSync(workdir).isDirectory()) throw new UsageError(`--workdir ${workdir}: exists and is not a folder`, 'local');
}

/**
 * `smartstack local`: starts the mesh, shows its status until interrupted, then stops everything
 * it started and removes what it created.
 */
export async function runLocal(args: ParsedCommand): Promise<number> {
  const outdir = args.positionals[0] ?? 'cdktf.out';
  const option = (name: string) => args.values[name] as string | undefined;
  checkOptions(outdir, option('stack'), option('backend-command'), option('workdir'));
  let mesh: LocalMesh;
  try {
    mesh = new LocalMesh({
      outdir,
      stack: option('stack'),
      workdir: option('workdir'),
      backendCommand: option('backend-command'),
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
