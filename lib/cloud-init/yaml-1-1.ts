import { Scalar, stringify } from 'yaml';

/**
 * YAML as cloud-init reads it: PyYAML, YAML 1.1. A plain scalar that YAML 1.1 resolves to another
 * type (`on`, `0644`, `1:20`, `2001-01-01`, `~`, `=`, `<<`, …) is read as that type, so every
 * string that would be one is written double-quoted. The patterns are YAML 1.1's implicit types as
 * PyYAML's resolver implements them (bool, float, int, merge, null, timestamp, value).
 */
const YAML_1_1_IMPLICIT = [
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  /^<<$/,
  /^(?:~|null|Null|NULL|)$/,
  /^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$/,
  /^=$/,
];

/** True when YAML 1.1 reads `text`, written as a plain scalar, as something other than that string. */
export function isYaml11Implicit(text: string): boolean {
  return YAML_1_1_IMPLICIT.some((pattern) => pattern.test(text));
}

/**
 * `value` as a YAML document that YAML 1.1 (PyYAML) and YAML 1.2 read as the same values.
 * PyYAML also refuses a tab in a plain scalar and turns a CR in a block scalar into a line break:
 * such strings are double-quoted too.
 */
export function stringifyYaml11(value: unknown): string {
  return stringify(quoted(value), {
    lineWidth: 0,
    version: '1.1',
    // The yaml package writes the string '<<' as a bare merge key whatever its style; without the
    // merge tag the double quotes chosen below are kept.
    customTags: (tags) => tags.filter((tag) => typeof tag === 'string' || tag.tag !== 'tag:yaml.org,2002:merge'),
  });
}

function quoted(value: unknown): unknown {
  if (typeof value === 'string') {
    if (!(isYaml11Implicit(value) || value.includes('\r') || (value.includes('\t') && !value.includes('\n')))) return value;
    const scalar = new Scalar(value);
    scalar.type = 'QUOTE_DOUBLE';
    return scalar;
  }
  if (Array.isArray(value)) return value.map(quoted);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, quoted(v)]));
  }
  return value;
}
