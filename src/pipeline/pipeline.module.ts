import { Module } from '@nestjs/common';
import { ArtifactPipeline } from './artifact-pipeline';

/** The streaming artifact pipeline (compression, hashing). */
@Module({ providers: [ArtifactPipeline], exports: [ArtifactPipeline] })
export class PipelineModule {}
