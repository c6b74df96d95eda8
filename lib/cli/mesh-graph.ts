import { MeshDescription } from '../local/mesh-description';

/**
 * The mesh as a picture: hosts (the ZooKeeper members grouped as the ensemble), services, which
 * host provides each (and on which port) and which consumes it (and on which local port). Pure:
 * the same description gives the same text, so the README's diagram can be checked against it.
 */

/** A Mermaid flowchart, which GitHub renders in a ```mermaid block. */
export function renderMermaid(mesh: MeshDescription): string {
  const ids = nodeIds(mesh);
  const host = (h: { hostname: string; privateAddress: string }) => `${ids.host(h.hostname)}["${h.hostname}<br/>${h.privateAddress}"]`;
  const members = mesh.hosts.filter((h) => h.roles.includes('zookeeper member'));
  const lines = ['flowchart LR'];
  if (members.length > 0) {
    lines.push('  subgraph ensemble["ZooKeeper ensemble"]', ...members.map((h) => `    ${host(h)}`), '  end');
  }
  for (const h of mesh.hosts.filter((x) => !members.includes(x))) lines.push(`  ${host(h)}`);
  for (const s of mesh.services) lines.push(`  ${ids.service(s.name)}(["${s.name}"])`);
  for (const s of mesh.services) {
    for (const p of s.providers) lines.push(`  ${ids.host(p.hostname)} -->|"provides :${p.port}"| ${ids.service(s.name)}`);
    for (const c of s.consumers) lines.push(`  ${ids.host(c.hostname)} -->|"consumes on localhost:${c.localPort}"| ${ids.service(s.name)}`);
    if (members.length > 0) lines.push(`  ${ids.service(s.name)} -.->|"${s.discoveryPath}"| ensemble`);
  }
  return lines.join('\n') + '\n';
}

/** The same picture in Graphviz's language, for `dot -Tsvg`. */
export function renderDot(mesh: MeshDescription): string {
  const q = (text: string) => JSON.stringify(text);
  const members = mesh.hosts.filter((h) => h.roles.includes('zookeeper member'));
  const host = (h: { hostname: string; privateAddress: string }) => `${q(`host:${h.hostname}`)} [label=${q(`${h.hostname}\n${h.privateAddress}`)}, shape=box]`;
  const lines = ['digraph mesh {', '  rankdir=LR; compound=true;', '  node [fontname="Helvetica"]; edge [fontname="Helvetica", fontsize=10];'];
  if (members.length > 0) {
    lines.push('  subgraph cluster_ensemble {', '    label="ZooKeeper ensemble";', ...members.map((h) => `    ${host(h)};`), '  }');
  }
  for (const h of mesh.hosts.filter((x) => !members.includes(x))) lines.push(`  ${host(h)};`);
  for (const s of mesh.services) lines.push(`  ${q(`service:${s.name}`)} [label=${q(s.name)}, shape=ellipse, style=rounded];`);
  for (const s of mesh.services) {
    for (const p of s.providers) lines.push(`  ${q(`host:${p.hostname}`)} -> ${q(`service:${s.name}`)} [label=${q(`provides :${p.port}`)}];`);
    for (const c of s.consumers) lines.push(`  ${q(`host:${c.hostname}`)} -> ${q(`service:${s.name}`)} [label=${q(`consumes on localhost:${c.localPort}`)}];`);
    if (members.length > 0) lines.push(`  ${q(`service:${s.name}`)} -> ${q(`host:${members[0].hostname}`)} [label=${q(s.discoveryPath)}, style=dashed, lhead=cluster_ensemble];`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Mermaid node ids: letters, digits and _ only, distinct for hosts and services. */
function nodeIds(mesh: MeshDescription): { host(name: string): string; service(name: string): string } {
  const make = (prefix: string, names: string[]) => new Map(names.map((n, i) => [n, `${prefix}${i}_${n.replace(/[^A-Za-z0-9]/g, '_')}`]));
  const hosts = make('h', mesh.hosts.map((h) => h.hostname));
  const services = make('s', mesh.services.map((s) => s.name));
  return { host: (n) => hosts.get(n)!, service: (n) => services.get(n)! };
}
