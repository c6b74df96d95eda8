import { mkdtempSync, readFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Testing, TerraformStack } from 'cdktf';
import { VdsNode } from '../lib';
import { readSynthesizedDocuments } from '../lib/cloud-init/synthesized-documents';
import { buildManifest } from '../lib/mesh-manifest';
import { layOutLoopbackHosts } from '../lib/local/loopback-host';

describe('layOutLoopbackHosts', () => {
  const stack = new TerraformStack(Testing.app(), 'test');
  const app1 = new VdsNode(stack, 'app1', { privateAddress: '10.10.0.21', memoryMiB: 1024 });
  new VdsNode(stack, 'app2', { privateAddress: '10.10.0.22', memoryMiB: 1024 });
  app1.cloudConfig.addFile({
    path: '/etc/demo/demo.cfg',
    content: 'bind 127.0.0.1:3210\npeer=10.10.0.22:8080\nslot 0.0.0.0:0\nnet 10.10.0.0/24\nstate-file /var/lib/demo/state\nsocket "/run/demo.sock"\nbinary /usr/sbin/demo\nurl http://localhost/etc/x\n',
  });
  const terraform = JSON.parse(Testing.synth(stack));
  const documents = readSynthesizedDocuments({ manifest: buildManifest(stack), terraform });
  const workdir = mkdtempSync(join(tmpdir(), 'smartstack-layout-'));
  const [h1, h2] = layOutLoopbackHosts(documents, workdir, '127.88');

  test('gives each host its own loopback address, for its private address and its own localhost', () => {
    expect([h1.hostname, h1.privateAddress, h1.address]).toEqual(['app1', '10.10.0.21', '127.88.0.1']);
    expect([h2.hostname, h2.address]).toEqual(['app2', '127.88.0.2']);
    const cfg = h1.files.get('/etc/demo/demo.cfg')!;
    expect(cfg).toContain('bind 127.88.0.1:3210\n');
    expect(cfg).toContain('peer=127.88.0.2:8080\n');
    expect(cfg).toContain('url http://127.88.0.1/etc/x\n');
  });

  test('leaves wildcard addresses, networks and shared directories alone and moves host directories', () => {
    const cfg = h1.files.get('/etc/demo/demo.cfg')!;
    expect(cfg).toContain('slot 0.0.0.0:0\n');
    expect(cfg).toContain('net 10.10.0.0/24\n');
    expect(cfg).toContain('binary /usr/sbin/demo\n');
    expect(cfg).toContain(`state-file ${join(workdir, 'app1', 'var/lib/demo/state')}\n`);
    expect(cfg).toContain(`socket "${join(workdir, 'app1', 'run/demo.sock')}"\n`);
  });

  test('writes every file under the host root', () => {
    expect(readFileSync(h1.hostPath('/etc/demo/demo.cfg'), 'utf8')).toBe(h1.files.get('/etc/demo/demo.cfg'));
    expect(JSON.parse(readFileSync(h2.hostPath('/etc/smartstack/host.json'), 'utf8'))).toMatchObject({ hostname: 'app2', privateAddress: '127.88.0.2' });
    expect(h1.hostPath('/usr/bin/java')).toBe('/usr/bin/java');
  });
});
