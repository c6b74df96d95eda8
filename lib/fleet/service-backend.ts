import { NerveConfig } from '../schema/nerve-config';

/**
 * A stand-in for a provided service on a rehearsal host: a python3 HTTP server on the service's port
 * (and on any port a check names) that answers every request with 200 and a body holding what the
 * checks expect, so nerve registers the host and HAProxy's checks pass. One systemd unit per service.
 */
export interface ServiceBackend {
  readonly service: string;
  readonly address: string;
  readonly ports: number[];
  /** Text the checks expect in the body (joined), plus the host's name. */
  readonly body: string;
  readonly unit: string;
}

const PROGRAM_PATH = '/usr/local/lib/smartstack-rehearsal/backend.py';

// Every path, GET or HEAD, answered the same way: a health check at any URI passes.
const PROGRAM = `import http.server, socketserver, sys, threading
address, body = sys.argv[1], sys.argv[2].encode() + b"\\n"
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, send_body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
    def do_GET(self):
        self.answer(True)
    def do_HEAD(self):
        self.answer(False)
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
servers = [Server((address, int(port)), Handler) for port in sys.argv[3:]]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
`;

/** The backends a host's nerve configuration asks for, one per service. */
export function serviceBackends(hostname: string, nerveConfigText: string): ServiceBackend[] {
  const config = JSON.parse(nerveConfigText) as NerveConfig;
  return Object.entries(config.services).map(([service, s]) => {
    const ports = [Number(s.port), ...(s.checks ?? []).filter((c) => c.port !== undefined).map((c) => Number(c.port))];
    const expected = (s.checks ?? []).map((c) => c.expect).filter((e): e is string => e !== undefined);
    return {
      service,
      address: s.host,
      ports: [...new Set(ports)],
      body: [...expected, `${service} ${hostname}`].join(' '),
      unit: `smartstack-rehearsal-${service}.service`,
    };
  });
}

/** Shell commands that install and (re)start the backends on the host; run as root. */
export function serviceBackendScript(backends: readonly ServiceBackend[]): string {
  const lines = ['set -e', `mkdir -p ${PROGRAM_PATH.replace(/\/[^/]+$/, '')}`, `cat > ${PROGRAM_PATH} <<'PYTHON'`, PROGRAM.trimEnd(), 'PYTHON'];
  for (const b of backends) {
    lines.push(
      `cat > /etc/systemd/system/${b.unit} <<'UNIT'`,
      '[Unit]',
      `Description=stand-in for ${b.service} (smartstack rehearse)`,
      '[Service]',
      `ExecStart=/usr/bin/python3 ${PROGRAM_PATH} ${b.address} ${shellWord(b.body)} ${b.ports.join(' ')}`,
      'Restart=always',
      'RestartSec=1',
      '[Install]',
      'WantedBy=multi-user.target',
      'UNIT',
    );
  }
  lines.push('systemctl daemon-reload');
  if (backends.length > 0) lines.push(`systemctl enable --quiet ${backends.map((b) => b.unit).join(' ')}`, `systemctl restart ${backends.map((b) => b.unit).join(' ')}`);
  return lines.join('\n') + '\n';
}

/** A word for systemd's ExecStart: double-quoted, with systemd's and the shell's specials escaped. */
function shellWord(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%').replace(/\$/g, '$$$$').replace(/\n/g, ' ')}"`;
}
