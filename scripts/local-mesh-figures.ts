/**
 * Prints the README's self-healing table: the default example on a local mesh, under load, through
 * every step of the end-to-end scenario.   npm run figures:local
 */
import { mkdtempSync } from 'fs';
import { cpus, tmpdir, totalmem } from 'os';
import { join } from 'path';
import { buildApp } from '../examples/main';
import { LocalMesh } from '../lib/local/local-mesh';
import { renderFigures, runSelfHealingScenario } from '../test/support/mesh-scenario';

async function main(): Promise<void> {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-figures-'));
  buildApp(outdir).synth();
  const mesh = new LocalMesh({ outdir, loopbackPrefix: '127.80' });
  try {
    await mesh.start();
    const figures = await runSelfHealingScenario(mesh, { consumer: 'web1', service: 'user-service', providers: ['app1', 'app2'], log: (l) => process.stderr.write(`${l}\n`) });
    process.stdout.write(`${renderFigures(figures)}\n\nMachine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}\n`);
  } finally {
    await mesh.stop();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
