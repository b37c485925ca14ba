import { Global, Module } from '@nestjs/common';
import { JobLifecycles } from './job-lifecycle';

/** The job lifecycle shared by every job kind ({@link JobLifecycles}); global, so runners need not import it. */
@Global()
@Module({ providers: [JobLifecycles], exports: [JobLifecycles] })
export class JobsModule {}
