import { spawnSync } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parse } from 'yaml';
import { synthesizeExample } from './support/example-synth';
import { fileContent, writtenFiles } from './support/cloud-config-files';

const dir = mkdtempSync(join(tmpdir(), 'smartstack-cloud-init-'));

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error) throw new Error(`${command} could not run (${result.error.message}): install the Debian package that provides it`);
  return result;
}

describe('synthesized cloud-init documents, checked by the real tools', () => {
  const { documents } = synthesizeExample();

  test.each(documents.map((d) => [d.hostname, d] as const))('%s: cloud-init schema accepts the document', (hostname, doc) => {
    const file = join(dir, `${hostname}.user-data`);
    writeFileSync(file, doc.userData);
    const result = run('cloud-init', ['schema', '--config-file', file]);
    expect(`${result.stdout}${result.stderr}`).toContain('Valid cloud-config');
    expect(result.status).toBe(0);
    // cloud-init schema accepts unknown top-level keys silently: check we only use known ones.
    const known = ['disable_root', 'ssh_deletekeys', 'apt', 'package_update', 'packages', 'fs_setup', 'mounts', 'write_files', 'runcmd'];
    expect(Object.keys(parse(doc.userData)).filter((k) => !known.includes(k))).toEqual([]);
  });

  test('cloud-init schema rejects a broken document (the check can fail)', () => {
    const file = join(dir, 'broken.user-data');
    writeFileSync(file, '#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 644\n');
    expect(run('cloud-init', ['schema', '--config-file', file]).status).not.toBe(0);
  });

  const withFirewall = documents.filter((d) => writtenFiles(d.userData).has('/etc/smartstack/nftables.nft'));

  test('every host that serves a port has a firewall ruleset; a consumer-only host has none', () => {
    expect(withFirewall.map((d) => d.hostname)).toEqual(['app1', 'app2', 'zk1', 'zk2', 'zk3']);
  });

  test.each(withFirewall.map((d) => [d.hostname, d] as const))('%s: nft accepts the firewall ruleset', (hostname, doc) => {
    const file = join(dir, `${hostname}.nft`);
    writeFileSync(file, fileContent(doc.userData, '/etc/smartstack/nftables.nft'));
    const result = run('nft', ['-c', '-f', file]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  test.each(documents.map((d) => [d.hostname, d] as const))('%s: the apply script parses as POSIX sh', (hostname, doc) => {
    const file = join(dir, `${hostname}.apply.sh`);
    writeFileSync(file, doc.applyScript);
    const result = run('sh', ['-n', file]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
