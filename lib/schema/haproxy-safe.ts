import { isIpv4 } from '../model/address';

/**
 * The one whitelist every string bound for `haproxy.cfg` or the HAProxy runtime socket passes.
 *
 * The config is line-based (a newline starts a new directive, `#` starts a comment) and the
 * socket runs `;`-separated commands, so a discovered host or option carrying either is an
 * injection. Values are accepted, never repaired: a rejected value changes nothing.
 */

/**
 * What a value is used as:
 * - `name`: a section, backend or server name (also a socket command argument);
 * - `host`: an IPv4/IPv6 address or a strict RFC 1123 hostname;
 * - `port`: an integer 1–65535 (a number or a string of digits);
 * - `line`: a config line or a fragment of one (server options, global/defaults lines);
 * - `serverOptions`: the server options of an untrusted registration: known keywords only.
 */
export type HaproxyValueKind = 'name' | 'host' | 'port' | 'line' | 'serverOptions';

/** Raised for a value that must not reach `haproxy.cfg` or the runtime socket. */
export class HaproxyUnsafeValueError extends Error {
  public constructor(public readonly field: string, public readonly value: unknown, public readonly reason: string) {
    super(`${field} = ${describe(value)}: ${reason}`);
    this.name = 'HaproxyUnsafeValueError';
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const NAME_MAX = 100;
const LINE_MAX = 2048;
const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
// Printable ASCII except `;` and `#`; quotes, spaces and backslashes are legal in directives.
const LINE = /^[\x20-\x22\x24-\x3a\x3c-\x7e]+$/;
const COUNT = { form: /^[1-9][0-9]{0,5}$/, expected: 'a whole number 1-999999' };
// Milliseconds, or seconds with `s`: at most 999999 s, well inside HAProxy's timer range.
const DURATION = { form: /^[1-9][0-9]{0,5}(ms|s)?$/, expected: 'a duration such as 500ms or 2s' };
/**
 * The server keywords a registration may add to its server line, each with the form of its
 * argument (null: none). A registration is untrusted: a keyword that reads a file (`crt`,
 * `ca-file`), sends checks elsewhere (`addr`, `agent-addr`), or makes `haproxy -c` fail would,
 * with the rest of the line, take effect at the next reload or stop every reload while it stays.
 */
const SERVER_OPTIONS: { [keyword: string]: { form: RegExp; expected: string } | null } = {
  'backup': null,
  // Health checks to the registered address (`port` moves them to another port of it).
  'check': null,
  'disabled': null,
  'non-stick': null,
  'send-proxy': null,
  'send-proxy-v2': null,
  'weight': { form: /^(25[0-6]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/, expected: 'a weight 0-256' },
  'maxconn': COUNT,
  'maxqueue': COUNT,
  'rise': COUNT,
  'fall': COUNT,
  'port': { form: /^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$/, expected: 'a port 1-65535' },
  'inter': DURATION,
  'fastinter': DURATION,
  'downinter': DURATION,
  'slowstart': DURATION,
};

/**
 * Returns why `value` is unsafe as a `kind`, or undefined when it is safe.
 * Use this where a bad value is skipped (untrusted input); use {@link haproxySafe} where it is fatal.
 */
export function haproxyUnsafeReason(value: unknown, kind: HaproxyValueKind): string | undefined {
  if (kind === 'port') return portReason(value);
  if (typeof value !== 'string') return `must be a string, got ${typeof value}`;
  if (value.length === 0) return 'must not be empty';
  const control = /[\x00-\x1f\x7f]/.exec(value);
  if (control) return `contains control character 0x${control[0].charCodeAt(0).toString(16).padStart(2, '0')} (newline, tab, ...)`;
  if (value.includes(';')) return "contains ';', which separates runtime socket commands";
  if (value.includes('#')) return "contains '#', which starts a comment in haproxy.cfg";
  switch (kind) {
    case 'name':
      if (value.length > NAME_MAX) return `longer than ${NAME_MAX} characters`;
      return NAME.test(value) ? undefined : 'must start with a letter or digit and hold only letters, digits and _ . : -';
    case 'host':
      return hostReason(value);
    case 'line':
      if (value.length > LINE_MAX) return `longer than ${LINE_MAX} characters`;
      if (value.trim() !== value) return 'must not start or end with spaces';
      return LINE.test(value) ? undefined : 'must hold printable ASCII characters only';
    case 'serverOptions':
      return serverOptionsReason(value);
  }
}

/** Returns `value` (ports as a number string) when it is safe as a `kind`; throws naming field and value otherwise. */
export function haproxySafe(field: string, value: unknown, kind: HaproxyValueKind): string {
  const reason = haproxyUnsafeReason(value, kind);
  if (reason !== undefined) throw new HaproxyUnsafeValueError(field, value, reason);
  return kind === 'port' ? String(Number(value)) : (value as string);
}

/** True for a literal IPv4 or IPv6 address (HAProxy's runtime `set server addr` takes only these). */
export function isIpAddress(value: string): boolean {
  return isIpv4(value) || isIpv6(value);
}

function portReason(value: unknown): string | undefined {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^[0-9]{1,5}$/.test(text)) return 'must be an integer port 1-65535';
  const port = Number(text);
  return port >= 1 && port <= 65535 ? undefined : 'must be an integer port 1-65535';
}

function serverOptionsReason(value: string): string | undefined {
  if (value.length > LINE_MAX) return `longer than ${LINE_MAX} characters`;
  const words = value.split(' ');
  for (let i = 0; i < words.length; i++) {
    const keyword = words[i];
    if (!Object.prototype.hasOwnProperty.call(SERVER_OPTIONS, keyword)) {
      return `'${keyword.slice(0, 40)}' is not a server option a registration may set (${Object.keys(SERVER_OPTIONS).join(', ')}), one space apart`;
    }
    const argument = SERVER_OPTIONS[keyword];
    if (argument !== null && !argument.form.test(words[++i] ?? '')) return `'${keyword}' needs ${argument.expected}`;
  }
  return undefined;
}

function hostReason(value: string): string | undefined {
  if (isIpAddress(value)) return undefined;
  if (value.length > 253) return 'hostname longer than 253 characters';
  const labels = value.endsWith('.') ? value.slice(0, -1).split('.') : value.split('.');
  if (labels.every((label) => HOSTNAME_LABEL.test(label)) && !/^[0-9.]+$/.test(value)) return undefined;
  return 'must be an IPv4 or IPv6 address or a hostname of letters, digits and hyphens';
}

function isIpv6(value: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(value) || !value.includes(':')) return false;
  let text = value;
  const groupsNeeded = 8;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!isIpv4(tail)) return false;
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = (half: string): string[] => (half === '' ? [] : half.split(':'));
  const all = halves.flatMap(groups);
  if (!all.every((group) => /^[0-9A-Fa-f]{1,4}$/.test(group))) return false;
  return halves.length === 2 ? all.length < groupsNeeded : all.length === groupsNeeded;
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…(${text.length} chars)` : text;
}
