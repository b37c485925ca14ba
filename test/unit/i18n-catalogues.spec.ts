import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES } from '../../src/errors/dr-error';
import { I18N_DIR, LANGUAGES } from '../../src/errors/i18n-options';

/** Placeholders of a message, `{name}` → `name`, sorted. */
function placeholders(message: string): string[] {
  return [...message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
}

function catalogue(lang: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(I18N_DIR, lang, 'errors.json'), 'utf8')) as Record<string, unknown>;
}

describe('error message catalogues (i18n/<lang>/errors.json)', () => {
  it('exist for exactly the supported languages', () => {
    expect(readdirSync(I18N_DIR).sort()).toEqual([...LANGUAGES].sort());
  });

  it.each([...LANGUAGES])('%s has a non-empty message for every ErrorCode, with the placeholders of the English one', (lang) => {
    const english = catalogue('en');
    const messages = catalogue(lang);
    const problems: string[] = [];
    for (const code of ERROR_CODES) {
      const message = messages[code];
      if (typeof message !== 'string' || message.trim() === '') {
        problems.push(`${code}: missing or empty`);
        continue;
      }
      const want = placeholders(english[code] as string);
      if (JSON.stringify(placeholders(message)) !== JSON.stringify(want)) {
        problems.push(`${code}: placeholders ${placeholders(message).join(',')} instead of ${want.join(',')}`);
      }
      if (lang !== 'en' && message === english[code]) problems.push(`${code}: not translated (same as English)`);
    }
    const unknown = Object.keys(messages).filter((k) => !(ERROR_CODES as readonly string[]).includes(k));
    expect({ problems, unknown }).toEqual({ problems: [], unknown: [] });
  });
});
