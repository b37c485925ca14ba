import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { actorOf, CurrentPrincipal, Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { ArtifactManifest } from '../pipeline/manifest';
import { BackupsService } from './backups.service';
import {
  BackupResponse,
  CreateBackupDto,
  ListBackupsQuery,
  Page,
  SnapshotDiffResponse,
  VerificationResponse,
} from './dto/backup.dto';
import { VerificationEntity } from './verification.entity';

function verificationResponse(v: VerificationEntity): VerificationResponse {
  return {
    id: v.id,
    backupId: v.backupId,
    mode: v.mode,
    ok: v.ok,
    problems: v.problems,
    bytesRead: v.bytesRead,
    durationMs: v.durationMs,
    createdAt: v.createdAt.toISOString(),
  };
}

/** Backups: start on demand, read, list, verify, read the manifest, diff configuration snapshots. */
@Controller(`${API_PREFIX}/backups`)
export class BackupsController {
  constructor(private readonly backups: BackupsService) {}

  /** Starts a backup; answers 202 at once with its id; poll `GET /backups/{id}` for the outcome. */
  @Post()
  @HttpCode(202)
  @Roles(Role.BACKUP_ADMIN)
  async create(@Body() dto: CreateBackupDto, @CurrentPrincipal() principal: Principal): Promise<BackupResponse> {
    return BackupResponse.of(await this.backups.create(dto, actorOf(principal)));
  }

  @Get()
  @Roles(...ANY_ROLE)
  async list(@Query() query: ListBackupsQuery): Promise<Page<BackupResponse>> {
    const page = await this.backups.list(query);
    return { ...page, items: page.items.map(BackupResponse.of) };
  }

  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<BackupResponse> {
    return BackupResponse.of(await this.backups.get(id));
  }

  @Get(':id/manifest')
  @Roles(...ANY_ROLE)
  async manifest(@Param('id', uuidPipe('id')) id: string): Promise<ArtifactManifest> {
    return this.backups.manifest(id);
  }

  /** Re-reads the artifact and checks its SHA-256 and manifest; 200 with `ok` and the problems found. */
  @Post(':id/verify')
  @HttpCode(200)
  @Roles(Role.BACKUP_ADMIN, Role.OPERATOR)
  async verify(@Param('id', uuidPipe('id')) id: string, @CurrentPrincipal() principal: Principal): Promise<VerificationResponse> {
    return verificationResponse(await this.backups.verify(id, actorOf(principal)));
  }

  /** Files added, removed and changed from snapshot `id` to snapshot `otherId` (configuration backups). */
  @Get(':id/diff/:otherId')
  @Roles(...ANY_ROLE)
  async diff(
    @Param('id', uuidPipe('id')) id: string,
    @Param('otherId', uuidPipe('otherId')) otherId: string,
  ): Promise<SnapshotDiffResponse> {
    return this.backups.diff(id, otherId);
  }
}
