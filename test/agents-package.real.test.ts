import { spawnSync } from 'child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { agentsPackage, buildAgentsPackage } from '../lib/cloud-init/agents-package';

/** The agents' package a sidecar host receives, unpacked by GNU tar and run with nothing else around it. */
describe("the agents' package", () => {
  const work = mkdtempSync(join(tmpdir(), 'smartstack-agents-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test('is the same bytes when built twice, and its checksum is what it says', () => {
    const again = buildAgentsPackage(join(__dirname, '..'));
    expect(again.archive.equals(agentsPackage().archive)).toBe(true);
    expect(spawnSync('sha256sum', { input: again.archive, encoding: 'utf8' }).stdout.split(' ')[0]).toBe(again.sha256);
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
    const load = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', join(dir, 'package', 'lib', 'cli', 'main.js')], { cwd: work, encoding: 'utf8' });
    expect(load.stderr).toBe('');
    expect(load.status).toBe(0);
  });
});
