/** What the ruleset needs of a firewall rule (CloudConfig's `FirewallRule` is one). */
export interface NftablesRule {
  readonly description: string;
  readonly ports: number[];
  readonly sources: string[];
}

/**
 * Renders the host's `inet smartstack` table. It only narrows: for each managed port it accepts
 * the allowed sources and drops everyone else, and leaves every other port (SSH among them) to
 * whatever firewall the host already has. Loading it replaces the previous version atomically.
 */
export function renderNftables(rules: NftablesRule[]): string {
  const lines = [
    '# Managed by cdktf-smartstack. Loaded by smartstack-firewall.service.',
    'table inet smartstack',
    'delete table inet smartstack',
    'table inet smartstack {',
    '  chain input {',
    '    type filter hook input priority filter - 1; policy accept;',
    '    iif "lo" accept',
  ];
  // Every accept before any drop, so two rules that share a port both take effect.
  for (const rule of rules) {
    const sources = [...new Set(rule.sources)].sort();
    if (sources.length > 0) {
      lines.push(`    tcp dport { ${portList(rule)} } ip saddr { ${sources.join(', ')} } accept comment "${comment(rule)}"`);
    }
  }
  for (const rule of rules) {
    lines.push(`    tcp dport { ${portList(rule)} } drop comment "${comment(rule)}: everyone else"`);
  }
  lines.push('  }', '}', '');
  return lines.join('\n');
}

function portList(rule: NftablesRule): string {
  return [...new Set(rule.ports)].sort((a, b) => a - b).join(', ');
}

function comment(rule: NftablesRule): string {
  return rule.description.replace(/[^A-Za-z0-9 ,._:/-]/g, '_');
}
