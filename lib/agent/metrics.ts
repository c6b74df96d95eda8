import { createServer, Server } from 'http';

/** Label names to values. */
export type MetricLabels = { readonly [name: string]: string };

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly values: Map<string, { labels: MetricLabels; value: number }>;
  /** Computed at scrape time, for gauges that mirror live state. */
  collect?: () => { labels: MetricLabels; value: number }[];
}

/** A counter family; `inc` adds to the series with the given labels. */
export class Counter {
  public constructor(private readonly family: Family) {}

  public inc(labels: MetricLabels = {}, by = 1): void {
    const key = seriesKey(labels);
    const series = this.family.values.get(key) ?? { labels, value: 0 };
    series.value += by;
    this.family.values.set(key, series);
  }

  public value(labels: MetricLabels = {}): number {
    return this.family.values.get(seriesKey(labels))?.value ?? 0;
  }
}

/** A gauge family; `set` replaces the series with the given labels. */
export class Gauge {
  public constructor(private readonly family: Family) {}

  public set(labels: MetricLabels, value: number): void {
    this.family.values.set(seriesKey(labels), { labels, value });
  }
}

/**
 * The agent's Prometheus metrics, in the text exposition format, served on 127.0.0.1 only:
 * they describe the mesh and are not for the network.
 */
export class Metrics {
  private readonly families = new Map<string, Family>();

  /** A counter; with `collect`, its series are read at scrape time from live state instead. */
  public counter(name: string, help: string, collect?: () => { labels: MetricLabels; value: number }[]): Counter {
    const family = this.family(name, help, 'counter');
    if (collect) family.collect = collect;
    return new Counter(family);
  }

  public gauge(name: string, help: string, collect?: () => { labels: MetricLabels; value: number }[]): Gauge {
    const family = this.family(name, help, 'gauge');
    if (collect) family.collect = collect;
    return new Gauge(family);
  }

  public render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      const series = f.collect ? f.collect() : [...f.values.values()];
      for (const s of series) out.push(`${f.name}${labelText(s.labels)} ${s.value}`);
    }
    return out.join('\n') + '\n';
  }

  /** Serves `/metrics` on host:port (default 127.0.0.1). */
  public serve(port: number, host = '127.0.0.1'): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(this.render());
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }

  private family(name: string, help: string, type: 'counter' | 'gauge'): Family {
    const existing = this.families.get(name);
    if (existing) return existing;
    const family: Family = { name, help, type, values: new Map() };
    this.families.set(name, family);
    return family;
  }
}

function seriesKey(labels: MetricLabels): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

function labelText(labels: MetricLabels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${escape(labels[k])}"`).join(',')}}`;
}
