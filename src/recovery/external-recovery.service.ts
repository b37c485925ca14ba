import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { RecoveryStatus } from './recovery-status';
import { BackupsService } from '../backup/backups.service';
import { DrError, FieldProblem } from '../errors/dr-error';
import { ReportExternalRecoveryDto } from './dto/external-recovery.dto';
import { RecoveryEntity } from './recovery.entity';

/** Clock skew tolerated between the reporting host and the service, in milliseconds. */
const FUTURE_SKEW_MS = 5 * 60_000;
/** The `duration_ms` column is a PostgreSQL `integer`: at most 2^31-1 ms (about 24.8 days). */
const MAX_DURATION_MS = 2_147_483_647;

/**
 * Records recoveries run outside the service as recovery records of type `EXTERNAL` (no runner, no heartbeat:
 * they are stored already COMPLETED or FAILED), so that `GET /recovery` lists every recovery and its RTO.
 */
@Injectable()
export class ExternalRecoveryService {
  constructor(
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    private readonly backups: BackupsService,
  ) {}

  /**
   * Checks the times (started ≤ finished, none in the future beyond 5 minutes of skew, recovery point not after the
   * end, duration within 24.8 days) and the backup if one is named, then stores the record.
   * `durationMs` = finishedAt − startedAt. The target is stored as `{name, recoveryPoint, notes?}`.
   * @throws DrError VALIDATION_FAILED naming the field, NOT_FOUND (backupId).
   */
  async report(dto: ReportExternalRecoveryDto, createdBy: string | null): Promise<RecoveryEntity> {
    const startedAt = new Date(dto.startedAt);
    const finishedAt = new Date(dto.finishedAt);
    const recoveryPoint = new Date(dto.recoveryPoint);
    const latest = Date.now() + FUTURE_SKEW_MS;
    const problems: FieldProblem[] = [];
    if (finishedAt.getTime() > latest) problems.push({ field: 'finishedAt', message: 'finishedAt is in the future' });
    if (finishedAt < startedAt) problems.push({ field: 'finishedAt', message: 'finishedAt must not be before startedAt' });
    if (finishedAt.getTime() - startedAt.getTime() > MAX_DURATION_MS) {
      problems.push({ field: 'finishedAt', message: 'the recovery cannot have lasted more than 24 days' });
    }
    if (recoveryPoint > finishedAt) problems.push({ field: 'recoveryPoint', message: 'recoveryPoint must not be after finishedAt' });
    if (problems.length > 0) throw DrError.validation(problems);
    if (dto.backupId) await this.backups.get(dto.backupId);

    const target: Record<string, unknown> = { name: dto.targetName, recoveryPoint: recoveryPoint.toISOString() };
    if (dto.notes) target.notes = dto.notes;
    return this.recoveries.save(
      this.recoveries.create({
        backupId: dto.backupId ?? null,
        storageLocationId: null,
        type: 'EXTERNAL',
        target,
        overwrite: false,
        status: dto.status === 'COMPLETED' ? RecoveryStatus.COMPLETED : RecoveryStatus.FAILED,
        error: dto.status === 'FAILED' ? (dto.error ?? null) : null,
        durationMs: finishedAt.getTime() - startedAt.getTime(),
        createdBy,
        startedAt,
        finishedAt,
      }),
    );
  }
}
