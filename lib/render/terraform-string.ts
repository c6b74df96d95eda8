import { createHash } from 'crypto';

/**
 * Escapes literal text for a Terraform JSON string value, in which `${` and `%{` start
 * template interpolation and directives (systemd's `${MAINPID}`, shell variables).
 */
export function escapeTerraformTemplate(text: string): string {
  return text.replace(/([$%])\{/g, (_match, sigil: string) => `${sigil}${sigil}{`);
}

/** Hex SHA-256 of the text: the trigger that tells Terraform a host's document changed. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
