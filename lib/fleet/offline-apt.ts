import { mkdirSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';

/**
 * The fleet reaches no package archive. Its hosts' only apt source is an empty local repository, so
 * `apt-get update` (cloud-init's `package_update` at a first boot) succeeds, and installing what the
 * image already has is a no-op; anything else fails as it would without a mirror.
 */
export function writeOfflineAptSource(root: string): void {
  mkdirSync(join(root, 'var/lib/fleet-apt'), { recursive: true });
  writeFileSync(join(root, 'var/lib/fleet-apt/Packages'), '');
  writeFileSync(join(root, 'etc/apt/sources.list'), '# Made by the fleet harness: the fleet reaches no archive.\ndeb [trusted=yes] file:/var/lib/fleet-apt ./\n');
  rmSync(join(root, 'etc/apt/sources.list.d'), { recursive: true, force: true });
  mkdirSync(join(root, 'etc/apt/sources.list.d'), { recursive: true });
}
