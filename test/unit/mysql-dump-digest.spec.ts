import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MysqlDumpDigestStream, MysqlDumpParser, UnparsableDumpError } from '../../src/engines/mysql-dump-digest';

/** The output of mariadb-dump 10.19 (MariaDB 10.11) for a small database, as written (trimmed of SET lines). */
const MARIADB_DUMP = `/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
/*!40101 SET NAMES utf8mb4 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;

--
-- Table structure for table \`e\`
--

DROP TABLE IF EXISTS \`e\`;
CREATE TABLE \`e\` (
  \`id\` int(11) DEFAULT NULL COMMENT 'it''s; a "comment" -- not one'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

DROP TABLE IF EXISTS \`m\`;
CREATE TABLE \`m\` (
  \`id\` int(11) DEFAULT -1
) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

DROP TABLE IF EXISTS \`t\`;
CREATE TABLE \`t\` (
  \`id\` int(11) NOT NULL,
  \`s\` text DEFAULT NULL,
  \`b\` blob DEFAULT NULL,
  PRIMARY KEY (\`id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

--
-- Dumping data for table \`t\`
--

/*!40000 ALTER TABLE \`t\` DISABLE KEYS */;
INSERT INTO \`t\` VALUES
(1,'a\\'b\\\\c\\nd',0x00275C0A),
(2,NULL,NULL);
/*!40000 ALTER TABLE \`t\` ENABLE KEYS */;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=\`root\`@\`127.0.0.1\`*/ /*!50003 TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO m VALUES (NEW.id) 
*/;;
DELIMITER ;
/*!50001 CREATE VIEW \`v\` AS SELECT
 NULL AS \`id\` */;
DELIMITER ;;
CREATE DEFINER=\`root\`@\`127.0.0.1\` PROCEDURE \`p\`()
BEGIN
INSERT INTO \`m\` VALUES (5);
INSERT INTO \`m\` VALUES (6);
END
;;
DELIMITER ;
-- Dump completed
`;

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

function parse(chunks: Buffer[]): ReturnType<MysqlDumpParser['digests']> {
  const parser = new MysqlDumpParser();
  for (const chunk of chunks) parser.write(chunk);
  parser.end();
  return parser.digests();
}

/** `buf` cut into pieces of random lengths in [1, max]. */
function randomChunks(buf: Buffer, max: number, seed: number): Buffer[] {
  const chunks: Buffer[] = [];
  let state = seed;
  for (let i = 0; i < buf.length;) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (state % max);
    chunks.push(buf.subarray(i, i + n));
    i += n;
  }
  return chunks;
}

function bytewise(buf: Buffer): Buffer[] {
  return [...buf].map((b) => Buffer.from([b]));
}

