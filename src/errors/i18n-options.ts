import { join } from 'node:path';
import { AcceptLanguageResolver, I18nOptions } from 'nestjs-i18n';

/** The languages of the error catalogues (`i18n/<lang>/errors.json`); English is the default and the fallback. */
export const LANGUAGES = ['en', 'fr', 'de', 'es', 'ar'] as const;
export const DEFAULT_LANGUAGE = 'en';

/**
 * The `i18n/` folder at the repository root. This file sits in `src/errors/` (ts-jest, ts-node) or in
 * `dist/errors/` (built), two levels below the root either way, so no asset copy is needed; the Docker image
 * copies `i18n/` beside `dist/`.
 */
export const I18N_DIR = join(__dirname, '..', '..', 'i18n');

/**
 * nestjs-i18n settings: JSON catalogues from {@link I18N_DIR} (read once, not watched), the language picked from
 * `Accept-Language` (quality values honoured; `fr-CA` falls back to `fr`), English when none matches.
 */
export function i18nOptions(): I18nOptions {
  return {
    fallbackLanguage: DEFAULT_LANGUAGE,
    loaderOptions: { path: I18N_DIR, watch: false },
    resolvers: [AcceptLanguageResolver],
    logging: false,
  };
}
