import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DrError } from '../errors/dr-error';

/** A reference to a secret: `env:NAME` (an environment variable) or `file:/abs/path` (a file's content, trimmed). */
export type SecretRef = string;

export const SECRET_REF_PATTERN = /^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/.+)$/;

/**
 * Resolves secret references at the moment a tool needs them. Records keep only the reference; the value is never
 * stored, logged or returned.
 */
@Injectable()
export class SecretResolver {
  /**
   * @param field the request field that named the secret, for error messages.
   * @throws DrError SECRET_UNAVAILABLE naming the reference (never the value) when it cannot be read.
   */
  async resolve(ref: SecretRef, field: string): Promise<string> {
    if (ref.startsWith('env:')) {
      const value = process.env[ref.slice(4)];
      if (value === undefined || value === '') {
        throw new DrError('SECRET_UNAVAILABLE', `${field}: environment variable ${ref.slice(4)} is not set`, [
          { field, message: `environment variable ${ref.slice(4)} is not set` },
        ]);
      }
      return value;
    }
    if (ref.startsWith('file:') && isAbsolute(ref.slice(5))) {
      try {
        return (await readFile(ref.slice(5), 'utf8')).trim();
      } catch {
        throw new DrError('SECRET_UNAVAILABLE', `${field}: secret file ${ref.slice(5)} cannot be read`, [
          { field, message: `secret file ${ref.slice(5)} cannot be read` },
        ]);
      }
    }
    throw DrError.validation([{ field, message: 'must be env:NAME or file:/absolute/path' }]);
  }
}