describe('MysqlDumpParser (mysqldump / mariadb-dump SQL output)', () => {
  const tRows = `(1,'a\\'b\\\\c\\nd',0x00275C0A)(2,NULL,NULL)`;

  it('counts and hashes the rows of each base table, not INSERTs inside triggers and routines', () => {
    const digests = parse([Buffer.from(MARIADB_DUMP)]);
    expect(digests).toEqual([
      { name: 'e', rows: 0, bytes: 0, sha256: sha256('') },
      { name: 'm', rows: 0, bytes: 0, sha256: sha256('') },
      { name: 't', rows: 2, bytes: Buffer.byteLength(tRows), sha256: sha256(tRows) },
    ]);
  });

  it('gives the same digests whatever the chunk boundaries (every byte a chunk; random chunks)', () => {
    const whole = parse([Buffer.from(MARIADB_DUMP)]);
    expect(parse(bytewise(Buffer.from(MARIADB_DUMP)))).toEqual(whole);
    for (let seed = 1; seed <= 20; seed++) expect(parse(randomChunks(Buffer.from(MARIADB_DUMP), 17, seed))).toEqual(whole);
  });

  it('does not depend on how rows are split into statements and lines (mysqldump vs mariadb-dump layout)', () => {
    const oneLine = "INSERT INTO `t` VALUES (1,'x'),(2,'y'),(3,NULL);\n";
    const split = "INSERT INTO `t` VALUES (1,'x'),(2,'y');\nINSERT INTO `t` VALUES\n(3,NULL);\n";
    const withColumns = "INSERT INTO `t` (`id`, `we``ird`) VALUES (1,'x'),\n(2,'y'),\n(3,NULL);\n";
    const expected = [{ name: 't', rows: 3, bytes: 22, sha256: sha256("(1,'x')(2,'y')(3,NULL)") }];
    expect(parse([Buffer.from(oneLine)])).toEqual(expected);
    expect(parse([Buffer.from(split)])).toEqual(expected);
    expect(parse([Buffer.from(withColumns)])).toEqual(expected);
  });

  it('keeps quotes, backslashes, parentheses, semicolons and statement-like text inside strings', () => {
    const tuples = [
      `(1,'it''s','\\\\')`, // a doubled quote; a string ending in an escaped backslash
      `(2,'); INSERT INTO \`x\` VALUES (9,''','"(')`, // statement-like text and unbalanced parentheses in strings
      `(3,"dq \\" ' ;",'line\\nbreak\\r\\Z\\0')`, // a double-quoted string with an escaped double quote
      `(4,'ünïcödé 🙂',-1.5e-3)`,
    ];
    const dump = `INSERT INTO \`t\` VALUES ${tuples.join(',')};\nINSERT INTO \`u\` VALUES (1);\n`;
    const expected = [
      { name: 't', rows: 4, bytes: Buffer.byteLength(tuples.join('')), sha256: sha256(tuples.join('')) },
      { name: 'u', rows: 1, bytes: 3, sha256: sha256('(1)') },
    ];
    expect(parse([Buffer.from(dump)])).toEqual(expected);
    expect(parse(bytewise(Buffer.from(dump)))).toEqual(expected);
  });

  it('digests a row of several MiB split across many chunks with bounded state', () => {
    const big = "x\\'y".repeat(1_500_000); // 6 MB of text with escapes throughout
    const tuple = `(1,'${big}',0x${'ab'.repeat(100_000)})`;
    const dump = Buffer.from(`-- head\nINSERT INTO \`big\` VALUES ${tuple},(2,'');\n`);
    const digests = parse(randomChunks(dump, 65_536, 7));
    expect(digests).toEqual([{ name: 'big', rows: 2, bytes: Buffer.byteLength(tuple) + 6, sha256: sha256(`${tuple}(2,'')`) }]);
  });

  it('names the table whose digest changes when one byte of a row changes', () => {
    const a = parse([Buffer.from("INSERT INTO `a` VALUES (1,'x');\nINSERT INTO `b` VALUES (1,'x');\n")]);
    const b = parse([Buffer.from("INSERT INTO `a` VALUES (1,'x');\nINSERT INTO `b` VALUES (1,'y');\n")]);
    expect(a[0]).toEqual(b[0]);
    expect(a[1].sha256).not.toBe(b[1].sha256);
  });

  it('rejects a dump that ends inside an INSERT, or an INSERT it does not understand', () => {
    const truncated = new MysqlDumpParser();
    truncated.write(Buffer.from("INSERT INTO `t` VALUES (1,'abc"));
    expect(() => truncated.end()).toThrow(UnparsableDumpError);
    expect(() => new MysqlDumpParser().write(Buffer.from('INSERT INTO `t` SELECT 1;'))).toThrow(/after INSERT INTO/);
    expect(() => new MysqlDumpParser().write(Buffer.from('INSERT INTO `t` VALUES (1) (2);'))).toThrow(/between the rows/);
  });

  it('passes the bytes through unchanged as a stream, and reports (not throws) a dump it cannot parse', async () => {
    const received: Buffer[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, cb) => (received.push(c), cb()) });
    const digest = new MysqlDumpDigestStream();
    await pipeline(Readable.from(randomChunks(Buffer.from(MARIADB_DUMP), 100, 3)), digest, sink);
    expect(Buffer.concat(received).toString()).toBe(MARIADB_DUMP);
    expect(digest.problem).toBeUndefined();
    expect(digest.digests.map((d) => [d.name, d.rows])).toEqual([
      ['e', 0],
      ['m', 0],
      ['t', 2],
    ]);

    const bad = new MysqlDumpDigestStream();
    await pipeline(Readable.from([Buffer.from("INSERT INTO `t` VALUES (1,'x"), Buffer.from("')")]), bad, new Writable({ write: (_c, _e, cb) => cb() }));
    expect(bad.problem).toMatch(/table digests unavailable: the dump ends inside an INSERT statement of table t/);
    expect(bad.digests).toEqual([]);
  });
});
