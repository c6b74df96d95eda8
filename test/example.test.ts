import { Testing } from 'cdktf';
import { OsloStack } from '../examples/main';
import { agentsPackage } from '../lib/cloud-init/agents-package';
import { synthesizeExample } from './support/example-synth';

describe('default example', () => {
  test('synthesizes the article topology (snapshot)', () => {
    const stack = new OsloStack(Testing.app(), 'oslo');
    // The agents' package is this code's own build: its checksum, and so every hash of a document that
    // names it, changes with any change to lib/. Determinism and the triggers are tested apart.
    const synthesized = Testing.synth(stack)
      .split(agentsPackage().sha256)
      .join('<agents sha256>')
      .replace(/\b[0-9a-f]{64}\b/g, '<sha256>')
      .replace(/smartstack-[0-9a-f]{16}\b/g, 'smartstack-<instance id>');
    expect(synthesized).toMatchSnapshot();
  });

  test('is deterministic: two syntheses give identical bytes', () => {
    const a = Testing.synth(new OsloStack(Testing.app(), 'oslo'));
    const b = Testing.synth(new OsloStack(Testing.app(), 'oslo'));
    expect(a).toBe(b);
  });

  test('holds a null_resource per host and the connection string output', () => {
    const stack = new OsloStack(Testing.app(), 'oslo');
    const synthesized = Testing.synth(stack);
    expect(synthesized).toHaveResourceWithProperties({ tfResourceType: 'null_resource' }, { connection: expect.objectContaining({ host: '10.10.0.11' }) });
    expect(synthesized).toHaveProvider({ tfResourceType: 'null' });
    expect(JSON.parse(synthesized).output.zk_connection_string.value).toBe('10.10.0.11:2181,10.10.0.12:2181,10.10.0.13:2181');
  });

  test('a full synth writes one document per host that reads back as rendered', () => {
    const { documents } = synthesizeExample();
    expect(documents.map((d) => d.hostname)).toEqual(['app1', 'app2', 'web1', 'zk1', 'zk2', 'zk3']);
    for (const d of documents) {
      expect(d.userData.startsWith('#cloud-config\n')).toBe(true);
      expect(d.applyScript).toContain(`local-hostname: ${d.hostname}`);
    }
  });
});
