import { Module } from '@nestjs/common';
import { ArtifactPipeline } from './artifact-pipeline';
import { BackupEncryption } from './backup-encryption';
import { ManifestSigner } from './manifest-signer';

/** The streaming artifact pipeline (compression, encryption, hashing) and manifest signing. */
@Module({
  providers: [ArtifactPipeline, BackupEncryption, ManifestSigner],
  exports: [ArtifactPipeline, BackupEncryption, ManifestSigner],
})
export class PipelineModule {}
