import { Readable } from 'node:stream';
import { Controller, Get, Query, StreamableFile } from '@nestjs/common';
import { ApiOkResponse } from '@nestjs/swagger';
import { Role } from '../auth/role';
import { Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { ApiPageResponse } from '../openapi/page-response';
import { AuditEntryResponse, auditEntryResponse, AuditExportQueryDto, AuditQueryDto } from './dto/audit.dto';
import { AuditService, AuditVerification } from './audit.service';

/**
 * The audit trail, for ADMIN and VIEWER: VIEWER is the read-only role an auditor gets; the roles that change
 * things (BACKUP_ADMIN, RECOVERY_ADMIN, OPERATOR) cannot read the trail of their own actions.
 */
@Controller(`${API_PREFIX}/audit`)
@Roles(Role.VIEWER)
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  /** Entries newest first, filtered. @returns `{items, page, limit, total}` */
  @Get()
  @ApiPageResponse({ type: 'object', description: 'An audit entry with its hash (see docs/audit-trail.md).' })
  async list(@Query() q: AuditQueryDto): Promise<{ items: AuditEntryResponse[]; page: number; limit: number; total: number }> {
    const filter = { ...q, from: q.from ? new Date(q.from) : undefined, to: q.to ? new Date(q.to) : undefined };
    const { items, total } = await this.audit.list(filter, q.page, q.limit);
    return { items: items.map(auditEntryResponse), page: q.page, limit: q.limit, total };
  }

  /** Recomputes the hash chain. @returns `{ok, entries, firstBadSeq, problems:[{seq, problem}]}` */
  @Get('verify')
  verify(): Promise<AuditVerification> {
    return this.audit.verify();
  }

  /** Entries in seq order as JSON lines (`application/x-ndjson`), streamed in batches. */
  @Get('export')
  @ApiOkResponse({ description: 'One JSON object a line.', content: { 'application/x-ndjson': { schema: { type: 'string' } } } })
  export(@Query() q: AuditExportQueryDto): StreamableFile {
    const entries = this.audit.export(q.from ? new Date(q.from) : undefined, q.to ? new Date(q.to) : undefined);
    const lines = Readable.from(
      (async function* () {
        for await (const entry of entries) yield `${JSON.stringify(entry)}\n`;
      })(),
    );
    return new StreamableFile(lines, { type: 'application/x-ndjson', disposition: 'inline' });
  }
}
