import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyMoves } from '../../src/engines/chain-restore';

/** A move list as stored: pairs `from\0to\0`, delivered in small chunks (a pair may span chunks). */
const list = (pairs: [string, string][]) => {
  const bytes = Buffer.from(pairs.map(([from, to]) => `${from}\0${to}\0`).join(''));
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 3) chunks.push(bytes.subarray(i, i + 3));
  return Readable.from(chunks);
};

describe("applyMoves (restoring an incremental's move list)", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dr-moves-'));
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a/one'), 'one');
    writeFileSync(join(dir, 'two'), 'two');
    writeFileSync(join(dir, 'three'), 'old three');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("renames each pair, creating the destination's directories and replacing a file there", async () => {
    expect(
      await applyMoves(
        dir,
        list([
          ['a/one', 'new/deep/one'],
          ['two', 'three'],
        ]),
      ),
    ).toBe(2);
    expect(readFileSync(join(dir, 'new/deep/one'), 'utf8')).toBe('one');
    expect(readFileSync(join(dir, 'three'), 'utf8')).toBe('two');
    expect(existsSync(join(dir, 'a/one'))).toBe(false);
    expect(existsSync(join(dir, 'two'))).toBe(false);
  });

  it('fails naming a source that is missing, an unsafe path, and a path through a symlink outside', async () => {
    await expect(applyMoves(dir, list([['gone', 'x']]))).rejects.toThrow(/"gone" is missing/);
    await expect(applyMoves(dir, list([['two', '../escape']]))).rejects.toThrow(/unsafe path/);
    const outside = mkdtempSync(join(tmpdir(), 'dr-moves-outside-'));
    symlinkSync(outside, join(dir, 'out'));
    await expect(applyMoves(dir, list([['two', 'out/two']]))).rejects.toThrow(/outside the target/);
    expect(existsSync(join(outside, 'two'))).toBe(false);
    rmSync(outside, { recursive: true });
    await expect(applyMoves(dir, Readable.from([Buffer.from('two\0')]))).rejects.toThrow(/no destination/);
  });
});
