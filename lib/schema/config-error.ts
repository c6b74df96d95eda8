/**
 * An agent config file that cannot be used. The message names the file, the key path
 * (`services.user-service.haproxy.port`) and the offending value, so the fix is obvious.
 */
export class ConfigError extends Error {
  public constructor(
    public readonly source: string,
    public readonly key: string,
    public readonly value: unknown,
    public readonly reason: string,
  ) {
    super(`${source}: ${key} = ${describeValue(value)}: ${reason}`);
    this.name = 'ConfigError';
  }
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 120 ? `${text.slice(0, 120)}…(${text.length} chars)` : text;
}
