import { haproxySafe, HaproxyUnsafeValueError } from '../schema/haproxy-safe';
import { SynapseConfig, SynapseServiceConfig } from '../schema/synapse-config';

/** One filled server slot of a backend. */
export interface HaproxyServerSlot {
  /** 1-based slot number (server `slot<N>`); servers without one take the lowest free slots in order. */
  readonly slot?: number;
  /** IP address or hostname. */
  readonly host: string;
  readonly port: number;
  /** HAProxy weight 0–256; the server line's default when omitted. */
  readonly weight?: number;
  /** Extra server options from the registration, after the service's `server_options`. */
  readonly haproxyServerOptions?: string;
}

/** Server slots per backend when `server_slots` is not set. */
export const DEFAULT_SERVER_SLOTS = 32;
/** Global `maxconn` unless the config sets one: ~8k descriptors, well inside a 20k limit. */
export const DEFAULT_MAXCONN = 4096;
/** Where the frontends listen unless the service or the haproxy section says otherwise. */
export const DEFAULT_BIND_ADDRESS = '127.0.0.1';
/** The name of slot `n` in every backend. Stable, so run-time state maps onto it across reloads. */
export function slotName(n: number): string {
  return `slot${n}`;
}

/**
 * Where an empty slot points: a real address and port, never `0.0.0.0:0`. A server whose port is 0
 * (or `+N`/`-N`) is a port-offset server — HAProxy connects to the frontend's port plus its port —
 * and once a reload restored a port onto it from the server-state file, `set server … port P`
 * answers "no need to change the port" and traffic goes to frontend port + P.
 */
export const EMPTY_SLOT_ADDRESS = '127.0.0.1:1';

/**
 * Renders haproxy.cfg for a sidecar: the bootstrap file (pass `{}`: each service gets its
 * `default_servers`) and the file synapse writes before a reload (pass the slots of every
 * backend). Pure and deterministic: the same input gives the same bytes.
 *
 * Every backend has a fixed number of `slot<N>` servers, so membership changes go through the
 * runtime socket (`set server B/slot<N> addr ...`, `state ready|maint`) without a reload. Lines
 * from the config win over the defaults written here (matched by directive). Every string passes
 * {@link haproxySafe}; a bad one throws an error naming the field and the value.
 *
 * `backends[service]`, when present, is used as given (synapse merges default servers itself);
 * an absent key means the service's `default_servers`.
 */
