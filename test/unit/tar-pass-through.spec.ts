import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, Headers } from 'tar-stream';
import { ProcessRunner } from '../../src/engines/process-runner';
import { TarArchiver } from '../../src/engines/tar-archiver';
import { TarMemberReader, TarPassThrough } from '../../src/engines/tar-pass-through';
import { makeAwkwardTree } from '../support/awkward-tree';

/** What a member looks like to a reader: its header fields and the SHA-256 of the content handed over. */
interface Seen {
  name: string;
  type: string | null | undefined;
  size: number | undefined;
  mode: number | undefined;
  mtime: number | undefined;
  linkname: string | null | undefined;
  pax: Record<string, string> | null | undefined;
  bytes: number;
  sha256: string;
}

function seen(header: Headers, hash: ReturnType<typeof createHash>, bytes: number): Seen {
  return {
    name: header.name,
    type: header.type,
    size: header.size,
    mode: header.mode,
    mtime: header.mtime?.getTime(),
    linkname: header.linkname,
    pax: (header as Headers & { pax?: Record<string, string> | null }).pax ?? null,
    bytes,
    sha256: hash.digest('hex'),
  };
}

/** Records every member TarPassThrough hands over, and the bytes it passes on. */
class Recorder extends TarPassThrough {
  readonly members: Seen[] = [];

  protected member(header: Headers): TarMemberReader {
    const hash = createHash('sha256');
    let bytes = 0;
    return {
      data: (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
      },
      end: () => this.members.push(seen(header, hash, bytes)),
    };
  }
}

/** The members as tar-stream's own `extract()` (the reference) shows them. */
async function reference(archive: Buffer): Promise<Seen[]> {
  const members: Seen[] = [];
  const parser = extract();
  const done = new Promise<void>((resolve, reject) => {
    parser.on('entry', (header: Headers, stream, next) => {
      const hash = createHash('sha256');
      let bytes = 0;
      stream.on('error', () => undefined); // a member cut short: the parser's own 'error' reports it
      stream.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      stream.on('end', () => {
        members.push(seen(header, hash, bytes));
        next();
      });
    });
    parser.on('finish', resolve);
    parser.on('error', reject);
  });
  parser.end(archive);
  await done;
  return members;
}

/** Feeds `archive` through a Recorder in chunks of the given sizes (cycled). @returns the members and the bytes out */
async function recorded(archive: Buffer, sizes: number[]): Promise<{ members: Seen[]; out: Buffer }> {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < archive.length; i++) {
    const size = sizes[i % sizes.length];
    chunks.push(archive.subarray(at, at + size));
    at += size;
  }
  const recorder = new Recorder();
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), recorder, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return { members: recorder.members, out: Buffer.concat(out) };
}

/**
 * The framing of TarPassThrough (ours) around tar-stream's header codec: each member must be seen exactly as
 * tar-stream's extract() sees it, whatever the chunking, on archives of GNU tar as the engines run it (pax, xattrs,
 * ACLs, long and non-UTF-8 names, symlinks, hard links, sparse files), and the bytes pass on unchanged.
 */
describe('TarPassThrough (tar framing over tar-stream headers)', () => {
  const work = mkdtempSync(join(tmpdir(), 'dr-tarpass-'));
  let archive: Buffer;

  beforeAll(async () => {
    const src = join(work, 'src');
    execFileSync('mkdir', ['-p', src]);
    makeAwkwardTree(src);
    // sizes around the block size, a hard link, a sparse file, a file of many blocks
    const script = String.raw`cd "$1" && : > empty && head -c 1 /dev/urandom > one && head -c 511 /dev/urandom > b511 &&
      head -c 512 /dev/urandom > b512 && head -c 513 /dev/urandom > b513 && head -c 300000 /dev/urandom > big &&
      ln b513 hard && truncate -s 5M sparse && printf data | dd of=sparse bs=1 seek=1048576 conv=notrunc status=none &&
      setfattr -n user.note -v "$(head -c 3000 /dev/zero | tr '\0' x)" b511`;
    execFileSync('bash', ['-c', script, '_', src]);
    const tar = new TarArchiver(new ProcessRunner()).create({ cwd: src, signal: new AbortController().signal });
    const parts: Buffer[] = [];
    for await (const chunk of tar.stream) parts.push(chunk as Buffer);
    await tar.done;
    archive = Buffer.concat(parts);
  });

  afterAll(() => execFileSync('rm', ['-rf', '--', work])); // deeper than PATH_MAX: Node's rmSync cannot

  it('sees every member as tar-stream does, in any chunking, and passes the bytes on unchanged', async () => {
    const expected = await reference(archive);
    expect(expected.length).toBeGreaterThan(20);
    // the archive has what the framing must get right: pax records, content spanning chunks, sparse members
    expect(expected.some((m) => m.pax?.['GNU.sparse.major'] !== undefined || m.pax?.['GNU.sparse.size'] !== undefined)).toBe(true);
    expect(expected.some((m) => Object.keys(m.pax ?? {}).some((k) => k.startsWith('SCHILY.xattr.user.note')))).toBe(true);
    expect(expected.some((m) => m.type === 'link')).toBe(true);
    expect(expected.some((m) => Buffer.byteLength(m.name) > 255)).toBe(true);
    for (const sizes of [[archive.length], [1], [511], [512], [513], [7, 1024, 65536, 3, 500_000], [64 * 1024]]) {
      const { members, out } = await recorded(archive, sizes);
      expect(members).toEqual(expected);
      expect(out.equals(archive)).toBe(true);
    }
  });

  it('fails an archive cut short (in a header, a pax record block, a member or its padding) and one with a damaged header', async () => {
    // a cut off the 512-byte grid ends inside something, never at a clean end of the archive
    for (const cut of [100, 700, Math.floor(archive.length / 2) + 7, archive.length - 7]) {
      await expect(recorded(archive.subarray(0, cut), [4096])).rejects.toThrow('Unexpected end of data');
      await expect(reference(archive.subarray(0, cut))).rejects.toThrow('Unexpected end of data');
    }
    const damaged = Buffer.from(archive);
    damaged[10] ^= 0xff; // the first header's name: its checksum no longer holds
    await expect(recorded(damaged, [4096])).rejects.toThrow(/Invalid tar header/);
  });
});
