import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { actorOf, CurrentPrincipal, Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { JobStatus } from '../jobs/job-status';
import { VerificationResponse, VerifyBackupDto } from './dto/verification.dto';
import { VerificationsService } from './verifications.service';

/**
 * The verification routes under `/backups/{id}`: start one, list a backup's. They belong to the Validation module;
 * the OpenAPI document keeps them under the `Backups` tag and operation ids they have always had.
 */
@ApiTags('Backups')
@Controller(`${API_PREFIX}/backups`)
export class BackupVerificationsController {
  constructor(private readonly service: VerificationsService) {}

  /**
   * Verifies the stored backup (`{"mode":"checksum"}` by default, or `"restore"`); answers 200 with the outcome
   * when it finished within `waitSeconds`, else 202 with the verification to poll at `GET /verifications/{id}`.
   */
  @Post(':id/verify')
  @ApiOperation({ operationId: 'Backups_verify' })
  @HttpCode(200) // the handler sets 200 or 202 itself
  @ApiOkResponse({ type: VerificationResponse, description: 'Finished within `waitSeconds`: the outcome.' })
  @ApiAcceptedResponse({ type: VerificationResponse, description: 'Still running after `waitSeconds`: poll `GET /verifications/{id}`.' })
  @Roles(Role.BACKUP_ADMIN, Role.OPERATOR)
  async verify(
    @Param('id', uuidPipe('id')) id: string,
    @Body() dto: VerifyBackupDto,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<VerificationResponse> {
    const verification = await this.service.verify(id, dto, actorOf(principal));
    const done = verification.status === JobStatus.COMPLETED || verification.status === JobStatus.FAILED;
    response.status(done ? 200 : 202);
    return VerificationResponse.of(verification);
  }

  /** The verifications of a backup, newest first. */
  @Get(':id/verifications')
  @ApiOperation({ operationId: 'Backups_verifications' })
  @Roles(...ANY_ROLE)
  async verifications(@Param('id', uuidPipe('id')) id: string): Promise<VerificationResponse[]> {
    return (await this.service.listOf(id)).map((v) => VerificationResponse.of(v));
  }
}

/** Verifications, by id (to poll one that outlived its request). */
@Controller(`${API_PREFIX}/verifications`)
export class VerificationsController {
  constructor(private readonly verifications: VerificationsService) {}

  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<VerificationResponse> {
    return VerificationResponse.of(await this.verifications.get(id));
  }
}
