import { MeshStatus } from './local-mesh';

/** The live status of a local mesh as a plain-text table. */
export function renderMeshStatus(status: MeshStatus): string {
  const lines = ['ZooKeeper members', ...table(['host', 'address', 'mode'], status.members.map((m) => [m.hostname, m.address, m.mode || 'not serving']))];
  lines.push('', 'Services (registered, healthy instances)');
  if (status.registry?.reachable) {
    const rows = status.registry.services.flatMap((s) =>
      s.instances.length === 0
        ? [[s.name, '-', 'none registered']]
        : s.instances.map((i) => (i.valid ? [s.name, i.name ?? i.node, `${i.host}:${i.port}`] : [s.name, i.node, `skipped: ${i.reason}`])),
    );
    lines.push(...table(['service', 'instance', 'address'], rows));
  } else {
    lines.push(`  ZooKeeper cannot be read: ${status.registryError ?? 'no session could be established'}`);
  }
  return lines.join('\n') + '\n';
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '  ' + cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}
