/** The YAML written for cloud-init against PyYAML itself (Debian's python3-yaml, which cloud-init loads). */
import { spawnSync } from 'child_process';
import { parse } from 'yaml';
import { isYaml11Implicit, stringifyYaml11 } from '../lib/cloud-init/yaml-1-1';

// Scalars YAML 1.1 resolves to another type, and near misses that stay strings.
const IMPLICIT = ['on', 'Off', 'YES', 'no', 'true', 'FALSE', '~', 'null', 'Null', '', '0644', '0_7', '0b10', '-0x1f', '+12', '1_000', '1:20',
  '-190:20:30', '1:20.5', '1.', '1.5e+3', '.5', '.inf', '-.Inf', '.NaN', '2001-01-01', '2001-1-1 1:02:03', '2001-12-14t21:59:43.10-05:00', '=', '<<'];
const STRINGS = ['y', 'n', 'onn', 'nulls', '0x', '+.5', '1.5e3x', '1:60', '2001-01-1', '==', '<<<', 'a<<', '. inf', 'ExecStart=/bin/sh'];

/** What PyYAML makes of each plain scalar: its Python type's name. */
function pyYamlTypes(scalars: string[]): string[] {
  const program = 'import json, sys, yaml\nprint(json.dumps([type(yaml.safe_load(s)).__name__ for s in json.load(sys.stdin)]))';
  const r = spawnSync('/usr/bin/python3', ['-c', program], { input: JSON.stringify(scalars), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 with PyYAML could not run (${r.stderr}): install cloud-init, which brings python3-yaml`);
  return JSON.parse(r.stdout) as string[];
}

test('the scalars taken for YAML 1.1 types are exactly those PyYAML reads as another type', () => {
  const all = [...IMPLICIT, ...STRINGS];
  // '<<' and '=' are not values PyYAML loads on their own: they are its merge and value types.
  const pyYamlSays = pyYamlTypes(all.filter((s) => s !== '<<' && s !== '='));
  const ours = all.filter((s) => s !== '<<' && s !== '=').map((s) => (isYaml11Implicit(s) ? 'other' : 'str'));
  expect(ours).toEqual(pyYamlSays.map((t) => (t === 'str' ? 'str' : 'other')));
  expect(STRINGS.filter(isYaml11Implicit)).toEqual([]);
  expect(IMPLICIT.filter((s) => !isYaml11Implicit(s))).toEqual([]);
});

test('every such string is written quoted, and PyYAML and YAML 1.2 read back the same strings', () => {
  const values = [...IMPLICIT, ...STRINGS, 'a\tb', 'a\rb', 'line\nline\n'];
  const text = stringifyYaml11({ values });
  expect(parse(text)).toEqual({ values });
  const r = spawnSync('/usr/bin/python3', ['-c', 'import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: text, encoding: 'utf8' });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  expect(JSON.parse(r.stdout)).toEqual({ values });
  for (const value of IMPLICIT) expect(text).toContain(`- ${JSON.stringify(value)}\n`);
});
