import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Length, Max, Min, ValidateBy, ValidationOptions } from 'class-validator';
import { AuditRecordJson, auditRecordJson } from '../audit-chain';
import { AUDIT_OUTCOMES, AuditEntryEntity, AuditOutcome } from '../audit-entry.entity';

/**
 * An ISO-8601 date-time PostgreSQL can store: `2026-11-24`, `2026-11-24T10:00:00Z`... between the years 1970 and
 * 9999. (class-validator's ISO check alone accepts strings such as `1000001` that JavaScript reads as an invalid
 * date.)
 */
function IsTimestamp(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isTimestamp',
      validator: {
        validate: (value: unknown) => {
          if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) return false;
          const time = Date.parse(value);
          // Date.parse rolls 2026-02-30 over to March; PostgreSQL refuses it (mid-export, after the headers went out)
          const [year, month, day] = value.slice(0, 10).split('-').map(Number);
          if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) return false;
          return Number.isFinite(time) && time >= 0 && time < Date.UTC(10000, 0, 1);
        },
        defaultMessage: (args) => `${args?.property} must be an ISO-8601 date or date-time, e.g. 2026-11-24T10:00:00Z`,
      },
    },
    options,
  );
}

/** Query of `GET /audit`: every filter optional; `from` inclusive, `to` exclusive (ISO-8601). */
export class AuditQueryDto {
  @IsOptional() @IsString() @Length(1, 200) actor?: string;
  @IsOptional() @IsString() @Length(1, 200) action?: string;
  @IsOptional() @IsIn(AUDIT_OUTCOMES) outcome?: AuditOutcome;
  @IsOptional() @IsString() @Length(1, 200) targetId?: string;
  @IsOptional() @IsTimestamp() from?: string;
  @IsOptional() @IsTimestamp() to?: string;
  /** Bounded so that the row offset `(page - 1) * limit` stays a small bigint (at most 5 * 10^9). */
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(10_000_000) page: number = 1;
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(500) limit: number = 50;
}

/** Query of `GET /audit/export`: `from` inclusive, `to` exclusive (ISO-8601). */
export class AuditExportQueryDto {
  @IsOptional() @IsTimestamp() from?: string;
  @IsOptional() @IsTimestamp() to?: string;
}

/** An entry as the API shows it: the hashed fields and the hash (the same shape as an export line). */
export type AuditEntryResponse = AuditRecordJson & { hash: string };

/** Maps an entity to {@link AuditEntryResponse}. */
export function auditEntryResponse(entry: AuditEntryEntity): AuditEntryResponse {
  return { ...auditRecordJson(entry), hash: entry.hash };
}
