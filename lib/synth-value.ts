import { IResolvable, IResolveContext, Token } from './cdktf-edge';

/**
 * A value produced when the stack is synthesized, as `Lazy` makes one, but without the full stack
 * trace `Lazy` records at creation for each token (a few per host, a measurable part of a large
 * synthesis). The construct that asks for it is the place to look when it fails.
 */
class ProducedAtSynth implements IResolvable {
  public readonly creationStack: string[] = [];

  public constructor(private readonly produce: () => unknown) {}

  public resolve(_context: IResolveContext): unknown {
    return this.produce();
  }

  public toString(): string {
    return Token.asString(this);
  }
}

/** A string produced at synth. */
export function stringAtSynth(produce: () => string): string {
  return Token.asString(new ProducedAtSynth(produce));
}

/** Any value produced at synth. */
export function valueAtSynth<T>(produce: () => T): T {
  return Token.asAny(new ProducedAtSynth(produce)) as unknown as T;
}
