import { isWellFormedUnicode, jsonDepthProblem, MAX_REQUEST_DEPTH, requestShapeProblems } from '../../src/hardening/request-shape';

/** Nesting `depth` levels of arrays below the top-level object's `a`. */
function nested(depth: number): { a: unknown } {
  let value: unknown = [];
  for (let i = 1; i < depth; i++) value = [value];
  return { a: value };
}

describe('request shape (depth and well-formed Unicode, checked before class-transformer)', () => {
  it(`accepts ${MAX_REQUEST_DEPTH} levels and refuses ${MAX_REQUEST_DEPTH + 1}, naming the path where it stopped`, () => {
    expect(requestShapeProblems(nested(MAX_REQUEST_DEPTH))).toEqual([]);
    expect(requestShapeProblems(nested(MAX_REQUEST_DEPTH + 1))).toEqual([
      { field: `a${'.0'.repeat(MAX_REQUEST_DEPTH)}`, message: `nested deeper than ${MAX_REQUEST_DEPTH} levels` },
    ]);
    // 100,000 levels: no recursion, so no stack overflow here either
    expect(requestShapeProblems(nested(100_000))).toHaveLength(1);
  });

  it('tells lone surrogates from pairs: emoji and astral letters pass, a lone high or low surrogate does not', () => {
    for (const ok of ['', 'plain', '𝕏💥', 'שלום', '\ud83d\udca5']) expect([ok, isWellFormedUnicode(ok)]).toEqual([ok, true]);
    for (const bad of ['\ud800', 'a\udbff', '\udc00b', '💥\ud83d', '\udca5\ud83d']) expect([bad, isWellFormedUnicode(bad)]).toEqual([bad, false]);
    expect(requestShapeProblems({ s: { list: ['ok', 'x\udfff'] }, ['k\ud800']: 'v' }, 'body')).toEqual([
      { field: 'body.s.list.1', message: 'must be well-formed Unicode (it holds a lone UTF-16 surrogate)' },
      { field: 'body.k\ufffd', message: 'must be well-formed Unicode (it holds a lone UTF-16 surrogate)' },
    ]);
  });

  it('finds the same depth limit in raw JSON bytes before parsing, naming the path; brackets in strings do not count', () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(jsonDepthProblem(Buffer.from(JSON.stringify(nested(MAX_REQUEST_DEPTH))))).toBeNull();
    expect(jsonDepthProblem(Buffer.from(JSON.stringify(nested(MAX_REQUEST_DEPTH + 1))))).toEqual({
      field: `a${'.0'.repeat(MAX_REQUEST_DEPTH)}`,
      message: `nested deeper than ${MAX_REQUEST_DEPTH} levels`,
    });
    // the same verdict as the parsed check, for the same documents
    for (const n of [1, 31, 32, 33, 34, 2000]) {
      const text = `{"x":1,"list":["a",{"k\\"ey":${deep(n)}}]}`;
      const parsed = requestShapeProblems(JSON.parse(text)).map((p) => p.field);
      const raw = jsonDepthProblem(Buffer.from(text));
      expect([n, raw?.field ?? null]).toEqual([n, parsed[0] ?? null]);
    }
    // structure inside strings (escaped quotes included) is text, not nesting; non-ASCII text needs no decoding
    const tricky = `{"s":"${'[{'.repeat(100)}\\"${'['.repeat(100)}","é✓💥":[1,2,{"t":"]]]}}}"}]}`;
    expect(() => JSON.parse(tricky)).not.toThrow(); // valid JSON, nested 3 deep
    expect(jsonDepthProblem(Buffer.from(tricky))).toBeNull();
    expect(jsonDepthProblem(Buffer.from(`{"é✓💥":[1,2,${deep(40)}]}`))).toEqual({
      field: `é✓💥.2${'.0'.repeat(31)}`,
      message: `nested deeper than ${MAX_REQUEST_DEPTH} levels`,
    });
    // 1 MB of brackets: one pass, no parse
    const started = Date.now();
    expect(jsonDepthProblem(Buffer.from(deep(500_000)))?.message).toBe(`nested deeper than ${MAX_REQUEST_DEPTH} levels`);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
