import { spawnSync } from 'child_process';
import { failedSteps } from '../lib/fleet/apply-diagnosis';
import { renderTemplate } from '../lib/render/template';

/** The steps script as a host runs it, with the given steps and nothing else. */
function runSteps(steps: Array<{ description: string; script: string }>): string {
  const script = renderTemplate('host-steps.sh', {
    packages: [],
    filesystems: [],
    steps: steps.map((s) => ({ quotedDescription: `'${s.description}'`, script: s.script })),
    units: [],
  });
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

describe('failedSteps reads the steps script\'s own failure lines', () => {
  const host = spawnSync('hostname', { encoding: 'utf8' }).stdout.trim();

  test('a step that calls fail: host, step and cause', () => {
    const output = runSteps([
      { description: 'first', script: 'true' },
      { description: 'zookeeper member 2 rejoins the quorum', script: 'fail "no quorum within 300 s (mode: none)"' },
    ]);
    expect(failedSteps(`terraform_data.zk2 (remote-exec): ${output}`)).toEqual([
      { host, step: 'zookeeper member 2 rejoins the quorum', cause: 'no quorum within 300 s (mode: none)' },
    ]);
  });

  test('a command that fails under set -e: its exit status, in the step it was in', () => {
    const output = runSteps([{ description: 'units active', script: 'false' }]);
    expect(failedSteps(output)).toEqual([{ host, step: 'units active', cause: 'exit status 1' }]);
  });

  test('an apply where every step passed names none', () => {
    expect(failedSteps(runSteps([{ description: 'only', script: 'echo fine' }]))).toEqual([]);
  });
});
