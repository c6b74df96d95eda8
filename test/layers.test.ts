/**
 * The layers of lib/ (lib/README.md): an import points down only, peers do not import each other,
 * and cdktf is imported through the construct layer's edge module (lib/cdktf-edge.ts) alone.
 */
import { readdirSync, readFileSync, statSync } from 'fs';
import { dirname, join, normalize, relative } from 'path';
import * as ts from 'typescript';

const LIB = join(__dirname, '..', 'lib');

/** Each folder's rank, bottom first; folders of one rank are peers. `.` is lib/ itself: the constructs. */
const RANKS: Record<string, number> = {
  model: 0,
  schema: 1,
  render: 2,
  'cloud-init': 3,
  agent: 3,
  '.': 4,
  local: 5,
  fleet: 5,
  cli: 6,
};
/** The one module of the construct layer that imports cdktf and the null provider. */
const CDKTF_EDGE = 'cdktf-edge.ts';
/** Other files that still import cdktf, and why they may for now. */
const CDKTF_ELSEWHERE: Record<string, string> = {
  'cloud-init/apply-time-secrets.ts': "resolves secrets' Terraform expressions with cdktf's resolver, behind a public API (CloudConfig.secrets) that takes a construct",
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

interface Import { readonly from: string; readonly to: string }

function imports(): { local: Import[]; packages: Import[] } {
  const local: Import[] = [];
  const packages: Import[] = [];
  for (const file of sources(LIB)) {
    const from = relative(LIB, file);
    for (const { fileName } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (fileName.startsWith('.')) local.push({ from, to: relative(LIB, resolveModule(join(dirname(file), fileName))) });
      else packages.push({ from, to: fileName });
    }
  }
  return { local, packages };
}

function resolveModule(path: string): string {
  for (const candidate of [`${path}.ts`, join(path, 'index.ts'), path]) {
    try {
      if (statSync(candidate).isFile()) return normalize(candidate);
    } catch { /* the next candidate */ }
  }
  throw new Error(`${path}: no such module`);
}

const folder = (file: string) => dirname(file).split('/')[0];

test('every folder of lib/ has a layer', () => {
  const folders = [...new Set(sources(LIB).map((f) => folder(relative(LIB, f))))].sort();
  expect(folders.filter((f) => RANKS[f] === undefined)).toEqual([]);
});

/** The imports that point up, or across to a peer. */
function wrongWay(list: Import[]): string[] {
  return list
    .filter(({ from, to }) => folder(from) !== folder(to) && RANKS[folder(to)] >= RANKS[folder(from)])
    .map(({ from, to }) => `${from} -> ${to} (${folder(from)} is rank ${RANKS[folder(from)]}, ${folder(to)} rank ${RANKS[folder(to)]})`);
}

/** Each circle of modules importing each other, as its members. */
function circles(list: Import[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of list) next.set(from, [...(next.get(from) ?? []), to]);
  // Tarjan's strongly connected components.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do component.push((w = stack.pop()!)); while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('imports point down only, and peers do not import each other', () => {
  expect(wrongWay(imports().local)).toEqual([]);
});

test('no modules outside the construct layer import each other in a circle', () => {
  expect(circles(imports().local).filter((c) => c.some((m) => folder(m) !== '.'))).toEqual([]);
});

test('the checks see an upward import, an import between peers and a circle', () => {
  expect(wrongWay([{ from: 'render/nftables.ts', to: 'cloud-init/cloud-config.ts' }, { from: 'fleet/rehearsal.ts', to: 'local/local-mesh.ts' }, { from: 'cli/main.ts', to: 'agent/nerve.ts' }]))
    .toEqual(['render/nftables.ts -> cloud-init/cloud-config.ts (render is rank 2, cloud-init rank 3)', 'fleet/rehearsal.ts -> local/local-mesh.ts (fleet is rank 5, local rank 5)']);
  expect(circles([{ from: 'a.ts', to: 'b.ts' }, { from: 'b.ts', to: 'c.ts' }, { from: 'c.ts', to: 'a.ts' }, { from: 'c.ts', to: 'd.ts' }])).toEqual([['a.ts', 'b.ts', 'c.ts']]);
});

test('cdktf is imported through the edge module only', () => {
  const outside = imports().packages
    .filter(({ from, to }) => (to === 'cdktf' || to.startsWith('@cdktf/')) && from !== CDKTF_EDGE && CDKTF_ELSEWHERE[from] === undefined)
    .map(({ from, to }) => `${from} imports ${to}`);
  expect(outside).toEqual([]);
});
