import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { actorOf, CurrentPrincipal, Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { BackupPlansService } from './backup-plans.service';
import { BackupsService } from './backups.service';
import { ApplyRetentionDto, BackupPlanResponse, CreateBackupPlanDto, UpdateBackupPlanDto } from './dto/backup-plan.dto';
import { RetentionReport, RetentionService } from './retention.service';
import { BackupResponse } from './dto/backup.dto';

/** Backup plans: what to back up, where and when. */
@Controller(`${API_PREFIX}/backup-plans`)
export class BackupPlansController {
  constructor(
    private readonly plans: BackupPlansService,
    private readonly backups: BackupsService,
    private readonly retentionService: RetentionService,
  ) {}

  @Post()
  @Roles(Role.BACKUP_ADMIN)
  async create(@Body() dto: CreateBackupPlanDto): Promise<BackupPlanResponse> {
    return BackupPlanResponse.of(await this.plans.create(dto));
  }

  @Get()
  @Roles(...ANY_ROLE)
  async list(): Promise<BackupPlanResponse[]> {
    return (await this.plans.list()).map((p) => BackupPlanResponse.of(p));
  }

  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<BackupPlanResponse> {
    return BackupPlanResponse.of(await this.plans.get(id));
  }

  @Patch(':id')
  @Roles(Role.BACKUP_ADMIN)
  async update(@Param('id', uuidPipe('id')) id: string, @Body() dto: UpdateBackupPlanDto): Promise<BackupPlanResponse> {
    return BackupPlanResponse.of(await this.plans.update(id, dto));
  }

  @Delete(':id')
  @HttpCode(204)
  @Roles(Role.BACKUP_ADMIN)
  async delete(@Param('id', uuidPipe('id')) id: string): Promise<void> {
    await this.plans.delete(id);
  }

  /**
   * Applies the plan's retention policy: by default a dry run listing what would be removed and why each kept
   * backup is kept; `{"dryRun": false}` deletes (every deletion is recorded on the backup).
   */
  @Post(':id/retention')
  @HttpCode(200)
  @Roles(Role.BACKUP_ADMIN)
  async retention(@Param('id', uuidPipe('id')) id: string, @Body() dto: ApplyRetentionDto): Promise<RetentionReport> {
    return this.retentionService.apply(id, { dryRun: dto.dryRun ?? true });
  }

  /** Runs the plan now (same as `POST /backups {"planId"}`). */
  @Post(':id/run')
  @HttpCode(202)
  @Roles(Role.BACKUP_ADMIN, Role.OPERATOR)
  async run(@Param('id', uuidPipe('id')) id: string, @CurrentPrincipal() principal: Principal): Promise<BackupResponse> {
    return BackupResponse.of(await this.backups.createFromPlan(await this.plans.get(id), 'MANUAL', actorOf(principal)));
  }
}
