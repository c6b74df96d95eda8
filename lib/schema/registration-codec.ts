import { haproxyUnsafeReason } from './haproxy-safe';
import { LabelValue, Registration } from './registration';

/** Larger registration payloads are refused unread: a real one is a few hundred bytes. */
export const MAX_REGISTRATION_BYTES = 8192;

/** A registration read from ZooKeeper: accepted, or refused with the reason. */
export type DecodedRegistration =
  | { readonly ok: true; readonly registration: Registration }
  | { readonly ok: false; readonly reason: string };

/**
 * The payload nerve writes: compact JSON with keys in upstream's order (host, port, name, then
 * weight, haproxy_server_options, labels when set), so Ruby synapse reads it unchanged.
 */
export function encodeRegistration(r: Registration): string {
  const ordered: { [key: string]: unknown } = { host: r.host, port: r.port, name: r.name };
  if (r.weight !== undefined) ordered.weight = r.weight;
  if (r.haproxy_server_options !== undefined) ordered.haproxy_server_options = r.haproxy_server_options;
  if (r.labels !== undefined) ordered.labels = r.labels;
  return JSON.stringify(ordered);
}

/**
 * Reads a registration as untrusted input: size-limited JSON with a host that is an IP address
 * or a strict hostname, a port 1–65535 (a number, or a string of digits as Ruby nerve writes
 * when its config has one), and server options of the keywords a registration may set.
 */
export function decodeRegistration(data: Buffer | string): DecodedRegistration {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  if (size > MAX_REGISTRATION_BYTES) return refuse(`payload of ${size} bytes is over the ${MAX_REGISTRATION_BYTES}-byte limit`);
  let value: unknown;
  try {
    value = JSON.parse(data.toString());
  } catch {
    return refuse('payload is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return refuse('payload is not a JSON object');
  const o = value as { [key: string]: unknown };

  const hostReason = haproxyUnsafeReason(o.host, 'host');
  if (hostReason !== undefined) return refuse(`host ${short(o.host)} ${hostReason}`);
  const portText = typeof o.port === 'number' ? String(o.port) : o.port;
  if (haproxyUnsafeReason(portText, 'port') !== undefined) return refuse(`port ${short(o.port)} is not an integer 1-65535`);
  // C1 controls too: `smartstack status` prints the name, and U+009B is a terminal's escape sequence.
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length > 256 || /[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(o.name))) {
    return refuse(`name ${short(o.name)} is not a plain string of at most 256 characters`);
  }
  if (o.weight !== undefined && o.weight !== null && !(Number.isInteger(o.weight) && (o.weight as number) >= 0 && (o.weight as number) <= 256)) {
    return refuse(`weight ${short(o.weight)} is not an integer 0-256`);
  }
  if (o.haproxy_server_options !== undefined && o.haproxy_server_options !== null) {
    const reason = haproxyUnsafeReason(o.haproxy_server_options, 'serverOptions');
    if (reason !== undefined) return refuse(`haproxy_server_options ${short(o.haproxy_server_options)} ${reason}`);
  }
  let labels: { [key: string]: LabelValue } | undefined;
  if (o.labels !== undefined && o.labels !== null) {
    if (typeof o.labels !== 'object' || Array.isArray(o.labels) || !Object.values(o.labels).every(isLabelValue)) {
      return refuse('labels is not an object of strings, numbers, booleans or nulls');
    }
    labels = o.labels as { [key: string]: LabelValue };
  }
  const registration: Registration = {
    host: o.host as string,
    port: Number(portText),
    name: typeof o.name === 'string' ? o.name : '',
    ...(typeof o.weight === 'number' ? { weight: o.weight } : {}),
    ...(typeof o.haproxy_server_options === 'string' ? { haproxy_server_options: o.haproxy_server_options } : {}),
    ...(labels ? { labels } : {}),
  };
  return { ok: true, registration };
}

const BASE64_PREFIX = 'base64_';

/** The child-name prefix of upstream's path encoding: `base64_<len>_<urlsafe base64 of the payload>_`. */
export function encodeChildNamePrefix(r: Registration): string {
  const encoded = Buffer.from(encodeRegistration(r)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
  return `${BASE64_PREFIX}${encoded.length}_${encoded}_`;
}

/**
 * The registration carried in a child's name (`base64_<len>_<b64>_<seq>`), or undefined when the
 * name does not use path encoding or does not decode — then the node's data is read instead.
 */
export function decodeChildName(name: string): DecodedRegistration | undefined {
  if (!name.startsWith(BASE64_PREFIX)) return undefined;
  const match = /^base64_([0-9]{1,5})_/.exec(name);
  if (!match) return undefined;
  const length = Number(match[1]);
  const encoded = name.slice(match[0].length, match[0].length + length);
  if (encoded.length !== length || !/^[A-Za-z0-9_=-]*$/.test(encoded)) return undefined;
  return decodeRegistration(Buffer.from(encoded.replace(/-/g, '+').replace(/_/g, '/'), 'base64'));
}

/** A label value upstream writes: a scalar of at most 256 characters, no control characters. */
export function isLabelValue(v: unknown): v is LabelValue {
  if (v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return true;
  return typeof v === 'string' && v.length <= 256 && !/[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(v);
}

function refuse(reason: string): DecodedRegistration {
  return { ok: false, reason };
}

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
