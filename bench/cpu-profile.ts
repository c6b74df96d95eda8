/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof`) and names the hot spots: functions by self time,
 * and this library's functions (`lib/`) by inclusive time (what they cost with everything they call, cdktf
 * included). Positions in transpiled JavaScript are mapped back to the TypeScript `file:line`
 * through the `.js.map` beside it.
 */
import { existsSync, readFileSync } from 'fs';
import { join, relative } from 'path';
import { fileURLToPath } from 'url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  /** 0-based. */
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: number[];
  /** 1-based source lines inside the function and the samples taken on each. */
  readonly positionTicks?: Array<{ line: number; ticks: number }>;
}

interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: number[];
  readonly timeDeltas: number[];
}

export interface HotSpot {
  /** Function name (or `(anonymous)`). */
  readonly function: string;
  /** `path:line` of the function, relative to the repository; TypeScript line for our sources. */
  readonly location: string;
  /** The line inside it that took the most samples, if known. */
  readonly hottestLine?: string;
  readonly ms: number;
  /** Share of the profile's whole time, in percent. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Where the CPU was, by function (self time). */
  readonly bySelfTime: HotSpot[];
  /** This library's functions by inclusive time (callees included). */
  readonly oursByInclusiveTime: HotSpot[];
  /**
   * Each sample charged to the innermost function of this library on its stack: the library code
   * that made the call into cdktf, constructs or Node where the time went.
   */
  readonly oursByInnermostFrame: HotSpot[];
}

// --- source maps (version 3, `mappings` in base64 VLQ) -------------------------------------------

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** For each generated line, segments [generatedColumn, originalLine] (0-based), by column. */
type LineMap = Array<Array<[number, number]>>;

function decodeMappings(mappings: string): LineMap {
  const lines: LineMap = [];
  let originalLine = 0;
  for (const lineText of mappings.split(';')) {
    const segments: Array<[number, number]> = [];
    let column = 0;
    for (const segment of lineText.split(',')) {
      if (segment === '') continue;
      const values: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of segment) {
        const digit = BASE64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
        } else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += values[0];
      if (values.length >= 4) {
        originalLine += values[2];
        segments.push([column, originalLine]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

const mapCache = new Map<string, { source: string; lines: LineMap } | null>();

function sourceMapOf(jsPath: string): { source: string; lines: LineMap } | null {
  if (mapCache.has(jsPath)) return mapCache.get(jsPath)!;
  let entry: { source: string; lines: LineMap } | null = null;
  const mapPath = `${jsPath}.map`;
  if (existsSync(mapPath)) {
    const map = JSON.parse(readFileSync(mapPath, 'utf8')) as { sources: string[]; mappings: string };
    entry = { source: map.sources[0], lines: decodeMappings(map.mappings) };
  }
  mapCache.set(jsPath, entry);
  return entry;
}

/** Maps a 0-based generated position to the 1-based original line, if a map says. */
function originalLine(jsPath: string, line: number, column: number): { source: string; line: number } | undefined {
  const map = sourceMapOf(jsPath);
  const segments = map?.lines[line];
  if (!map || !segments || segments.length === 0) return undefined;
  let best = segments[0];
  for (const s of segments) if (s[0] <= column) best = s;
  return { source: map.source, line: best[1] + 1 };
}

// --- the summary --------------------------------------------------------------------------------

export interface SummaryOptions {
  /** Repository root, for relative paths. */
  readonly root: string;
  /** Transpiled tree whose `.js` paths stand for the repository's `.ts` files. */
  readonly jsRoot?: string;
  readonly top?: number;
}

export function summarizeCpuProfile(path: string, options: SummaryOptions): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const top = options.top ?? 12;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = profile.endTime - profile.startTime;

  const filePath = (url: string): string => (url.startsWith('file://') ? fileURLToPath(url) : url);
  const describe = (frame: CallFrame, lineTicks?: Array<{ line: number; ticks: number }>): { key: string; location: string; hottestLine?: string; ours: boolean } => {
    const file = filePath(frame.url);
    let shown = file === '' ? '(native)' : relative(options.root, file);
    let line = frame.lineNumber + 1;
    let hottest: string | undefined;
    const ours = options.jsRoot !== undefined && file.startsWith(join(options.jsRoot, 'lib'));
    const transpiled = options.jsRoot !== undefined && file.startsWith(options.jsRoot);
    if (transpiled && options.jsRoot) {
      const mapped = originalLine(file, frame.lineNumber, frame.columnNumber);
      shown = relative(options.jsRoot, file).replace(/\.js$/, '.ts');
      if (mapped) line = mapped.line;
      // Ticks of functions inlined from other scripts carry their own line numbers: keep only
      // lines at or after this function's start.
      const own = (lineTicks ?? []).filter((t) => t.line - 1 >= frame.lineNumber);
      if (own.length > 0) {
        const best = own.sort((a, b) => b.ticks - a.ticks)[0];
        const m = originalLine(file, best.line - 1, 0);
        hottest = `${shown}:${m?.line ?? best.line}`;
      }
    }
    const location = file === '' ? shown : `${shown}:${line}`;
    return { key: `${frame.functionName}@${location}`, location, hottestLine: hottest, ours };
  };

  // Self time, by function.
  const self = new Map<string, { fn: string; location: string; us: number; ticks: Map<number, number>; node: ProfileNode }>();
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0) continue;
    const d = describe(node.callFrame);
    const entry = self.get(d.key) ?? { fn: node.callFrame.functionName || '(anonymous)', location: d.location, us: 0, ticks: new Map(), node };
    entry.us += us;
    for (const t of node.positionTicks ?? []) entry.ticks.set(t.line, (entry.ticks.get(t.line) ?? 0) + t.ticks);
    self.set(d.key, entry);
  }
  const bySelfTime = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => {
      const ticks = [...e.ticks.entries()].map(([line, t]) => ({ line, ticks: t }));
      const d = describe(e.node.callFrame, ticks);
      return { function: e.fn, location: e.location, hottestLine: d.hottestLine, ms: e.us / 1000, percent: (100 * e.us) / totalUs };
    });

  // Inclusive time of our functions: each sample counts once per distinct function on its stack.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const described = new Map<number, ReturnType<typeof describe>>();
  const describeNode = (id: number) => {
    let d = described.get(id);
    if (!d) {
      d = describe(byId.get(id)!.callFrame);
      described.set(id, d);
    }
    return d;
  };
  const inclusive = new Map<string, { fn: string; location: string; us: number }>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const d = describeNode(cur);
      if (!d.ours || seen.has(d.key)) continue;
      seen.add(d.key);
      const frame = byId.get(cur)!.callFrame;
      const entry = inclusive.get(d.key) ?? { fn: frame.functionName || '(anonymous)', location: d.location, us: 0 };
      entry.us += us;
      inclusive.set(d.key, entry);
    }
  }
  const innermost = new Map<string, { fn: string; location: string; us: number }>();
  for (const [id, us] of selfUs) {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const d = describeNode(cur);
      if (!d.ours) continue;
      const frame = byId.get(cur)!.callFrame;
      const entry = innermost.get(d.key) ?? { fn: frame.functionName || '(anonymous)', location: d.location, us: 0 };
      entry.us += us;
      innermost.set(d.key, entry);
      break;
    }
  }
  const oursByInnermostFrame = [...innermost.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ function: e.fn, location: e.location, ms: e.us / 1000, percent: (100 * e.us) / totalUs }));

  const oursByInclusiveTime = [...inclusive.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ function: e.fn, location: e.location, ms: e.us / 1000, percent: (100 * e.us) / totalUs }));

  return { totalMs: totalUs / 1000, bySelfTime, oursByInclusiveTime, oursByInnermostFrame };
}
