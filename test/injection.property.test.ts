/**
 * Arbitrary strings into every string property of the constructs: each is either refused with a
 * ValidationError that names the construct, the field and the value, or the rendered files keep
 * the structure they have with a known-good value (no extra line, directive, YAML key, file or
 * Terraform interpolation). The real programs' verdicts on the accepted values are in
 * injection.real.test.ts.
 */
import * as fc from 'fast-check';
import { fileContent } from './support/cloud-config-files';
import { attempt, InjectionTarget, namesField, structure, TARGETS, valuesFor } from './support/injection-targets';
import { fuzzParameters } from './support/fuzz-parameters';

const RUNS = 25;

describe('a string property either refuses a value by name or keeps every rendered file in shape', () => {
  test.each(TARGETS.map((t) => [`${t.kind} ${t.field}`, t] as const))('%s', (_name, target: InjectionTarget) => {
    const sample = attempt(target, target.sample);
    if (!sample.world) throw sample.error!;
    const baseline = structure(sample.world, target, target.sample);
    fc.assert(
      fc.property(valuesFor(target), (value) => {
        const { world, error } = attempt(target, value);
        if (error) {
          if (!namesField(target, error, value)) {
            throw new Error(`${target.field} = ${JSON.stringify(value)} was refused without naming ${target.kind}, the field and the value: ${error.message}`);
          }
          return;
        }
        expect({ field: target.field, value, structure: structure(world!, target, value) }).toEqual({ field: target.field, value, structure: baseline });
        if (target.literal) expect(fileContent(world!.userData, '/etc/app.conf')).toBe(value);
      }),
      fuzzParameters(RUNS),
    );
  });
});
