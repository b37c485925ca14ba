import { Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { I18nModule } from 'nestjs-i18n';
import { HttpExceptionFilter } from './http-exception.filter';
import { i18nOptions } from './i18n-options';

/** The one error shape: the global exception filter with its message catalogues (nestjs-i18n). */
@Module({
  imports: [I18nModule.forRoot(i18nOptions())],
  providers: [{ provide: APP_FILTER, useClass: HttpExceptionFilter }],
})
export class ErrorsModule {}
