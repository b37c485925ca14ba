import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/**
 * One row per (plan, scheduled time). Inserting it is how an instance claims a scheduled run: the primary key
 * makes the claim exclusive across every replica sharing the database, so each run happens exactly once.
 */
@Entity('schedule_claims')
export class ScheduleClaimEntity {
  @PrimaryColumn({ name: 'plan_id', type: 'uuid' }) planId: string;
  @PrimaryColumn({ name: 'scheduled_for', type: 'timestamptz' }) scheduledFor: Date;
  @Column({ name: 'instance_id', type: 'varchar', length: 200 }) instanceId: string;
  /** The backup the claim started; null while starting, or when the run was skipped. */
  @Column({ name: 'backup_id', type: 'uuid', nullable: true }) backupId: string | null;
  /** Why the claimed occurrence started no backup (e.g. the plan's previous backup was still running). */
  @Column({ name: 'skip_reason', type: 'text', nullable: true }) skipReason: string | null;
  @CreateDateColumn({ name: 'claimed_at', type: 'timestamptz' }) claimedAt: Date;
}
