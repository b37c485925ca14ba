import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { actorOf, CurrentPrincipal, Principal } from '../auth/principal';
import { Role } from '../auth/role';
import { Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { ReportExternalRecoveryDto } from './dto/external-recovery.dto';
import { RecoveryResponse } from './dto/recovery.dto';
import { ExternalRecoveryService } from './external-recovery.service';

/**
 * `POST /recovery/external`: the earlier design's "post recovery status" (`scripts/recovery/post-recovery-status.sh`) —
 * records a recovery run outside the service → 201 with the recovery record (type EXTERNAL).
 */
@Controller(`${API_PREFIX}/recovery/external`)
export class ExternalRecoveryController {
  constructor(private readonly external: ExternalRecoveryService) {}

  @Post()
  @HttpCode(201)
  @Roles(Role.RECOVERY_ADMIN, Role.OPERATOR)
  async report(@Body() dto: ReportExternalRecoveryDto, @CurrentPrincipal() principal: Principal): Promise<RecoveryResponse> {
    return RecoveryResponse.of(await this.external.report(dto, actorOf(principal)));
  }
}
