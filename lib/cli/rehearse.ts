import { spawnSync } from 'child_process';
import { writeFileSync } from 'fs';
import { renderStatus } from '../agent/registry-status';
import { fleetPrerequisites } from '../fleet/fleet';
import { ChangeReport, LoadOptions, LoadReport, Rehearsal, RehearsalStatus } from '../fleet/rehearsal';
import { ParsedCommand, UsageError } from './command-line';

/** What this machine lacks to rehearse, one sentence each: the fleet's prerequisites and terraform. */
export function rehearsePrerequisites(): string[] {
  const missing = fleetPrerequisites();
  if (spawnSync('terraform', ['version'], { stdio: 'ignore' }).status !== 0) missing.push('terraform is not on the PATH (install terraform >= 1.4 from HashiCorp)');
  return missing;
}

/** `smartstack rehearse`, its command line parsed (see REHEARSE in main.ts); resolves with the exit code. */
export async function runRehearse(args: ParsedCommand): Promise<number> {
  const option = (name: string) => args.values[name] as string | undefined;
  const load: LoadOptions = {
    loadRequests: positiveInteger('--load-requests', option('load-requests')),
    loadSeconds: positiveInteger('--load-seconds', option('load-seconds')),
    settleSeconds: positiveInteger('--settle-seconds', option('settle-seconds')),
    stableSeconds: positiveInteger('--stable-seconds', option('stable-seconds')),
  };
  const outdir = args.positionals[0] ?? 'cdktf.out';

  let rehearsal: Rehearsal;
  try {
    const given = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.startsWith('TF_VAR_') && v !== undefined).map(([k, v]) => [k.slice(7), v!]));
    rehearsal = new Rehearsal({
      outdir,
      stack: option('stack'),
      variables: given,
      fleet: option('workdir') ? { workDir: option('workdir')! } : undefined,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    // The stack is checked first: its own mistakes are named whatever the machine has.
    const missing = rehearsePrerequisites();
    if (missing.length > 0) throw new Error(`this machine cannot rehearse:\n  - ${missing.join('\n  - ')}`);
  } catch (e) {
    process.stderr.write(`smartstack rehearse: ${(e as Error).message}\n`);
    return 2;
  }
  if (rehearsal.generated.length > 0) process.stderr.write(`random values for this run: ${rehearsal.generated.join(', ')}\n`);

  let interrupted: string | undefined;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (signal: string) => {
    interrupted ??= signal;
    process.stderr.write(`\n${signal}: destroying the fleet\n`);
    void rehearsal.destroy();
    wake();
  };
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((s) => [s, () => onSignal(s)] as const);
  handlers.forEach(([s, h]) => process.on(s, h));
  try {
    const apply = await Promise.race([rehearsal.start(), stopped.then(() => undefined)]);
    if (!apply || interrupted) return 130;
    if (apply.exitCode !== 0) {
      process.stderr.write(`${apply.output.slice(-6000)}\n${await rehearsal.diagnose(apply.output)}\n`);
      process.stderr.write(`smartstack rehearse: terraform apply failed (exit ${apply.exitCode}) after ${apply.seconds.toFixed(0)} s; its log: ${rehearsal.fleet.workDir}/terraform/terraform.log\n`);
      return 1;
    }
    process.stderr.write(`applied in ${apply.seconds.toFixed(0)} s\n`);
    if (!option('then')) {
      // Runs until Ctrl-C or SIGTERM, the normal end of a rehearsal without --then.
      await liveTable(rehearsal, stopped).catch((e: Error) => {
        if (!interrupted) throw e;
      });
      return 0;
    }
    process.stdout.write(renderRehearsalStatus(await rehearsal.status()));
    let [lastLine, lastAt] = ['', 0];
    const report = await Promise.race([
      rehearsal.change({
        outdir: option('then')!,
        stack: option('then-stack') ?? option('stack'),
        ...load,
        onSample: (t, consumers) => {
          // A line when what the consumers serve changes, and every 15 s.
          const line = consumers.map((c) => `${c.hostname}/${c.service}: ${c.error ?? c.servers.map((s) => `${s.address}:${s.port} ${s.up ? 'UP' : 'DOWN'}`).join(', ')}`).join('; ');
          if (line === lastLine && t - lastAt < 15) return;
          [lastLine, lastAt] = [line, t];
          process.stderr.write(`  t+${t.toFixed(0)} s  ${line}\n`);
        },
      }),
      stopped.then(() => undefined),
    ]);
    if (!report || interrupted) return 130;
    if (report.applyExitCode !== 0) process.stderr.write(`${report.applyOutput.slice(-6000)}\n${await rehearsal.diagnose(report.applyOutput)}\n`);
    process.stdout.write(renderRehearsalStatus(await rehearsal.status()));
    process.stdout.write(renderChangeReport(report));
    if (option('report')) writeFileSync(option('report')!, `${JSON.stringify({ ...report, applyOutput: undefined }, null, 2)}\n`);
    return report.applyExitCode === 0 && report.services.every((s) => s.backInServiceSeconds !== null) ? 0 : 1;
  } catch (e) {
    if (interrupted) return 130;
    process.stderr.write(`smartstack rehearse: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await rehearsal.destroy();
    handlers.forEach(([s, h]) => process.off(s, h));
  }
}

async function liveTable(rehearsal: Rehearsal, stopped: Promise<void>): Promise<void> {
  process.stderr.write(`fleet running in ${rehearsal.fleet.workDir}; Ctrl-C destroys it\n`);
  let previous = '';
  for (;;) {
    const table = renderRehearsalStatus(await rehearsal.status());
    if (table !== previous) {
      process.stdout.write((process.stdout.isTTY ? '\x1b[2J\x1b[H' : '\n') + table);
      previous = table;
    }
    const tick = new Promise<'tick'>((resolve) => setTimeout(() => resolve('tick'), 2000));
    if ((await Promise.race([tick, stopped.then(() => 'stop' as const)])) === 'stop') return;
  }
}

/** Hosts and roles, the members' modes, what ZooKeeper says is registered, then each consumer's HAProxy servers. */
export function renderRehearsalStatus(status: RehearsalStatus): string {
  const modes = new Map(status.members.map((m) => [m.hostname, m.mode || 'not serving']));
  const lines = ['Hosts', ...table(['host', 'address', 'stands in for', 'roles'], status.hosts.map((h) => [
    h.hostname,
    h.address,
    h.privateAddress,
    h.roles.map((r) => (modes.has(h.hostname) && r === 'zookeeper member' ? `zookeeper member (${modes.get(h.hostname)})` : r)).join(', '),
  ]))];
  lines.push('', 'Registered in ZooKeeper');
  lines.push(status.registryError !== undefined ? `  cannot be read: ${status.registryError}` : status.registry ? renderStatus(status.registry).trimEnd() : '  not read yet');
  lines.push('', "Consumers' HAProxy (servers in service)");
  lines.push(...table(['host', 'service', 'servers'], status.consumers.map((c) => [
    c.hostname,
    c.service,
    c.error ?? (c.servers.map((s) => `${s.address}:${s.port} ${s.up ? 'UP' : 'DOWN'}`).join(', ') || 'none'),
  ])));
  return lines.join('\n') + '\n';
}

export function renderChangeReport(report: ChangeReport): string {
  const hosts = [
    report.addedHosts.length > 0 ? `; hosts added: ${report.addedHosts.join(', ')}` : '',
    report.retiredHosts.length > 0 ? `; hosts removed and powered off: ${report.retiredHosts.join(', ')}` : '',
  ].join('');
  return renderLoadReport(`Change applied under load: terraform exit ${report.applyExitCode} after ${report.applySeconds.toFixed(0)} s; load ran ${report.loadSeconds.toFixed(0)} s${hosts}`, report);
}

/** The per-service table of requests, failures, convergence and slots, after a headline. */
export function renderLoadReport(headline: string, report: LoadReport): string {
  const lines = [
    '',
    headline,
    ...table(
      ['service', 'through', 'requests', 'failed', 'back in service after', 'out of service', 'slots'],
      report.services.map((s) => [
        s.service,
        s.consumers.join(','),
        String(s.requests),
        `${s.failures}${s.failures > 0 ? ` (${Object.entries(s.failuresByStatus).map(([c, n]) => `${n}× ${c}`).join(', ')})` : ''}`,
        s.backInServiceSeconds === null ? 'not back' : `${s.backInServiceSeconds.toFixed(1)} s`,
        `${s.outOfServiceSeconds.toFixed(1)} s`,
        s.slotsBefore === s.slotsAfter ? String(s.slotsAfter) : `${s.slotsBefore} → ${s.slotsAfter}`,
      ]),
    ),
  ];
  for (const s of report.services.filter((x) => x.notInService.length > 0)) lines.push(`  ${s.service}: not in service at the end: ${s.notInService.join(', ')}`);
  const seconds = (n: number | null) => (n === null ? 'not within the run' : `${n.toFixed(1)} s`);
  for (const s of report.services) {
    for (const g of s.gone) lines.push(`  ${s.service}: ${g.provider} (host down): not UP after ${seconds(g.downAfterSeconds)}, out of HAProxy after ${seconds(g.removedAfterSeconds)}`);
  }
  if (report.fewestServingMembers !== null) lines.push(`  zookeeper: at least ${report.fewestMembersUp} of ${report.members} members up and ${report.fewestServingMembers} serving throughout`);
  return lines.join('\n') + '\n';
}

/** A given option's whole number; undefined when not given, so the rehearsal's default applies. */
function positiveInteger(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(raw)) throw new UsageError(`${flag} ${raw}: expected a positive whole number`, 'rehearse');
  return Number(raw);
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '  ' + cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}
