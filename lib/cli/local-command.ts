import { existsSync, statSync } from 'fs';
import { LocalMesh } from '../local/local-mesh';
import { renderMeshStatus } from '../local/mesh-status-table';
import { closestName, ParsedCommand, UsageError } from './command-line';
import { chooseStack } from './synth-output';

/** The placeholders `--backend-command` may use. */
const BACKEND_PLACEHOLDERS = ['address', 'port', 'service', 'instance'];

/** What the options name must exist before anything starts: refused here, naming the option. */
function checkOptions(outdir: string, stack: string | undefined, backendCommand: string | undefined, workdir: string | undefined, loopbackPrefix: string | undefined): void {
  chooseStack('local', outdir, stack);
  for (const [, name] of (backendCommand ?? '').matchAll(/\{([^{}\s]*)\}/g)) {
    if (BACKEND_PLACEHOLDERS.includes(name)) continue;
    const suggestion = closestName(name, BACKEND_PLACEHOLDERS);
    throw new UsageError(
      `--backend-command: unknown placeholder {${name}}${suggestion ? `; did you mean {${suggestion}}?` : ''} (the placeholders are ${BACKEND_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`,
      'local',
    );
  }
  if (loopbackPrefix !== undefined && !/^127\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(loopbackPrefix)) {
    throw new UsageError(`--loopback-prefix ${loopbackPrefix}: expected 127.N with N from 0 to 255, such as 127.77`, 'local');
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
  checkOptions(outdir, option('stack'), option('backend-command'), option('workdir'), option('loopback-prefix'));
  let mesh: LocalMesh;
  try {
    mesh = new LocalMesh({
      outdir,
      stack: option('stack'),
      workdir: option('workdir'),
      loopbackPrefix: option('loopback-prefix'),
      backendCommand: option('backend-command'),
      backendCwd: process.cwd(),
      log: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (e) {
    // What was synthesized, or what this machine lacks: the message says what to do.
    process.stderr.write(`smartstack local: ${(e as Error).message}\n`);
    return 2;
  }
  const generated = Object.keys(mesh.variables);
  if (generated.length > 0) process.stderr.write(`random values for this run, for the secrets the hosts derive their credentials from: ${generated.join(', ')}\n`);
  // Any of these stops everything the mesh started; a repeated one while stopping is ignored, so that
  // impatience cannot leave the processes behind.
  let received: NodeJS.Signals | undefined;
  const interrupted = new Promise<'stop'>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => {
        if (received !== undefined) process.stderr.write(`${signal}: already stopping the local mesh\n`);
        received ??= signal;
        resolve('stop');
      });
    }
  });
  try {
    const started = mesh.start().then(() => 'started' as const);
    // A start overtaken by a signal is abandoned; its failure (the mesh is stopping) is expected.
    started.catch(() => undefined);
    try {
      if ((await Promise.race([started, interrupted])) === 'stop') return 0;
    } catch (e) {
      process.stderr.write(`smartstack local: ${(e as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`local mesh running in ${mesh.workdir}; Ctrl-C (or SIGTERM, SIGHUP) stops it\n`);
    let previous = '';
    for (;;) {
      const table = renderMeshStatus(await mesh.status());
      if (table !== previous) {
        process.stdout.write((process.stdout.isTTY ? '\x1b[2J\x1b[H' : '\n') + table);
        previous = table;
      }
      const tick = new Promise<'tick'>((resolve) => setTimeout(() => resolve('tick'), 2000));
      if ((await Promise.race([tick, interrupted])) === 'stop') break;
    }
    return 0;
  } finally {
    process.stderr.write(`stopping the local mesh${received ? ` (${received})` : ''}\n`);
    await mesh.stop();
    process.stderr.write('the local mesh has stopped\n');
  }
}
