import { FleetHost } from './fleet-host';

/** A step of a host's apply that failed, as its steps script reports it. */
export interface FailedStep {
  readonly host: string;
  readonly step: string;
  readonly cause: string;
}

/** The `smartstack: <host>: step '<step>' failed: <cause>` lines of an apply's output. */
export function failedSteps(output: string): FailedStep[] {
  const found: FailedStep[] = [];
  for (const match of output.matchAll(/smartstack: ([A-Za-z0-9.-]+): step '([^']*)' failed: ([^\n]*)/g)) {
    const [, host, step, cause] = match;
    if (!found.some((f) => f.host === host && f.step === step && f.cause === cause)) found.push({ host, step, cause });
  }
  return found;
}

/** The hosts of the fleet whose resources terraform names in an error (`with terraform_data.<host>_…`). */
function hostsInErrors(output: string, hosts: readonly FleetHost[]): FleetHost[] {
  const named = new Set([...output.matchAll(/with (?:terraform_data|null_resource)\.([A-Za-z0-9-]+)_/g)].map((m) => m[1]));
  return hosts.filter((h) => named.has(h.name));
}

/**
 * Why an apply failed, read from the hosts themselves while they still run: the failed steps, and
 * for each host concerned its failed units, the end of the journal and of cloud-init's output.
 * Meant for a person at a terminal; never throws.
 */
export async function diagnoseApply(output: string, hosts: readonly FleetHost[]): Promise<string> {
  const steps = failedSteps(output);
  const concerned = hosts.filter((h) => steps.some((s) => s.host === h.name));
  for (const h of hostsInErrors(output, hosts)) if (!concerned.includes(h)) concerned.push(h);
  const parts = [
    steps.length > 0
      ? `failed steps:\n${steps.map((s) => `  ${s.host}: '${s.step}': ${s.cause}`).join('\n')}`
      : 'no step reported a failure (the apply stopped before the steps script, or terraform itself failed)',
  ];
  for (const host of concerned) {
    const read = await host
      .exec(
        'systemctl --failed --no-legend --plain 2>&1 | sed "s/^/failed unit: /"; ' +
          'for unit in $(systemctl --failed --no-legend --plain | cut -d" " -f1); do echo "--- journal of $unit"; journalctl --no-pager -o short-precise -b -n 10 -u "$unit" 2>&1; done; ' +
          'echo "--- journal (end)"; ' +
          'journalctl --no-pager -o short-precise -n 60 2>&1; ' +
          'echo "--- /var/log/cloud-init-output.log (end)"; tail -n 40 /var/log/cloud-init-output.log 2>&1',
        { timeoutMs: 20_000 },
      )
      .catch((e: Error) => ({ status: -1, stdout: '', stderr: e.message }));
    parts.push(`${host.name}:\n${`${read.stdout}${read.stderr}`.trimEnd().split('\n').map((l) => `  ${l}`).join('\n')}`);
  }
  return parts.join('\n');
}
