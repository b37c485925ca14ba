import { ValueTransformer } from 'typeorm';

/**
 * Maps PostgreSQL `bigint` (returned by `pg` as a string) to a JS number. Byte counts stay exact up to
 * 2^53 bytes (8 PiB), far beyond any single artifact.
 */
export const bigintToNumber: ValueTransformer = {
  to: (value?: number | null) => value,
  from: (value?: string | null) => (value === null || value === undefined ? value : Number(value)),
};
