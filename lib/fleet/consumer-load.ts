/**
 * A bounded request load through a consumer's local port, run on the consumer host itself: one
 * request at a time with curl, until `count` requests were sent, `seconds` passed or the stop file
 * appeared, whichever comes first. Each request prints one line: epoch seconds and the HTTP status
 * (000 when curl got no answer).
 */
export interface ConsumerLoad {
  /** e.g. `http://127.0.0.1:3210/health`. */
  readonly url: string;
  readonly count: number;
  readonly seconds: number;
  /** Path on the host whose appearance ends the load early. */
  readonly stopFile: string;
  /** Per request. @default 2 */
  readonly requestTimeoutSeconds?: number;
}

export interface LoadResult {
  readonly requests: number;
  /** Requests not answered with a 2xx or 3xx status, by status (`000`: no answer). */
  readonly failures: number;
  readonly failuresByStatus: Record<string, number>;
  /** Epoch milliseconds of each failure. */
  readonly failureTimes: number[];
  readonly firstMs?: number;
  readonly lastMs?: number;
}

export function consumerLoadScript(load: ConsumerLoad): string {
  for (const [field, value] of [['count', load.count], ['seconds', load.seconds]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`consumer load: ${field} = ${value}: expected a positive integer`);
  }
  if (!/^http:\/\/[0-9a-zA-Z.:[\]]+\/[\x21-\x7e]*$/.test(load.url) || load.url.includes("'")) throw new Error(`consumer load: url = ${JSON.stringify(load.url)}: expected an http:// URL without quotes`);
  const timeout = load.requestTimeoutSeconds ?? 2;
  return [
    `rm -f ${load.stopFile}`,
    `end=$(( $(date +%s) + ${load.seconds} ))`,
    'i=0',
    `while [ "$i" -lt ${load.count} ] && [ "$(date +%s)" -lt "$end" ] && [ ! -e ${load.stopFile} ]; do`,
    `  code=$(curl -s -o /dev/null -m ${timeout} -w '%{http_code}' '${load.url}' 2>/dev/null) || true`,
    '  echo "$(date +%s.%N) ${code:-000}"',
    '  i=$((i + 1))',
    'done',
  ].join('\n');
}

export function parseLoadOutput(output: string): LoadResult {
  const lines = output.split('\n').map((l) => l.trim().split(' ')).filter((f) => f.length === 2 && /^\d+\.\d+$/.test(f[0]) && /^\d{3}$/.test(f[1]));
  const failed = lines.filter(([, code]) => !/^[23]/.test(code));
  const failuresByStatus: Record<string, number> = {};
  for (const [, code] of failed) failuresByStatus[code] = (failuresByStatus[code] ?? 0) + 1;
  const ms = (f: string[]) => Math.round(Number(f[0]) * 1000);
  return {
    requests: lines.length,
    failures: failed.length,
    failuresByStatus,
    failureTimes: failed.map(ms),
    firstMs: lines.length > 0 ? ms(lines[0]) : undefined,
    lastMs: lines.length > 0 ? ms(lines[lines.length - 1]) : undefined,
  };
}
