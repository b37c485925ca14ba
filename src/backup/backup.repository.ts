import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import type { EngineName } from '../engines/backup-engine';
import { JobStatus } from '../jobs/job-status';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupEntity } from './backup.entity';

/**
 * The queries other modules make of the `backups` table (owned by the Backup module), so that none of them
 * injects `Repository<BackupEntity>`: WAL archives read the base backups they follow.
 */
@Injectable()
export class BackupRepository {
  constructor(@InjectRepository(BackupEntity) private readonly rows: Repository<BackupEntity>) {}

  /** The COMPLETED backups of `engine`, oldest first. */
  completedOfEngine(engine: EngineName): Promise<BackupEntity[]> {
    return this.rows.find({ where: { engine, status: JobStatus.COMPLETED }, order: { createdAt: 'ASC' } });
  }
}

/** One enabled plan and when its newest completed, not deleted, backup finished (null: none yet). */
export interface PlanLastSuccess {
  name: string;
  createdAt: Date;
  lastSuccess: Date | null;
}

/** The queries other modules make of the `backup_plans` table (owned by the Backup module): WAL, metrics. */
@Injectable()
export class BackupPlanRepository {
  constructor(@InjectRepository(BackupPlanEntity) private readonly rows: Repository<BackupPlanEntity>) {}

  /** The plans of `engine` (only the enabled ones with `enabledOnly`). */
  ofEngine(engine: EngineName, enabledOnly = false): Promise<BackupPlanEntity[]> {
    return this.rows.findBy(enabledOnly ? { engine, enabled: true } : { engine });
  }

  /** Every enabled plan with the finish time of its newest completed, not deleted, backup (the RPO gauges). */
  async lastSuccesses(): Promise<PlanLastSuccess[]> {
    const rows = await this.rows
      .createQueryBuilder('p')
      .leftJoin(BackupEntity, 'b', 'b.plan_id = p.id AND b.status = :completed AND b.deleted_at IS NULL', {
        completed: JobStatus.COMPLETED,
      })
      .select('p.name', 'name')
      .addSelect('p.created_at', 'createdAt')
      .addSelect('MAX(b.finished_at)', 'lastSuccess')
      .where('p.enabled = true')
      .groupBy('p.id')
      .addGroupBy('p.name')
      .addGroupBy('p.created_at')
      .getRawMany<{ name: string; createdAt: Date | string; lastSuccess: Date | string | null }>();
    return rows.map((r) => ({
      name: r.name,
      createdAt: new Date(r.createdAt),
      lastSuccess: r.lastSuccess === null ? null : new Date(r.lastSuccess),
    }));
  }
}
