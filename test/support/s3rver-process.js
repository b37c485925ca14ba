'use strict';
/**
 * s3rver (an S3 emulator) as its own process, so a test can SIGKILL it mid-request and start it again on the same
 * port and data directory. Started by `s3-server.ts`: `node s3rver-process.js <port> <directory> <bucket> [address]`
 * (address: the interface to listen on, 127.0.0.1 unless given; the container stand-in passes 0.0.0.0).
 *
 * s3rver 3.7.1 answers ListMultipartUploads with 501 NotImplemented and AbortMultipartUpload with 405
 * MethodNotAllowed. Both are plain S3 API operations that a driver needs against a real store (aborting a failed
 * upload; finding the uploads a crashed process left), so this process adds them, per the S3 API reference, over
 * s3rver's own upload store (`<directory>/<bucket>/._S3rver_uploads/<uploadId>/{key,1,2,...}`): an abort really
 * removes the staged parts from disk, and a test can check that none are left. Every other operation is s3rver's.
 * The two added operations skip s3rver's signature check (the tests do not depend on it for them).
 */
const fs = require('node:fs');
const path = require('node:path');
const S3rver = require('s3rver');

const [port, directory, bucket, address = '127.0.0.1'] = process.argv.slice(2);

const xmlEscape = (s) => String(s).replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

function s3Error(ctx, status, code, message) {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`;
}

/** The uploads in progress in a bucket, sorted by key then upload id (as S3 lists them). */
function uploadsOf(bucketName) {
  const dir = path.join(directory, bucketName, '._S3rver_uploads');
  let ids;
  try {
    ids = fs.readdirSync(dir);
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
  const uploads = [];
  for (const uploadId of ids) {
    try {
      const key = fs.readFileSync(path.join(dir, uploadId, 'key'), 'utf8');
      uploads.push({ key, uploadId, initiated: fs.statSync(path.join(dir, uploadId)).mtime, dir: path.join(dir, uploadId) });
    } catch (error) {
      if (error.code !== 'ENOENT') throw error; // completed or aborted meanwhile
    }
  }
  return uploads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.uploadId < b.uploadId ? -1 : 1));
}

/** ListMultipartUploads (GET /bucket?uploads) and AbortMultipartUpload (DELETE /bucket/key?uploadId=). */
function multipartManagement() {
  return async (ctx, next) => {
    const match = /^\/([^/]+)(?:\/(.*))?$/.exec(ctx.path); // /bucket, /bucket/ or /bucket/key
    if (!match) return next();
    const bucketName = decodeURIComponent(match[1]);
    const key = match[2] ? match[2].split('/').map(decodeURIComponent).join('/') : undefined;
    if (!fs.existsSync(path.join(directory, bucketName))) return next(); // s3rver answers NoSuchBucket

    if (ctx.method === 'GET' && key === undefined && 'uploads' in ctx.query) {
      const prefix = ctx.query['prefix'] || '';
      const keyMarker = ctx.query['key-marker'] || '';
      const idMarker = ctx.query['upload-id-marker'] || '';
      const maxUploads = Math.min(1000, Number(ctx.query['max-uploads'] || 1000));
      const after = (u) => u.key > keyMarker || (u.key === keyMarker && idMarker !== '' && u.uploadId > idMarker);
      const matching = uploadsOf(bucketName).filter((u) => u.key.startsWith(prefix) && (keyMarker === '' || after(u)));
      const page = matching.slice(0, maxUploads);
      const truncated = matching.length > page.length;
      const last = page[page.length - 1];
      ctx.status = 200;
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
        '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        `<Bucket>${xmlEscape(bucketName)}</Bucket><KeyMarker>${xmlEscape(keyMarker)}</KeyMarker>` +
        `<UploadIdMarker>${xmlEscape(idMarker)}</UploadIdMarker><Prefix>${xmlEscape(prefix)}</Prefix>` +
        (truncated ? `<NextKeyMarker>${xmlEscape(last.key)}</NextKeyMarker><NextUploadIdMarker>${last.uploadId}</NextUploadIdMarker>` : '') +
        `<MaxUploads>${maxUploads}</MaxUploads><IsTruncated>${truncated}</IsTruncated>` +
        page
          .map(
            (u) =>
              `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.uploadId}</UploadId>` +
              `<Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
          )
          .join('') +
        '</ListMultipartUploadsResult>';
      return;
    }

    if (ctx.method === 'DELETE' && key !== undefined && 'uploadId' in ctx.query) {
      const upload = uploadsOf(bucketName).find((u) => u.uploadId === ctx.query['uploadId'] && u.key === key);
      if (!upload) return s3Error(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.');
      fs.rmSync(upload.dir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    return next();
  };
}

const server = new S3rver({
  address,
  port: Number(port),
  directory,
  silent: true,
  // Path-style addressing only (the driver's forcePathStyle). With vhost buckets on, s3rver takes any host name that
  // is neither an IP nor localhost for a bucket name (CNAME style): `http://s3:9000/dr-backups/...` in the compose
  // network would address a bucket named "s3".
  vhostBuckets: false,
  configureBuckets: [{ name: bucket }],
});
// Koa composes its middleware list when the server starts listening: insert before s3rver's router (the last one).
server.middleware.splice(server.middleware.length - 1, 0, multipartManagement());
server.run().then(
  (address) => process.stdout.write(`s3rver listening on ${address.address}:${address.port}\n`),
  (error) => {
    process.stderr.write(`s3rver failed to start: ${error.stack || error}\n`);
    process.exit(1);
  },
);
