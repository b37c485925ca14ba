/**
 * What resolves a secret reference (`env:NAME`, `file:/path`) to its value, under the request allow-list: the
 * service's {@link SecretResolver} and the WAL client's `CliSecretSource` (no Nest: `dr wal-push` starts per WAL
 * file). Drivers and the WAL archive store take this interface, whichever process they run in.
 */
export interface SecretSource {
  /**
   * @param field the field that named the reference, for messages (never the value).
   * @throws when the allow-list refuses the reference, or an allowed one cannot be read.
   */
  resolve(ref: string, field: string): Promise<string>;
}
