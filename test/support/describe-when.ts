import { fleetPrerequisites } from '../../lib/fleet';
import { terraformAvailable } from './terraform-offline';

/**
 * `describe` for a suite that needs what `missing` lists (empty: everything is there). Otherwise the
 * suite is skipped with a warning naming what is missing; under CI, where every suite must run, the
 * file fails instead.
 */
export function describeWhenPresent(suite: string, missing: readonly string[], hint?: string): jest.Describe {
  if (missing.length === 0) return describe;
  const why = `this machine lacks:\n  - ${missing.join('\n  - ')}${hint ? `\n${hint}` : ''}`;
  if (process.env.CI) throw new Error(`${suite} cannot run under CI — ${why}`);
  console.warn(`${suite} skipped — ${why}`);
  return describe.skip;
}

/** What the fleet tests need that this machine lacks: root, nspawn, debootstrap, ssh, and terraform. */
export function fleetTestPrerequisites(): string[] {
  return [...fleetPrerequisites(), ...(terraformAvailable() ? [] : ['terraform is not on the PATH (install terraform >= 1.4)'])];
}

export const FLEET_PACKAGES_HINT = '(as root on Debian: apt-get install debootstrap systemd-container openssh-client)';
