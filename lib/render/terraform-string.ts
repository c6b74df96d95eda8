import { createHash } from 'crypto';

/**
 * Escapes literal text for a Terraform JSON string value, in which `${` and `%{` start
 * template interpolation and directives (systemd's `${MAINPID}`, shell variables).
 *
 * `${` becomes `${"$"}{` (an interpolation of "$") rather than `$${`: cdktf takes every `${` in a
 * string that also holds a token for the start of an expression, and writes the tokens after an
 * unclosed one without their `${ }` — a secret's expression after a file's unbalanced `${` would
 * reach the host as its literal text. This form is closed at once.
 */
export function escapeTerraformTemplate(text: string): string {
  // Dollars right before it go into the literal too: a `$` before the interpolation would make it `$${`.
  return text.replace(/\$+\{/g, (dollars) => `\${"${dollars.slice(0, -1)}"}{`).replace(/%\{/g, '%%{');
}

/**
 * Literal text as the inside of a quoted Terraform template (`"..."` within an expression, such
 * as a function's argument): quotes, backslashes and control characters escaped, then `${` and
 * `%{` as {@link escapeTerraformTemplate} writes them (its `${"$"}` is a valid nested template).
 */
export function quotedTerraformTemplate(text: string): string {
  return escapeTerraformTemplate(text.replace(/[\\"\n\r\t]/g, (c) => QUOTED_ESCAPES[c]));
}

const QUOTED_ESCAPES: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Hex SHA-256 of the text: the trigger that tells Terraform a host's document changed. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
