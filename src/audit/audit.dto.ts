import { Type } from 'class-transformer';
import { IsDateString, IsIn, IsInt, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import { AuditRecordJson, auditRecordJson } from './audit-chain';
import { AUDIT_OUTCOMES, AuditEntryEntity, AuditOutcome } from './audit-entry.entity';

/** Query of `GET /audit`: every filter optional; `from` inclusive, `to` exclusive (ISO-8601). */
export class AuditQueryDto {
  @IsOptional() @IsString() @Length(1, 200) actor?: string;
  @IsOptional() @IsString() @Length(1, 200) action?: string;
  @IsOptional() @IsIn(AUDIT_OUTCOMES) outcome?: AuditOutcome;
  @IsOptional() @IsString() @Length(1, 200) targetId?: string;
  @IsOptional() @IsDateString({ strict: true }) from?: string;
  @IsOptional() @IsDateString({ strict: true }) to?: string;
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) page: number = 1;
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(500) limit: number = 50;
}

/** Query of `GET /audit/export`: `from` inclusive, `to` exclusive (ISO-8601). */
export class AuditExportQueryDto {
  @IsOptional() @IsDateString({ strict: true }) from?: string;
  @IsOptional() @IsDateString({ strict: true }) to?: string;
}

/** An entry as the API shows it: the hashed fields and the hash (the same shape as an export line). */
export type AuditEntryResponse = AuditRecordJson & { hash: string };

/** Maps an entity to {@link AuditEntryResponse}. */
export function auditEntryResponse(entry: AuditEntryEntity): AuditEntryResponse {
  return { ...auditRecordJson(entry), hash: entry.hash };
}
