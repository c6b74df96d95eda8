import { createHash } from 'crypto';
import { existsSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'fs';
import { dirname, join, relative, sep } from 'path';
import { gzipSync } from 'zlib';

/**
 * The agents' package that a sidecar host receives: this package's own compiled code, its command
 * and its runtime dependencies, as a gzipped tar archive. It is built from the files of the
 * package that synthesizes the stack, so the hosts run exactly that version, and it needs no npm
 * and no registry on the host. Deterministic: the same files give the same bytes (sorted entries,
 * no timestamps, no owners), so its checksum changes only when the code does.
 */
export interface AgentsPackage {
  /** The archive. */
  readonly archive: Buffer;
  /** SHA-256 of the archive, hex. */
  readonly sha256: string;
  /** The package version it holds. */
  readonly version: string;
}

const PACKAGE_ROOT = join(__dirname, '..', '..');
/**
 * Where `npm run build` writes the archive of a version, so that a synthesis need not make it
 * (about 0.3 s). The version is in the name: a copy of the package with another version builds its own.
 */
export function prebuiltArchivePath(version: string): string {
  return join('lib', agentsPackageFileName(version));
}

/** The archive's file name, as the build writes it into `lib/` and a host's `packageUrl` may name it. */
export function agentsPackageFileName(version: string = agentsPackage().version): string {
  return `agents-package-${version}.tgz`;
}
let cached: AgentsPackage | undefined;

/**
 * The agents' package of the code that is running now: the one the build wrote when no file it is
 * made of changed since, else built now; once per process.
 */
export function agentsPackage(): AgentsPackage {
  cached ??= prebuiltAgentsPackage(PACKAGE_ROOT) ?? buildAgentsPackage(PACKAGE_ROOT);
  return cached;
}

/** The archive the build wrote in `root`, unless it is missing or a file it is made of is newer. */
export function prebuiltAgentsPackage(root: string): AgentsPackage | undefined {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const file = join(root, prebuiltArchivePath(version));
  let builtAt: number;
  try {
    builtAt = statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  if (agentSources(root).some((source) => statSync(source).mtimeMs > builtAt)) return undefined;
  const archive = readFileSync(file);
  return { archive, sha256: createHash('sha256').update(archive).digest('hex'), version };
}

/** Builds the archive of `root` and writes it where `prebuiltAgentsPackage` finds it (the build's last step). */
export function writeAgentsPackage(root: string): AgentsPackage {
  const agents = buildAgentsPackage(root);
  const file = join(root, prebuiltArchivePath(agents.version));
  for (const old of readdirSync(join(root, 'lib')).filter((f) => /^agents-package-.+\.tgz$/.test(f))) unlinkSync(join(root, 'lib', old));
  writeFileSync(`${file}.tmp`, agents.archive);
  renameSync(`${file}.tmp`, file);
  return agents;
}

/**
 * The files whose change makes the prebuilt archive stale: the manifest, the listed files and
 * folders, and each runtime dependency's package.json (an install that changes a dependency
 * rewrites it).
 */
function agentSources(root: string): string[] {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  return [
    join(root, 'package.json'),
    ...AGENT_FILES.map((file) => join(root, file)),
    ...AGENT_FOLDERS.flatMap((folder) => walk(join(root, folder)).filter((f) => f.endsWith('.js') || f.endsWith('.mustache'))),
    ...[...runtimeDependencies(root, manifest).values()].map((dir) => join(dir, 'package.json')),
  ];
}

/**
 * What the agents run, by layer (lib/README.md): the command's entry point and the layers below the
 * constructs that the agents use. Nothing of the constructs, the document, the tools (local, fleet)
 * or the tests; a test unpacks the archive and checks both.
 */
export const AGENT_FILES: readonly string[] = ['bin/smartstack', 'lib/cli/main.js', 'lib/cli/command-line.js'];
export const AGENT_FOLDERS: readonly string[] = ['lib/agent', 'lib/render', 'lib/schema', 'lib/model'];

/**
 * Builds the archive from a package folder: `package.json`, {@link AGENT_FILES}, the compiled
 * JavaScript and templates of {@link AGENT_FOLDERS}, and each runtime dependency (found as Node
 * would find it) under `node_modules/`.
 */
export function buildAgentsPackage(root: string): AgentsPackage {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const missing = AGENT_FILES.find((file) => !existsSync(join(root, file)));
  if (missing !== undefined) throw new Error(`the agents' package cannot be built: ${join(root, missing)} is missing (run the build first)`);
  const entries: TarEntry[] = [];
  // The host needs only what runs: the manifest without the construct side's peer dependencies.
  const hostManifest = { name: manifest.name, version: manifest.version, license: manifest.license, main: manifest.main, bin: manifest.bin, dependencies: manifest.dependencies };
  entries.push({ path: 'package/package.json', content: Buffer.from(JSON.stringify(hostManifest, null, 2) + '\n'), executable: false });
  for (const file of AGENT_FILES) entries.push(fileEntry(root, join(root, file), 'package'));
  for (const folder of AGENT_FOLDERS) {
    for (const file of walk(join(root, folder))) {
      if (file.endsWith('.js') || file.endsWith('.mustache')) entries.push(fileEntry(root, file, 'package'));
    }
  }
  for (const [name, dir] of runtimeDependencies(root, manifest)) {
    for (const file of walk(dir, ['node_modules'])) entries.push(fileEntry(dir, file, `package/node_modules/${name}`));
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const archive = gzipSync(tar(entries));
  return { archive, sha256: createHash('sha256').update(archive).digest('hex'), version: manifest.version };
}

/** Each runtime dependency, transitively, by name: a name needed in two versions is an error. */
function runtimeDependencies(root: string, manifest: { dependencies?: Record<string, string> }): Map<string, string> {
  const found = new Map<string, string>();
  const visit = (from: string, deps: Record<string, string> | undefined) => {
    for (const name of Object.keys(deps ?? {}).sort()) {
      const dir = dirname(require.resolve(`${name}/package.json`, { paths: [from] }));
      const existing = found.get(name);
      if (existing === dir) continue;
      if (existing !== undefined) throw new Error(`the agents' package needs ${name} twice (${existing}, ${dir}); its layout is flat`);
      found.set(name, dir);
      visit(dir, JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).dependencies);
    }
  };
  visit(root, manifest.dependencies);
  return found;
}

function walk(dir: string, skip: string[] = []): string[] {
  if (!existsSync(dir)) return [];
  const files: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (skip.includes(name)) continue;
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) files.push(...walk(path, skip));
    else if (stat.isFile()) files.push(path);
  }
  return files;
}