export function renderHaproxyConfig(config: SynapseConfig, backends: { [service: string]: HaproxyServerSlot[] }): string {
  const h = config.haproxy ?? {};
  const out: string[] = [
    '# haproxy.cfg of a smartstack sidecar. synapse changes servers through the runtime socket',
    '# and rewrites this file only when a backend runs out of server slots.',
    '',
  ];

  const globalLines = safeLines('haproxy.global', h.global);
  const ours: string[] = ['master-worker', `maxconn ${DEFAULT_MAXCONN}`, 'hard-stop-after 60s'];
  if (h.socket_file_path !== undefined) {
    ours.push(`stats socket ${safePath('haproxy.socket_file_path', h.socket_file_path)} mode 600 level admin expose-fd listeners`);
  }
  // A `server-state-file` line in `global` wins; otherwise upstream's `state_file_path` names it.
  const ownStateFile = globalLines.some((l) => directiveKey(l) === 'server-state-file');
  if (!ownStateFile && h.state_file_path !== undefined) {
    ours.push(`server-state-file ${safePath('haproxy.state_file_path', h.state_file_path)}`);
  }
  const stateFile = ownStateFile || h.state_file_path !== undefined;
  section(out, 'global', [...fillGaps(ours, globalLines), ...globalLines]);

  const defaultsLines = safeLines('haproxy.defaults', h.defaults);
  const defaults = [
    'mode tcp',
    'timeout connect 2s',
    'timeout client 60s',
    'timeout server 60s',
    'retries 3',
    // Every retry goes to another server, so one dead instance costs a caller nothing.
    'option redispatch 1',
    ...(stateFile ? ['load-server-state-from-file global'] : []),
    // A server named by a hostname that does not resolve must not stop HAProxy from starting.
    'default-server init-addr last,libc,none',
  ];
  section(out, 'defaults', [...fillGaps(defaults, defaultsLines), ...defaultsLines]);

  const defaultBind = h.bind_address ?? DEFAULT_BIND_ADDRESS;
  const names = Object.keys(config.services ?? {}).sort(compare);
  const backendNames = new Map<string, string>();
  for (const name of names) {
    const service = config.services[name];
    const field = `services.${name}`;
    haproxySafe(`${field} (service name)`, name, 'name');
    const backendName = haproxySafe(`${field}.haproxy.backend_name`, service.haproxy?.backend_name ?? name, 'name');
    const clash = backendNames.get(backendName);
    if (clash !== undefined) {
      throw new HaproxyUnsafeValueError(`${field}.haproxy.backend_name`, backendName, `already the backend of service '${clash}'`);
    }
    backendNames.set(backendName, name);
    renderService(out, field, name, backendName, service, defaultBind, backends[name]);
  }

  // Upstream's shared HTTP frontend: the top-level lines, then each service's.
  const shared = names.filter((name) => config.services[name].haproxy?.shared_frontend !== undefined);
  if (h.shared_frontend !== undefined) {
    section(out, 'frontend shared-frontend', [
      ...safeLines('haproxy.shared_frontend', h.shared_frontend),
      ...shared.flatMap((name) => safeLines(`services.${name}.haproxy.shared_frontend`, config.services[name].haproxy?.shared_frontend)),
    ]);
  } else if (shared.length > 0) {
    throw new HaproxyUnsafeValueError(`services.${shared[0]}.haproxy.shared_frontend`, config.services[shared[0]].haproxy?.shared_frontend, 'needs haproxy.shared_frontend, which opens the shared frontend');
  }

  const extra = h.extra_sections ?? {};
  for (const header of Object.keys(extra)) {
    const safeHeader = haproxySafe(`haproxy.extra_sections (section header)`, header, 'line');
    section(out, safeHeader, safeLines(`haproxy.extra_sections[${JSON.stringify(header)}]`, extra[header]));
  }
  return out.join('\n');
}

function renderService(
  out: string[],
  field: string,
  name: string,
  backendName: string,
  service: SynapseServiceConfig,
  defaultBind: string,
  slots: HaproxyServerSlot[] | undefined,
): void {
  const hx = service.haproxy ?? {};
  const listen = safeLines(`${field}.haproxy.listen`, hx.listen);
  const listenFront = listen.filter((l) => lineSide(l) !== 'backend');
  const listenBack = listen.filter((l) => lineSide(l) !== 'frontend');

  if (hx.port !== undefined) {
    const bindField = hx.bind_address !== undefined ? `${field}.haproxy.bind_address` : 'haproxy.bind_address';
    const bind = hx.bind_address ?? defaultBind;
    // `port: null` (upstream): the address alone, such as a unix socket path.
    const endpoint = hx.port === null
      ? safeWord(bindField, bind)
      : `${bind === '*' ? '*' : haproxySafe(bindField, bind, 'host')}:${haproxySafe(`${field}.haproxy.port`, hx.port, 'port')}`;
    const bindOptions = hx.bind_options === undefined || hx.bind_options === '' ? '' : ' ' + haproxySafe(`${field}.haproxy.bind_options`, hx.bind_options, 'line');
    section(out, `frontend ${name}`, [
      `bind ${endpoint}${bindOptions}`,
      ...safeLines(`${field}.haproxy.frontend`, hx.frontend),
      ...listenFront,
      `default_backend ${backendName}`,
    ]);
  }

  const servers = slotLines(field, service, slots);
  section(out, `backend ${backendName}`, [...safeLines(`${field}.haproxy.backend`, hx.backend), ...listenBack, ...servers]);
}

