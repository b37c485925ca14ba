import { Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { JOB_ENDED, JobEndedEvent } from '../jobs/job-events';
import { AuditService } from './audit.service';

/**
 * Records every job outcome in the audit trail: `<kind>.run` (`backup.run`, `recovery.run`, `verification.run`)
 * with SUCCESS or FAILURE, the job as target, who asked for it (none for a reaped job) and the event's safe details.
 * The lifecycle awaits it, so the entry exists before the job's promise settles.
 */
@Injectable()
export class JobAuditListener {
  constructor(private readonly audit: AuditService) {}

  @OnEvent(JOB_ENDED)
  async onJobEnded(event: JobEndedEvent): Promise<void> {
    await this.audit.record({
      actor: event.actor,
      action: `${event.kind}.run`,
      targetType: event.auditTargetType,
      targetId: event.id,
      outcome: event.outcome,
      details: event.details,
    });
  }
}