interface TarEntry {
  readonly path: string;
  readonly content: Buffer;
  readonly executable: boolean;
}

function fileEntry(base: string, file: string, prefix: string): TarEntry {
  return {
    path: `${prefix}/${relative(base, file).split(sep).join('/')}`,
    content: readFileSync(file),
    executable: (statSync(file).mode & 0o111) !== 0,
  };
}

/** A POSIX ustar archive of regular files: owner root, mtime 0, mode 0644 or 0755. */
function tar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const header = Buffer.alloc(512);
    const [prefix, name] = splitPath(entry.path);
    header.write(name, 0, 100, 'utf8');
    header.write(octal(entry.executable ? 0o755 : 0o644, 8), 100);
    header.write(octal(0, 8), 108);
    header.write(octal(0, 8), 116);
    header.write(octal(entry.content.length, 12), 124);
    header.write(octal(0, 12), 136);
    header.write('        ', 148);
    header.write('0', 156);
    header.write('ustar\u000000', 257, 'binary');
    header.write('root', 265);
    header.write('root', 297);
    header.write(prefix, 345, 155, 'utf8');
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(octal(sum, 8), 148);
    blocks.push(header, entry.content, Buffer.alloc((512 - (entry.content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** ustar keeps names of up to 100 bytes, plus a prefix of up to 155 split at a '/'. */
function splitPath(path: string): [string, string] {
  if (Buffer.byteLength(path) <= 100) return ['', path];
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return [prefix, name];
  }
  throw new Error(`the agents' package cannot hold the path ${path}: too long for a tar header`);
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}