/** The `server slot<N> ...` lines: filled slots with their address, the rest disabled. */
function slotLines(field: string, service: SynapseServiceConfig, given: HaproxyServerSlot[] | undefined): string[] {
  const hx = service.haproxy ?? {};
  const options = hx.server_options === undefined || hx.server_options === ''
    ? ''
    : ' ' + haproxySafe(`${field}.haproxy.server_options`, hx.server_options, 'line');
  const configured = hx.server_slots ?? DEFAULT_SERVER_SLOTS;
  if (!Number.isInteger(configured) || configured < 1 || configured > 10000) {
    throw new HaproxyUnsafeValueError(`${field}.haproxy.server_slots`, configured, 'must be an integer 1-10000');
  }

  // Default servers may carry upstream's string ports; the port check below takes both.
  const servers: Array<Omit<HaproxyServerSlot, 'port'> & { port: number | string }> = given
    ?? (service.default_servers ?? []).map((d) => ({ host: d.host, port: d.port }));
  const serversField = given ? `backends.${field.slice('services.'.length)}` : `${field}.default_servers`;

  const bySlot = new Map<number, string>();
  const unplaced: string[] = [];
  servers.forEach((server, i) => {
    const f = `${serversField}[${i}]`;
    const host = haproxySafe(`${f}.host`, server.host, 'host');
    const port = haproxySafe(`${f}.port`, server.port, 'port');
    let line = `${host}:${port}${options}`;
    if (server.haproxyServerOptions !== undefined && server.haproxyServerOptions !== '') {
      line += ' ' + haproxySafe(`${f}.haproxyServerOptions`, server.haproxyServerOptions, 'line');
    }
    if (server.weight !== undefined) {
      if (!Number.isInteger(server.weight) || server.weight < 0 || server.weight > 256) {
        throw new HaproxyUnsafeValueError(`${f}.weight`, server.weight, 'must be an integer 0-256');
      }
      line += ` weight ${server.weight}`;
    }
    if (server.slot === undefined) {
      unplaced.push(line);
      return;
    }
    if (!Number.isInteger(server.slot) || server.slot < 1) {
      throw new HaproxyUnsafeValueError(`${f}.slot`, server.slot, 'must be an integer from 1');
    }
    if (bySlot.has(server.slot)) {
      throw new HaproxyUnsafeValueError(`${f}.slot`, server.slot, 'is taken by another server');
    }
    bySlot.set(server.slot, line);
  });
  let next = 1;
  for (const line of unplaced) {
    while (bySlot.has(next)) next++;
    bySlot.set(next, line);
  }
  const count = Math.max(configured, ...bySlot.keys());
  const lines: string[] = [];
  for (let n = 1; n <= count; n++) {
    const line = bySlot.get(n);
    lines.push(line !== undefined ? `server ${slotName(n)} ${line}` : `server ${slotName(n)} ${EMPTY_SLOT_ADDRESS}${options} disabled`);
  }
  return lines;
}

function section(out: string[], header: string, lines: string[]): void {
  out.push(header, ...lines.map((l) => `  ${l}`), '');
}

function safeLines(field: string, lines: string[] | undefined): string[] {
  if (lines === undefined) return [];
  if (!Array.isArray(lines)) throw new HaproxyUnsafeValueError(field, lines, 'must be a list of lines');
  return lines.map((line, i) => haproxySafe(`${field}[${i}]`, line, 'line'));
}

/** One word of a line: no spaces. */
function safeWord(field: string, value: string): string {
  const safe = haproxySafe(field, value, 'line');
  if (/\s/.test(safe)) throw new HaproxyUnsafeValueError(field, value, 'must be one word without spaces');
  return safe;
}

function safePath(field: string, path: string): string {
  const safe = haproxySafe(field, path, 'line');
  if (/\s/.test(safe) || !safe.startsWith('/')) throw new HaproxyUnsafeValueError(field, path, 'must be an absolute path without spaces');
  return safe;
}

/** Our default lines whose directive the config's own lines do not set. */
function fillGaps(defaults: string[], lines: string[]): string[] {
  const taken = new Set(lines.map(directiveKey));
  return defaults.filter((d) => !taken.has(directiveKey(d)));
}

