import { spawnSync } from 'child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { AGENT_FILES, AGENT_FOLDERS, agentsPackage, buildAgentsPackage, prebuiltAgentsPackage, writeAgentsPackage } from '../lib/cloud-init/agents-package';

/** The agents' package a sidecar host receives, unpacked by GNU tar and run with nothing else around it. */
describe("the agents' package", () => {
  const work = mkdtempSync(join(tmpdir(), 'smartstack-agents-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test('is the same bytes when built twice, and its checksum is what it says', () => {
    const again = buildAgentsPackage(join(__dirname, '..'));
    expect(again.archive.equals(agentsPackage().archive)).toBe(true);
    expect(spawnSync('sha256sum', { input: again.archive, encoding: 'utf8' }).stdout.split(' ')[0]).toBe(again.sha256);
  });

  test("the build's archive is the one a synthesis would make, and is not used once a file it is made of is newer", () => {
    // A copy of the package's files inside the repository, so that its dependencies resolve as here.
    const root = mkdtempSync(join(__dirname, '..', '.tmp-agents-'));
    try {
      cpSync(join(__dirname, '..', 'package.json'), join(root, 'package.json'));
      cpSync(join(__dirname, '..', 'bin'), join(root, 'bin'), { recursive: true });
      for (const file of AGENT_FILES.filter((f) => f.startsWith('lib/'))) cpSync(join(__dirname, '..', file), join(root, file), { recursive: true });
      for (const folder of AGENT_FOLDERS) cpSync(join(__dirname, '..', folder), join(root, folder), { recursive: true });
      const written = writeAgentsPackage(root);
      const prebuilt = prebuiltAgentsPackage(root);
      expect(prebuilt?.sha256).toBe(written.sha256);
      expect(prebuilt!.archive.equals(buildAgentsPackage(root).archive)).toBe(true);
      const later = new Date(Date.now() + 60_000);
      utimesSync(join(root, 'lib', 'agent', 'nerve.js'), later, later);
      expect(prebuiltAgentsPackage(root)).toBeUndefined();
      // Another version of the package has no archive of its own yet: it is built, not taken.
      writeAgentsPackage(root);
      const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(root, 'package.json'), JSON.stringify({ ...manifest, version: '9.9.9' }));
      utimesSync(join(root, 'package.json'), new Date(0), new Date(0));
      expect(prebuiltAgentsPackage(root)).toBeUndefined();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('unpacks with tar and runs the agents without npm, a registry or the constructs', () => {
    const archive = join(work, 'agents.tgz');
    writeFileSync(archive, agentsPackage().archive);
    const listing = spawnSync('tar', ['-tzvf', archive], { encoding: 'utf8' });
    expect(listing.status).toBe(0);
    // No owner of this machine and no timestamp: the same code gives the same archive anywhere.
    expect(listing.stdout.split('\n').filter(Boolean).every((line) => / root\/root .* 1970-01-01 00:00 package\//.test(line))).toBe(true);
    const dir = join(work, 'unpacked');
    spawnSync('mkdir', [dir]);
    expect(spawnSync('tar', ['-xzf', archive, '--no-same-owner', '-C', dir]).status).toBe(0);
    expect(readdirSync(join(dir, 'package', 'node_modules')).sort()).toEqual(['async', 'mustache', 'node-zookeeper-client', 'underscore', 'yaml']);

    // From a folder with no node_modules above it: only what the archive holds can be loaded.
    const run = (args: string[]) => spawnSync(process.execPath, [join(dir, 'package', 'bin', 'smartstack'), ...args], { cwd: work, encoding: 'utf8', env: { PATH: process.env.PATH } });
    const nerve = run(['nerve', '--config', join(work, 'missing.json')]);
    expect(nerve.status).toBe(2);
    expect(nerve.stderr).toContain('missing.json');
    expect(nerve.stderr).not.toContain('Cannot find module');
    // Every module it holds loads with what it holds: the explicit list left nothing out.
    const modules = listing.stdout.split('\n').map((line) => line.split(' ').pop()!).filter((path) => path.endsWith('.js') && !path.includes('/node_modules/'));
    const load = spawnSync(process.execPath, ['-e', 'for (const m of process.argv.slice(1)) require(m)', ...modules.map((m) => join(dir, m))], { cwd: work, encoding: 'utf8' });
    expect(load.stderr).toBe('');
    expect(load.status).toBe(0);
    const local = run(['local', 'cdktf.out']);
    expect({ status: local.status, stderr: local.stderr }).toEqual({
      status: 2,
      stderr: "smartstack local: not on this host: the agents' package holds nerve, synapse and status; run 'smartstack local' where the stack is synthesized\n",
    });
  });

  test('holds what the agents run and nothing of the constructs, the tools or the tests', () => {
    const paths = spawnSync('tar', ['-tzf', '-'], { input: agentsPackage().archive, encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    const ours = paths.filter((p) => !p.startsWith('package/node_modules/'));
    const folders = [...new Set(ours.map((p) => p.split('/').slice(1, -1).join('/')))].sort();
    expect(folders).toEqual(['', 'bin', 'lib/agent', 'lib/cli', 'lib/model', 'lib/render', 'lib/render/templates', 'lib/schema']);
    expect(ours.filter((p) => p.startsWith('package/lib/cli/'))).toEqual(['package/lib/cli/command-line.js', 'package/lib/cli/main.js']);
    const forbidden = /^package\/(lib\/(fleet|local|cloud-init)\/|lib\/[^/]+\.js$|test\/|bench\/|examples\/)|\.ts$/;
    expect(ours.filter((p) => forbidden.test(p))).toEqual([]);
  });
});
