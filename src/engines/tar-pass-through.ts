import { Transform } from 'node:stream';
import { extract, Headers } from 'tar-stream';

/** What a {@link TarPassThrough} does with one member: its content chunks, then its end. */
export interface TarMemberReader {
  data?(chunk: Buffer): void;
  end?(): void;
}

/**
 * A pass-through stream that parses the tar archive flowing through it (tar-stream, POSIX ustar/GNU/pax) and hands
 * each member to {@link member}: the bytes pass on unchanged. Back-pressure is kept: a chunk passes on only once the
 * parser has taken it. A parse error fails the stream; destroying the stream destroys the parser, so nothing is
 * left waiting on a half-read member.
 */
export abstract class TarPassThrough extends Transform {
  private readonly parser = extract();
  private parseError?: Error;

  constructor() {
    super({ highWaterMark: 1 << 20 });
    this.parser.on('entry', (header: Headers, stream, next) => {
      const reader = this.member(header);
      // a member cut short (a truncated archive, or the parser destroyed when the backup fails) errors here too:
      // the parser's own 'error' carries it, so this listener only keeps it from being an unhandled error event
      stream.on('error', () => undefined);
      stream.on('data', (chunk: Buffer) => reader.data?.(chunk));
      stream.on('end', () => {
        reader.end?.();
        next();
      });
    });
    this.parser.on('error', (error: Error) => {
      this.parseError = error;
    });
  }

  /** Called at each member's header; the returned reader gets its content. */
  protected abstract member(header: Headers): TarMemberReader;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    if (this.parseError) return callback(this.parseError);
    // tar-stream is built on streamx: write() takes no callback; wait for 'drain' when it asks to.
    if (this.parser.write(chunk)) callback(null, chunk);
    else this.parser.once('drain', () => callback(this.parseError ?? null, chunk));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.parser.destroy();
    callback(error);
  }

  override _flush(callback: (error?: Error | null) => void): void {
    this.parser.once('finish', () => callback(this.parseError ?? null));
    this.parser.once('error', (error: Error) => callback(error));
    this.parser.end();
  }
}