/**
 * What a line sets, for "the config's line wins": `option redispatch` and `option httpchk` differ,
 * `timeout client` and `timeout server` differ, a `stats socket` is keyed by its path.
 */
function directiveKey(line: string): string {
  const words = line.split(/\s+/);
  const head = words[0];
  if (head === 'no') return words.slice(1, 3).join(' ');
  if (head === 'option' || head === 'timeout') return words.slice(0, 2).join(' ');
  if (head === 'stats' && words[1] === 'socket') return words.slice(0, 3).join(' ');
  if (head === 'default-server' && words[1] === 'init-addr') return 'default-server init-addr';
  return head;
}

// `listen` lines are shared by the frontend and the backend. These go to the frontend only (they
// configure accepting connections) or to both (mode and logging must agree); all else to the backend.
const FRONTEND_ONLY = new Set([
  'bind', 'default_backend', 'use_backend', 'capture', 'declare', 'monitor', 'monitor-uri', 'monitor-net',
  'backlog', 'maxconn', 'rate-limit', 'unique-id-format', 'unique-id-header', 'log-format', 'log-format-sd',
  'tcp-request connection', 'tcp-request session', 'timeout client', 'timeout client-fin', 'timeout http-request',
  'option httplog', 'option tcplog', 'option dontlognull', 'option dontlog-normal', 'option http-ignore-probes',
  'option clitcpka', 'option socket-stats', 'option logasap', 'option contstats', 'option accept-invalid-http-request',
]);
const BOTH = new Set(['mode', 'log', 'no log', 'description']);

function lineSide(line: string): 'frontend' | 'backend' | 'both' {
  const words = line.split(/\s+/);
  const one = words[0];
  const two = words.slice(0, 2).join(' ');
  if (BOTH.has(one) || BOTH.has(two)) return 'both';
  if (FRONTEND_ONLY.has(one) || FRONTEND_ONLY.has(two)) return 'frontend';
  return 'backend';
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The `server-state-file` the rendered config names: a `global` line's, else `state_file_path`. */
export function serverStateFilePath(config: SynapseConfig): string | undefined {
  const line = (config.haproxy?.global ?? []).find((l) => directiveKey(l) === 'server-state-file');
  return line !== undefined ? line.split(/\s+/)[1] : config.haproxy?.state_file_path;
}

/**
 * How each slot of a backend is written in a config file this renderer wrote (the inverse of the
 * server lines above): its option text — the service's `server_options` and the instance's, without
 * ` disabled` and the weight — and whether it is a port-offset server (port 0, `+N`, `-N` or none:
 * HAProxy adds the frontend's port), which an older version wrote for empty slots.
 */
export function renderedSlots(configText: string, backendName: string): Map<number, { options: string; portOffset: boolean }> {
  const result = new Map<number, { options: string; portOffset: boolean }>();
  const lines = configText.split('\n');
  const start = lines.indexOf(`backend ${backendName}`);
  if (start < 0) return result;
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('  ')) break;
    const m = /^  server slot([0-9]+) (\S+)(.*)$/.exec(line);
    if (!m) continue;
    const port = /:([+-]?[0-9]*)$/.exec(m[2])?.[1] ?? '';
    const portOffset = port === '' || /^[+-]/.test(port) || Number(port) === 0;
    result.set(Number(m[1]), { options: slotOptionText(m[3]), portOffset });
  }
  return result;
}

/**
 * The option text of a server line after its address, as {@link renderedSlots} compares it: without
 * a trailing ` disabled` or any `weight N` (a weight is set and read back at run time, and one in
 * the service's `server_options` would otherwise read as the server's own), spaces collapsed.
 */
export function slotOptionText(rest: string): string {
  return rest.replace(/(^|\s)weight\s+[0-9]+(?=\s|$)/g, ' ').replace(/\s+/g, ' ').trim().replace(/ ?\bdisabled$/, '').trim();
}
