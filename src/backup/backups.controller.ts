import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOkResponse, getSchemaPath } from '@nestjs/swagger';
import { ApiPageResponse } from '../openapi/page-response';
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
  ListFilesQuery,
  BackupCopyResponse,
  CopyBackupDto,
} from './dto/backup.dto';
import { BackupCopier } from './backup-copier.service';
import { FileIndexEntry } from '../engines/file-index-entry';
import { SignatureCheck } from '../pipeline/manifest-signer';

/** Backups: start on demand, read, list, read the manifest, list files, copy, diff configuration snapshots (verification: the Validation module). */
@Controller(`${API_PREFIX}/backups`)
export class BackupsController {
  constructor(
    private readonly backups: BackupsService,
    private readonly copier: BackupCopier,
  ) {}

  /** Starts a backup; answers 202 at once with its id; poll `GET /backups/{id}` for the outcome. */
  @Post()
  @HttpCode(202)
  @Roles(Role.BACKUP_ADMIN)
  async create(@Body() dto: CreateBackupDto, @CurrentPrincipal() principal: Principal): Promise<BackupResponse> {
    return BackupResponse.of(await this.backups.create(dto, actorOf(principal)));
  }

  @Get()
  @Roles(...ANY_ROLE)
  @ApiPageResponse({ $ref: getSchemaPath(BackupResponse) })
  async list(@Query() query: ListBackupsQuery): Promise<Page<BackupResponse>> {
    const page = await this.backups.list(query);
    return { ...page, items: page.items.map((b) => BackupResponse.of(b)) };
  }

  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<BackupResponse> {
    return BackupResponse.of(await this.backups.get(id), await this.backups.copiesOf(id));
  }

  /** The stored `manifest.json`, and whether its signature (`manifest.sig`) verifies with a trusted key. */
  @Get(':id/manifest')
  @Roles(...ANY_ROLE)
  @ApiOkResponse({
    description: 'The manifest (docs/artifact-format.md) and the outcome of its signature check.',
    schema: {
      type: 'object',
      required: ['manifest', 'signature'],
      properties: {
        manifest: { type: 'object', description: 'manifest.json as stored.' },
        signature: {
          type: 'object',
          required: ['ok'],
          properties: { ok: { type: 'boolean' }, keyId: { type: 'string' }, reason: { type: 'string' } },
        },
      },
    },
  })
  async manifest(@Param('id', uuidPipe('id')) id: string): Promise<{ manifest: ArtifactManifest; signature: SignatureCheck }> {
    return this.backups.manifest(id);
  }

  /** A page of the backup's file index: path, type, size, mode, mtime and SHA-256 of each member. */
  @Get(':id/files')
  @Roles(...ANY_ROLE)
  @ApiPageResponse({
    type: 'object',
    required: ['path', 'type', 'sizeBytes', 'mode', 'mtime'],
    properties: {
      path: { type: 'string' },
      pathB64: { type: 'string' },
      type: { type: 'string', enum: ['file', 'directory', 'symlink', 'other'] },
      sizeBytes: { type: 'number' },
      mode: { type: 'string' },
      mtime: { type: 'string' },
      mtimeNs: { type: 'string' },
      sha256: { type: 'string' },
      linkTarget: { type: 'string' },
      linkTargetB64: { type: 'string' },
    },
  })
  async files(@Param('id', uuidPipe('id')) id: string, @Query() query: ListFilesQuery): Promise<Page<FileIndexEntry>> {
    return this.backups.files(id, query);
  }

  /** Copies the backup to another location (again, if an earlier copy there failed); 202, poll `GET /backups/{id}`. */
  @Post(':id/copies')
  @HttpCode(202)
  @Roles(Role.BACKUP_ADMIN, Role.OPERATOR)
  async copy(@Param('id', uuidPipe('id')) id: string, @Body() dto: CopyBackupDto): Promise<BackupCopyResponse> {
    return BackupCopyResponse.of(await this.copier.copy(await this.backups.get(id), dto.storageLocationId));
  }

  /** Files added, removed and changed from snapshot `id` to snapshot `otherId` (configuration backups). */
  @Get(':id/diff/:otherId')
  @Roles(...ANY_ROLE)
  async diff(@Param('id', uuidPipe('id')) id: string, @Param('otherId', uuidPipe('otherId')) otherId: string): Promise<SnapshotDiffResponse> {
    return this.backups.diff(id, otherId);
  }
}
