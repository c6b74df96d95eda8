import { CreateNodeOptions, DocumentOptions, Scalar, SchemaOptions, stringify, ToStringOptions } from 'yaml';

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
  return emitDocument(value) ?? stringifyWithPackage(value);
}

/** What the yaml package writes for `value`: the reference {@link stringifyYaml11} matches. */
export function stringifyWithPackage(value: unknown): string {
  return stringify(quoted(value), YAML_OPTIONS);
}

const YAML_OPTIONS: DocumentOptions & SchemaOptions & CreateNodeOptions & ToStringOptions = {
  lineWidth: 0,
  version: '1.1',
  // The yaml package writes the string '<<' as a bare merge key whatever its style; without the
  // merge tag the double quotes chosen below are kept.
  customTags: (tags) => tags.filter((tag) => typeof tag === 'string' || tag.tag !== 'tag:yaml.org,2002:merge'),
};

/**
 * The same text as the yaml package writes for the shapes a cloud-config document has (maps with
 * word keys, lists, booleans, integers, and strings: one-line ones, and multi-line ones as literal
 * blocks), in a fraction of the time; undefined for anything else, which the package then writes.
 * Every one-line string is written once by the package and remembered.
 */
export function emitDocument(value: unknown): string | undefined {
  if (!isPlainMap(value)) return undefined;
  const out: string[] = [];
  return emitMapBody(value, '', out) ? out.join('') : undefined;
}

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A one-line string, or a multi-line one the package writes as a literal block with clip or strip chomping. */
const ONE_LINE_UNSAFE = /[\n\r\x00-\x08\x0b-\x1f\x7f-\x9f\u{D800}-\u{DFFF}]/u;
const BLOCK_UNSAFE = /[\r\x00-\x08\x0b-\x1f\x7f-\x9f\u{D800}-\u{DFFF}]|\n[\t ]+$/u;
const oneLineStrings = new Map<string, string>();
const simpleKeys = new Map<string, boolean>();

function isPlainMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

/** A key the package writes as it stands. */
function isSimpleKey(key: string): boolean {
  let simple = simpleKeys.get(key);
  if (simple === undefined) {
    simple = SIMPLE_KEY.test(key) && stringify(key, YAML_OPTIONS) === `${key}\n`;
    if (simpleKeys.size < 10_000) simpleKeys.set(key, simple);
  }
  return simple;
}

/** A scalar written after `key: ` or `- `, or undefined when only the package may write it. `indent` is the block's. */
function emitScalar(value: unknown, indent: string): string | undefined {
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
  if (typeof value !== 'string') return undefined;
  if (value.includes('\n')) return literalBlock(value, indent);
  if (ONE_LINE_UNSAFE.test(value)) return undefined;
  let text = oneLineStrings.get(value);
  if (text === undefined) {
    const written = stringify(quoted(value), YAML_OPTIONS);
    if (written.indexOf('\n') !== written.length - 1) return undefined;
    text = written.slice(0, -1);
    if (oneLineStrings.size < 100_000) oneLineStrings.set(value, text);
  }
  return text;
}

/** A multi-line string as a literal block (`|` or `|-`) whose lines start with `indent`. */
function literalBlock(value: string, indent: string): string | undefined {
  if (BLOCK_UNSAFE.test(value)) return undefined;
  let end = value.length;
  while (end > 0 && (value[end - 1] === '\n' || value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  const tail = value.slice(end);
  // Only a single final line break (clip) or none (strip); `|+` is left to the package.
  if (tail !== '' && tail !== '\n') return undefined;
  const body = value.slice(0, end);
  if (body === '' || body[0] === ' ' || body[0] === '\n') return undefined;
  return `|${tail === '' ? '-' : ''}\n${indent}${body.replace(/\n+/g, `$&${indent}`)}`;
}

function emitMapBody(map: Record<string, unknown>, indent: string, out: string[], firstPrefix?: string): boolean {
  let first = true;
  for (const key of Object.keys(map)) {
    const value = map[key];
    if (value === undefined || !isSimpleKey(key)) return false;
    out.push(first && firstPrefix !== undefined ? firstPrefix : indent, key, ':');
    first = false;
    if (!emitValue(value, `${indent}  `, out)) return false;
  }
  return !first;
}

/** Writes what follows `key:` or `-`: a space and a scalar, or a nested collection on the next lines. */
function emitValue(value: unknown, inner: string, out: string[]): boolean {
  if (Array.isArray(value)) {
    if (value.length === 0) return (out.push(' []\n'), true);
    out.push('\n');
    return emitSequence(value, inner, out);
  }
  if (isPlainMap(value)) {
    if (Object.keys(value).length === 0) return (out.push(' {}\n'), true);
    out.push('\n');
    return emitMapBody(value, inner, out);
  }
  const text = emitScalar(value, inner);
  if (text === undefined) return false;
  out.push(' ', text, '\n');
  return true;
}

/** The items at `indent`; the first one's dash after `firstPrefix` when given (a list in a list). */
function emitSequence(items: unknown[], indent: string, out: string[], firstPrefix?: string): boolean {
  let first = true;
  for (const item of items) {
    const prefix = first && firstPrefix !== undefined ? `${firstPrefix}- ` : `${indent}- `;
    first = false;
    if (isPlainMap(item)) {
      if (Object.keys(item).length === 0 || !emitMapBody(item, `${indent}  `, out, prefix)) return false;
    } else if (Array.isArray(item)) {
      if (item.length === 0 || !emitSequence(item, `${indent}  `, out, prefix)) return false;
    } else {
      const text = emitScalar(item, `${indent}  `);
      if (text === undefined) return false;
      out.push(prefix, text, '\n');
    }
  }
  return !first;
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
