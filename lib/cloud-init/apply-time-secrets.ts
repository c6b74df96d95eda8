import { DefaultTokenResolver, StringConcat, TerraformStack, Tokenization } from 'cdktf';
import { IConstruct } from 'constructs';

/**
 * Values known only when Terraform applies, such as ZooKeeper passwords derived from a sensitive
 * variable. Rendered text holds a placeholder; the synthesized JSON gets the Terraform expression in
 * its place, so the value itself is never written by synth.
 */
export class ApplyTimeSecrets {
  private readonly expressions = new Map<string, string>();

  /**
   * Registers a secret and returns its placeholder, safe in YAML, JSON, shell and config files.
   *
   * @param name a stable name (it is part of the rendered text, and so of the trigger hashes)
   * @param expression a Terraform string expression (a cdktf token such as `Fn.sha256(...)`)
   */
  public placeholder(name: string, expression: string): string {
    if (!/^[a-z0-9][a-z0-9._/-]*$/.test(name)) throw new Error(`ApplyTimeSecrets: invalid secret name ${JSON.stringify(name)}`);
    const existing = this.expressions.get(name);
    if (existing !== undefined && existing !== expression) throw new Error(`ApplyTimeSecrets: two expressions for secret ${name}`);
    this.expressions.set(name, expression);
    return placeholderOf(name);
  }

  /**
   * A Terraform expression for the SHA-256 of the expressions' values (for a trigger that changes
   * when they do), as resolved text.
   */
  public hashIn(scope: IConstruct, expressions: string[]): string {
    const bare = expressions.map((e) => {
      const text = resolvedIn(scope, e);
      const inner = /^\$\{([^]*)\}$/.exec(text)?.[1];
      if (inner === undefined) throw new Error(`ApplyTimeSecrets: ${text} is not one Terraform interpolation`);
      return inner;
    });
    return `\${sha256(join("\\n", [${bare.join(', ')}]))}`;
  }

  /** The first placeholder in the text that names no registered secret, or undefined. */
  public unregisteredIn(text: string): string | undefined {
    return [...text.matchAll(PLACEHOLDER)].find((m) => !this.expressions.has(m[1]))?.[0];
  }

  /** The secrets the text uses, by name, in order. */
  public usedIn(text: string): string[] {
    return [...new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]))].sort();
  }

  /** The expressions of the secrets the text uses (for a trigger that changes when they do). */
  public expressionsIn(text: string): string[] {
    return this.usedIn(text).map((name) => this.expressionOf(name));
  }

  /**
   * Puts each secret's expression, resolved in the scope's stack (`${sha256(...)}`), in place of its
   * placeholder, in text already escaped for a Terraform string: the expressions are its only
   * interpolations, and it holds no cdktf token.
   */
  public resolveIn(scope: IConstruct, escapedText: string): string {
    return escapedText.replace(PLACEHOLDER, (_m, name: string) => resolvedIn(scope, this.expressionOf(name)));
  }

  private expressionOf(name: string): string {
    const expression = this.expressions.get(name);
    if (expression === undefined) throw new Error(`ApplyTimeSecrets: no secret named ${name} is registered here`);
    return expression;
  }
}

// Each expression resolved once per stack: resolving cdktf functions makes tokens, each of which
// records a stack trace, and a long text with tokens in it is slow to synthesize.
const resolvedByStack = new WeakMap<TerraformStack, Map<string, string>>();

function resolvedIn(scope: IConstruct, expression: string): string {
  const stack = TerraformStack.of(scope);
  let resolved = resolvedByStack.get(stack);
  if (!resolved) resolvedByStack.set(stack, (resolved = new Map()));
  let text = resolved.get(expression);
  if (text === undefined) resolved.set(expression, (text = String(Tokenization.resolve(expression, { scope: stack, resolver: new DefaultTokenResolver(new StringConcat()) }))));
  return text;
}

const PLACEHOLDER = /@@secret:([a-z0-9][a-z0-9._/-]*)@@/g;

function placeholderOf(name: string): string {
  return `@@secret:${name}@@`;
}
