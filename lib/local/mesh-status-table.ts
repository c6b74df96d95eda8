import { MeshStatus } from './local-mesh';

/**
 * The live status of a local mesh as plain text: every host with its address and roles, what each
 * consumer's applications call, and each service's instances, or why it has none.
 */
export function renderMeshStatus(status: MeshStatus): string {
  const modes = new Map(status.members.map((m) => [m.hostname, m.mode || 'not serving']));
  const hostRows = status.hosts.map((h) => [
    h.hostname,
    h.address,
    h.privateAddress,
    h.roles.map((r) => (r === 'zookeeper member' ? `zookeeper member (${modes.get(h.hostname) ?? 'not serving'})` : r)).join(', '),
  ]);
  const lines = ['Hosts', ...table(['host', 'address', 'in the stack', 'role'], hostRows)];

  const endpoints = status.services.flatMap((s) => s.consumers.map((c) => `  ${c.hostname} ${c.address}:${c.localPort} → ${s.name}`));
  if (endpoints.length > 0) lines.push('', "Endpoints (what each consumer's applications call)", ...endpoints);

  lines.push('', 'Services (healthy instances registered in ZooKeeper)');
  if (status.registryError !== undefined) lines.push(`  ZooKeeper cannot be read: ${status.registryError}`);
  const rows = status.services.flatMap((s) => {
    const valid = (s.instances ?? []).filter((i) => i.valid);
    const skipped = (s.instances ?? []).filter((i) => !i.valid).map((i) => [s.name, i.node, `skipped: ${i.reason}`]);
    if (valid.length > 0) return [...valid.map((i) => [s.name, i.name ?? i.node, `${i.host}:${i.port}`]), ...skipped];
    const why = s.providers.length === 0 ? 'no host of this stack provides it' : s.instances === undefined ? 'unknown' : 'none registered';
    return [
      [s.name, '-', why],
      ...skipped,
      ...s.lastChecks.map((c) => [s.name, c.hostname, `nerve: ${c.result}`]),
    ];
  });
  lines.push(...table(['service', 'instance', 'address'], rows));
  return lines.join('\n') + '\n';
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '  ' + cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}
