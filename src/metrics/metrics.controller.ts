import { Controller, Get, Header, Res } from '@nestjs/common';
import { ApiOkResponse } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../auth/roles.decorator';
import { MetricsService } from './metrics.service';

/**
 * `GET /actuator/prometheus`: the metrics in the Prometheus text exposition format (version 0.0.4), public like
 * the other actuator paths (they hold counts, durations and plan names; no secrets).
 */
@Controller('actuator/prometheus')
@Public()
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  @ApiOkResponse({
    description: 'The Prometheus text exposition format, version 0.0.4.',
    content: { 'text/plain': { schema: { type: 'string' } } },
  })
  async scrape(@Res() response: Response): Promise<void> {
    const body = await this.metrics.scrape();
    // written as is: Express's send() would reorder the content type's parameters
    response.status(200).setHeader('Content-Type', this.metrics.contentType);
    response.end(body);
  }
}
