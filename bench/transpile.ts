/**
 * Transpiles the library's and the benchmarks' TypeScript sources to plain JavaScript in a scratch
 * folder inside the repository (so `node_modules` resolves), for workers whose memory and start-up
 * time are measured: a worker under ts-node would carry the TypeScript compiler (~100 MiB) in every
 * figure. Assets beside the sources (templates, package.json) are copied along.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'fs';
import { dirname, join, relative } from 'path';
import * as ts from 'typescript';
import { REPO_ROOT } from './subprocess';
import { writeAgentsPackage } from '../lib/cloud-init/agents-package';

const SOURCE_DIRS = ['lib', 'bench', 'examples', 'bin'];

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

let written: string | undefined;

/** The tree `transpileSources` wrote in this run, writing it on first use. */
export function transpiledTree(): string {
  written ??= transpileSources();
  return written;
}

/** Removes the tree `transpiledTree` wrote, if any. */
export function removeTranspiledTree(): void {
  if (written) rmSync(written, { recursive: true, force: true });
  written = undefined;
}

/** Writes the JavaScript tree under `outRoot` and returns it. Existing content is replaced. */
export function transpileSources(outRoot = join(REPO_ROOT, '.tmp', 'bench-js')): string {
  rmSync(outRoot, { recursive: true, force: true });
  const compilerOptions: ts.CompilerOptions = {
    module: ts.ModuleKind.CommonJS,
    target: ts.ScriptTarget.ES2022,
    esModuleInterop: true,
    experimentalDecorators: true,
    // Maps let a CPU profile name the TypeScript line.
    sourceMap: true,
  };
  for (const top of SOURCE_DIRS) {
    for (const file of walk(join(REPO_ROOT, top))) {
      const rel = relative(REPO_ROOT, file);
      const target = join(outRoot, rel);
      if (file.endsWith('.d.ts') || file.endsWith('.js')) continue;
      mkdirSync(dirname(target), { recursive: true });
      if (file.endsWith('.ts')) {
        const js = target.replace(/\.ts$/, '.js');
        const out = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions, fileName: file });
        writeFileSync(js, out.outputText);
        if (out.sourceMapText) writeFileSync(`${js}.map`, out.sourceMapText);
      } else {
        copyFileSync(file, target);
      }
    }
  }
  copyFileSync(join(REPO_ROOT, 'package.json'), join(outRoot, 'package.json'));
  // As the build does: the agents' package beside the code, which a synthesis then takes.
  writeAgentsPackage(outRoot);
  return outRoot;
}
