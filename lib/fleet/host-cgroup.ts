import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'fs';
import { join } from 'path';

/**
 * Each host gets a cgroup of its own. With `--keep-unit` systemd-nspawn puts the container under
 * `<its own cgroup>/payload`; started from the same cgroup, every host's systemd would make its units'
 * cgroups in the same directories, and the hosts' boots race for them (units fail with 219/CGROUP,
 * `systemctl is-system-running` says degraded, a host misses its disk links).
 */
export const FLEET_CGROUP_PARENT = 'cdktf-smartstack-fleet';

/** The mounted hierarchies a container's systemd uses: the named `systemd` one (v1) and the unified one (v2). */
export function cgroupHierarchies(mounts = readFileSync('/proc/self/mounts', 'utf8')): string[] {
  const found: string[] = [];
  for (const line of mounts.split('\n')) {
    const [, mountPoint, type, options = ''] = line.split(' ');
    if (type === 'cgroup2' || (type === 'cgroup' && options.split(',').includes('name=systemd'))) found.push(mountPoint);
  }
  return found;
}

/** The host's cgroup directory in each hierarchy (made by {@link makeHostCgroups}). */
export function hostCgroupDirs(machine: string): string[] {
  return cgroupHierarchies().map((h) => join(h, FLEET_CGROUP_PARENT, machine));
}

export function makeHostCgroups(dirs: readonly string[]): void {
  for (const dir of dirs) mkdirSync(dir, { recursive: true });
}

/**
 * Removes a host's cgroup directories, deepest first, once nothing runs in them; a directory still
 * in use is left and named.
 */
export function removeHostCgroups(dirs: readonly string[]): string[] {
  const left: string[] = [];
  const remove = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) remove(join(dir, entry.name));
    try {
      rmdirSync(dir);
    } catch (e) {
      left.push(`${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  dirs.forEach(remove);
  return left;
}
