import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { getSchemaPath } from '@nestjs/swagger';
import { actorOf, CurrentPrincipal, Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { Page } from '../backup/dto/backup.dto';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { ApiPageResponse } from '../openapi/page-response';
import { CreateRecoveryDto, ListRecoveriesQuery, RecoveryResponse } from './dto/recovery.dto';
import { RecoveryApprovals } from './recovery-approvals.service';
import { RecoveryService } from './recovery.service';

/**
 * Recoveries: restore a backup into a target; poll for the outcome and the measured duration. Production
 * recoveries wait for a second person's approval.
 */
@Controller(`${API_PREFIX}/recovery`)
export class RecoveryController {
  constructor(
    private readonly recoveries: RecoveryService,
    private readonly approvals: RecoveryApprovals,
  ) {}

  @Post()
  @HttpCode(202)
  @Roles(Role.RECOVERY_ADMIN)
  async create(@Body() dto: CreateRecoveryDto, @CurrentPrincipal() principal: Principal): Promise<RecoveryResponse> {
    return RecoveryResponse.of(await this.recoveries.create(dto, actorOf(principal)));
  }

  /** Approves a production recovery (a RECOVERY_ADMIN other than its requester); it then runs. */
  @Post(':id/approve')
  @HttpCode(200)
  @Roles(Role.RECOVERY_ADMIN)
  async approve(@Param('id', uuidPipe('id')) id: string, @CurrentPrincipal() principal: Principal): Promise<RecoveryResponse> {
    return RecoveryResponse.of(await this.approvals.approve(id, actorOf(principal)));
  }

  /** Rejects (cancels) a production recovery awaiting approval. */
  @Post(':id/reject')
  @HttpCode(200)
  @Roles(Role.RECOVERY_ADMIN)
  async reject(@Param('id', uuidPipe('id')) id: string, @CurrentPrincipal() principal: Principal): Promise<RecoveryResponse> {
    return RecoveryResponse.of(await this.approvals.reject(id, actorOf(principal)));
  }

  @Get()
  @Roles(...ANY_ROLE)
  @ApiPageResponse({ $ref: getSchemaPath(RecoveryResponse) })
  async list(@Query() query: ListRecoveriesQuery): Promise<Page<RecoveryResponse>> {
    const page = await this.recoveries.list(query);
    return { ...page, items: page.items.map((r) => RecoveryResponse.of(r)) };
  }

  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<RecoveryResponse> {
    return RecoveryResponse.of(await this.recoveries.get(id));
  }
}
