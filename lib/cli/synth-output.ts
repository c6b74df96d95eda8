import { existsSync, readdirSync, statSync } from 'fs';
import { join } from 'path';
import { closestName, UsageError } from './command-line';

/**
 * The stack a command reads from a `cdktf synth` output folder: the one named by --stack, or the
 * only one there. Refused as bad usage, naming the folder or the stacks that exist.
 */
export function chooseStack(command: string, outdir: string, stack: string | undefined): string {
  if (!existsSync(outdir) || !statSync(outdir).isDirectory()) {
    throw new UsageError(`OUTDIR ${outdir}: no such folder; run cdktf synth first, or name the folder it wrote`, command);
  }
  const stacksDir = join(outdir, 'stacks');
  const stacks = existsSync(stacksDir) ? readdirSync(stacksDir).sort() : [];
  if (stack === undefined) {
    if (stacks.length === 1) return stacks[0];
    throw new UsageError(stacks.length === 0 ? `${outdir} holds no synthesized stack: run cdktf synth first` : `${outdir} holds ${stacks.length} stacks (${stacks.join(', ')}): choose one with --stack`, command);
  }
  if (!stacks.includes(stack)) {
    const suggestion = closestName(stack, stacks);
    const known = stacks.length === 0 ? `${outdir} holds no synthesized stack` : `the stacks in ${outdir} are ${stacks.join(', ')}`;
    throw new UsageError(`--stack ${stack}: no such stack; ${suggestion ? `did you mean '${suggestion}'? ` : ''}${known}`, command);
  }
  return stack;
}
