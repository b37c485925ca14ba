import { Injectable } from '@nestjs/common';
import { DrError, FieldProblem } from '../errors/dr-error';
import { readSecretReference, SecretReferencePolicy, SecretRef } from './secret-reference';
import type { SecretSource } from './secret-source';

export { SECRET_REF_PATTERN, SECRET_REF_SYNTAX } from './secret-reference';
export type { SecretRef } from './secret-reference';

/** Members holding secret references are named like this (`passwordSecret`, `accessKeyIdSecret`, `identitySecret`). */
const SECRET_MEMBER = /Secret$/;

/**
 * Resolves secret references at the moment a tool needs them. Records keep only the reference; the value is never
 * stored, logged or returned. Two kinds of reference:
 * - those a request names (sources, targets, storage settings, encryption, WAL archives), and the records and WAL
 *   client configs made from requests: {@link resolve} and {@link check}, under the allow-list of
 *   {@link SecretReferencePolicy} (`DR_SECRET_ENV_PREFIX`, `DR_SECRET_DIRS`);
 * - those the operator configured for the service itself (`DR_JWT_SECRET`...): {@link resolveOperatorSecret}.
 */
@Injectable()
export class SecretResolver implements SecretSource {
  private readonly policy: SecretReferencePolicy | null;

  /**
   * @param policy what requests may name; default: the policy of this process's environment (`DRS_` variables,
   *   files under `DR_DATA_DIR/secrets`), so a resolver built without configuration is never the permissive one.
   */
  constructor(policy?: SecretReferencePolicy | null) {
    this.policy = policy === undefined ? SecretReferencePolicy.fromEnv() : policy;
  }

  /**
   * A resolver that resolves every reference without an allow-list, as {@link resolveOperatorSecret} does: only for
   * components built by hand from references the operator wrote (storage drivers in their contract tests). Never
   * give it to anything that resolves a request's references.
   */
  static trustingEveryReference(): SecretResolver {
    return new SecretResolver(null);
  }

  /** The allow-list requests are held to (undefined for {@link trustingEveryReference}). */
  get requestPolicy(): SecretReferencePolicy | undefined {
    return this.policy ?? undefined;
  }

  /**
   * Resolves a reference a request, a stored record or a WAL client config names (checked again here: a record
   * stored before the allow-list existed is held to it too).
   * @param field the request field that named the secret, for error messages.
   * @throws DrError VALIDATION_FAILED (a reference the allow-list refuses, same message whether or not it exists),
   *   SECRET_UNAVAILABLE naming the reference (never the value) when an allowed one cannot be read.
   */
  async resolve(ref: SecretRef, field: string): Promise<string> {
    return this.policy ? this.policy.resolve(ref, field) : readSecretReference(ref, field);
  }

  /**
   * Request-time check of one reference against the allow-list. @throws DrError VALIDATION_FAILED naming `field`
   */
  async check(ref: SecretRef, field: string): Promise<void> {
    await this.policy?.check(ref, field);
  }

  /**
   * Checks every member named `…Secret` holding a string, at any depth of a request body (so a field added later
   * is held to the allow-list without being listed anywhere).
   * @param root the body's field prefix ('' for a whole body).
   * @throws DrError VALIDATION_FAILED naming every refused field.
   */
  async checkReferencesIn(value: unknown, root = ''): Promise<void> {
    const problems: FieldProblem[] = [];
    const stack: { value: unknown; field: string }[] = [{ value, field: root }];
    while (stack.length) {
      const { value: current, field } = stack.pop()!;
      if (current === null || typeof current !== 'object') continue;
      for (const key of Object.keys(current)) {
        const inner = (current as Record<string, unknown>)[key];
        if (typeof inner === 'string' && SECRET_MEMBER.test(key)) {
          await this.check(inner, field ? `${field}.${key}` : key).catch((error: unknown) => {
            if (!(error instanceof DrError)) throw error;
            problems.push(...error.details);
          });
        } else if (inner !== null && typeof inner === 'object') {
          stack.push({ value: inner, field: field ? `${field}.${key}` : key });
        }
      }
    }
    if (problems.length) throw DrError.validation(problems);
  }

  /**
   * Resolves a reference the operator configured for the service (`DR_JWT_SECRET`, `DR_AGE_IDENTITY_SECRET`,
   * `DR_MANIFEST_SIGNING_KEY_SECRET`, `DR_VERIFY_PG_PASSWORD_SECRET`): not held to the request allow-list.
   * @throws DrError SECRET_UNAVAILABLE naming the variable and the reference, never the value.
   */
  resolveOperatorSecret(ref: SecretRef, variable: string): Promise<string> {
    return readSecretReference(ref, variable);
  }
}
