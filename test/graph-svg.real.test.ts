/** `smartstack graph --format svg` through the real Graphviz `dot` (Debian package graphviz). */
import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { buildApp } from '../examples/main';

test('the default example as SVG: every host, address and service is drawn', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'smartstack-graph-svg-'));
  buildApp(outdir).synth();
  const file = join(outdir, 'mesh.svg');
  const r = spawnSync(process.execPath, [join(__dirname, '..', 'bin', 'smartstack'), 'graph', outdir, '--format', 'svg', '-o', file], { encoding: 'utf8', timeout: 60000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const svg = readFileSync(file, 'utf8');
  expect(svg).toMatch(/<svg [^>]*viewBox=/);
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1].replace(/&#(\d+);/g, (_e, code: string) => String.fromCharCode(Number(code))));
  for (const text of ['app1', 'app2', 'web1', 'zk1', 'zk2', 'zk3', '10.10.0.55', '10.10.0.30', 'user-service', 'ZooKeeper ensemble', 'provides :8080', 'consumes on localhost:3210']) {
    expect(texts).toContain(text);
  }
});
