import { IConstruct } from 'constructs';

/**
 * Error raised for invalid construct input.
 *
 * The message names the construct (by type and path), the field and the offending value,
 * so the line that is wrong can be found without a stack trace. Exported for TypeScript and
 * JavaScript (`e instanceof ValidationError`); jsii cannot model a subclass of `Error`, so other
 * languages see the message of their runtime's exception.
 *
 * @jsii ignore
 */
export class ValidationError extends Error {
  /**
   * @param scope the construct whose input is wrong (undefined for a value given to a plain object, such as a CloudConfig)
   * @param kind the construct's type, e.g. `ZookeeperEnsemble`
   * @param field the property path, e.g. `members` or `disks[1].device`
   * @param value the offending value, shown as JSON
   * @param reason what is wrong and what is expected
   */
  public constructor(scope: IConstruct | undefined, kind: string, field: string, value: unknown, reason: string) {
    super(`${kind}${scope ? ` '${scope.node.path}'` : ''}: ${field} = ${describeValue(value)}: ${reason}`);
    this.name = 'ValidationError';
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  // JSON would show these as null, which is not what was given.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
