import { Global, MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditChainHeadEntity, AuditEntryEntity } from './audit-entry.entity';
import { AuditController } from './audit.controller';
import { AuditRequestMiddleware } from './audit-request.middleware';
import { AuditResponseInterceptor } from './audit-response.interceptor';
import { AuditService } from './audit.service';
import { JobAuditListener } from './job-audit.listener';

/**
 * The audit trail for the CLI and background work: {@link AuditService} (global, so services inject it without
 * importing this module) and {@link JobAuditListener}, which records every job outcome (`job.ended`).
 */
@Global()
@Module({
  imports: [TypeOrmModule.forFeature([AuditEntryEntity, AuditChainHeadEntity])],
  providers: [AuditService, JobAuditListener],
  exports: [AuditService],
})
export class AuditCoreModule {}

/** The audit trail over HTTP: the service, the request recorder, the request id, and `GET /audit[...]`. */
@Module({
  imports: [AuditCoreModule],
  controllers: [AuditController],
  providers: [AuditRequestMiddleware, { provide: APP_INTERCEPTOR, useClass: AuditResponseInterceptor }],
})
export class AuditModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(AuditRequestMiddleware).forRoutes('{*path}');
  }
}
