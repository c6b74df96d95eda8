import { Annotations } from './cdktf-edge';
import { IConstruct } from 'constructs';

/**
 * A warning about a construct: in the manifest, where the cdktf CLI reads and prints it, and on
 * stderr when the program runs by itself (`ts-node main.ts`), which would otherwise show nothing.
 * The CLI gives the program its context in CDKTF_CONTEXT_JSON; under it the warning is printed once.
 */
export function addConstructWarning(scope: IConstruct, message: string): void {
  Annotations.of(scope).addWarning(message);
  if (process.env.CDKTF_CONTEXT_JSON === undefined) process.stderr.write(`Warning: ${message}\n`);
}
