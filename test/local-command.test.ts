import { spawnSync } from 'child_process';
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

// Runs the built command, as a user would (npm test builds before jest runs).
const bin = join(__dirname, '..', 'bin', 'smartstack');

describe('smartstack local', () => {
  test('says plainly when there is nothing synthesized to run, and exits 2', () => {
    const empty = mkdtempSync(join(tmpdir(), 'smartstack-empty-'));
    const result = spawnSync(process.execPath, [bin, 'local', empty], { encoding: 'utf8', timeout: 30000 });
    expect(result.stderr.split('\n')[0]).toBe(`smartstack local: ${empty} holds no synthesized stack: run cdktf synth first`);
    expect(result.status).toBe(2);
  });
});
