'use strict';
/**
 * Child process behind test/support/gcs-emulator.ts: the Cloud Storage emulator of firebase-tools (its GCS JSON
 * API, written in Node) on 127.0.0.1:<port>, with four changes, each for a gap that would otherwise make the
 * contract untestable here. Usage: `node gcs-emulator-server.js <port> <dataDir> [host]` (host: the interface to listen
 * on, 127.0.0.1 unless given; the container stand-in passes 0.0.0.0); prints `ready` when listening.
 *
 * 1. No security-rules runtime. `firebase emulators:start` refuses to start without Java >= 21 (Debian 12 has 17)
 *    and downloads a rules JAR from Google on first start, which this machine cannot reach. The rules only guard
 *    the Firebase (/v0) API: the GCS JSON API endpoints run on the emulator's admin storage layer, which allows
 *    everything, so skipping the runtime changes nothing the driver sees.
 * 2. Chunked resumable uploads. The emulator finalizes a resumable upload on its first PUT whatever the
 *    Content-Range (firebase-tools PR #9047 fixed it and was reverted; PR #10325 is open). The PUT handler below
 *    follows the documented protocol instead: a chunk `bytes a-b/*` or `bytes a-b/N` (N > b+1) is appended and
 *    answered `308` with `Range: bytes=0-<committed-1>`; the request that reaches the declared total (or
 *    `bytes a-* /*`, the client's single-request form) finalizes; `bytes * /N` finalizes with no data, `bytes * /*`
 *    asks for the status; a chunk that does not start at the committed offset is refused; an `X-Goog-Hash: crc32c`
 *    header is checked against the stored object. Bodies are streamed to disk, not buffered. DELETE on the session
 *    URI cancels it (499, as GCS answers). Every request is recorded for GET /_emulator/chunks.
 * 3. Data that survives SIGKILL. The emulator keeps object metadata in memory only. Here its blob directory is
 *    <dataDir>/blobs, and after every object finalize/delete (before the HTTP answer) the metadata is written
 *    atomically to <dataDir>/state.json and read back on start. Upload sessions are not persisted: a session open
 *    when the process dies is gone after the restart (GCS keeps them for a week).
 * 4. The emulator stores blobs under os.tmpdir(); the parent sets TMPDIR to the data dir, so nothing is shared.
 */
const { createWriteStream, existsSync, readFileSync, renameSync, writeFileSync } = require('node:fs');
const { join, dirname } = require('node:path');
const { finished } = require('node:stream/promises');

const [, , portArg, dataDir, host = '127.0.0.1'] = process.argv;
const port = Number(portArg);
if (!port || !dataDir) {
  console.error('usage: gcs-emulator-server.js <port> <dataDir>');
  process.exit(2);
}

// firebase-tools lives in its own package (test/emulators/gcs), installed by .ci/run, not in the project's dependencies.
const firebaseTools = dirname(require.resolve('firebase-tools/package.json', { paths: [join(__dirname, '..', 'emulators', 'gcs')] }));
const lib = (path) => require(join(firebaseTools, 'lib', 'emulator', path));
const express = require(require.resolve('express', { paths: [firebaseTools] }));
const { StorageEmulator } = lib('storage');
const { createApp } = lib('storage/server');
const { EmulatorRegistry } = lib('registry');
const { StoredFile } = lib('storage/files');
const { StoredFileMetadata, CloudStorageObjectMetadata } = lib('storage/metadata');
const { UploadStatus } = lib('storage/upload');

const STATE = join(dataDir, 'state.json');
/** Every PUT/DELETE on an upload session: { object, contentRange, bytes, status }. */
const sessionLog = [];

class TestStorageEmulator extends StorageEmulator {
  getPersistenceTmpDir() {
    return join(this.args.dataDir, 'blobs');
  }

  async start() {
    this.restoreState();
    const layer = this.adminStorageLayer;
    const dispatch = layer._cloudFunctions.dispatch.bind(layer._cloudFunctions);
    layer._cloudFunctions.dispatch = (action, object) => {
      this.saveState();
      return dispatch(action, object);
    };
    const app = express();
    app.get('/_emulator/chunks', (_req, res) => res.json(sessionLog));
    app.put('/upload/storage/v1/b/:bucketId/o', (req, res, next) => {
      if (!req.query.upload_id) return next();
      this.putToSession(String(req.query.upload_id), req, res).catch(next);
    });
    app.delete('/upload/storage/v1/b/:bucketId/o', (req, res) => {
      const id = String(req.query.upload_id ?? '');
      let upload;
      try {
        upload = this.uploadService.getResumableUpload(id);
      } catch {
        return res.status(404).json(error(404, 'No such upload session'));
      }
      sessionLog.push({ object: upload.objectId, contentRange: 'DELETE', bytes: 0, status: 499 });
      if (upload.status === UploadStatus.ACTIVE) this.uploadService.cancelResumableUpload(id);
      return res.status(499).end();
    });
    app.use(await createApp(this.args.projectId, this));
    await new Promise((resolve, reject) => {
      const server = app.listen(port, host, resolve);
      server.on('error', reject);
    });
  }

  /** One request on a resumable session, as GCS handles it. */
  async putToSession(id, req, res) {
    let upload;
    try {
      upload = this.uploadService.getResumableUpload(id);
    } catch {
      req.resume();
      return res.status(404).json(error(404, 'No such upload session'));
    }
    const header = req.header('content-range');
    const log = { object: upload.objectId, contentRange: header ?? null, bytes: 0, status: 0 };
    sessionLog.push(log);
    const reply = (status, body) => {
      log.status = status;
      return body === undefined ? res.status(status).end() : res.status(status).json(body);
    };
    if (upload.status === UploadStatus.CANCELLED) {
      req.resume();
      return reply(499);
    }
    if (upload.status === UploadStatus.FINISHED) {
      req.resume();
      const metadata = this.adminStorageLayer.getMetadata(upload.bucketId, upload.objectId);
      return metadata ? reply(200, new CloudStorageObjectMetadata(metadata)) : reply(404, error(404, 'upload finished, object gone'));
    }
    const range = parseContentRange(header);
    if (!range) {
      req.resume();
      return reply(400, error(400, `bad Content-Range: ${header}`));
    }
    if (range.start !== undefined) {
      if (range.start > upload.size) {
        req.resume();
        return reply(400, error(400, `chunk starts at ${range.start}, ${upload.size} bytes committed`));
      }
      const skip = upload.size - range.start; // bytes the server already has (a resent chunk)
      const out = createWriteStream(this._persistence.getDiskPath(upload.path), { flags: 'a' });
      let seen = 0;
      for await (const chunk of req) {
        const from = Math.max(0, Math.min(chunk.length, skip - seen));
        seen += chunk.length;
        if (from < chunk.length && !out.write(from ? chunk.subarray(from) : chunk)) await new Promise((r) => out.once('drain', r));
      }
      out.end();
      await finished(out);
      log.bytes = seen;
      upload.size = Math.max(upload.size, range.start + seen);
      if (range.end !== undefined && range.end !== range.start + seen - 1) {
        return reply(400, error(400, `Content-Range ${header} announced ${range.end - range.start + 1} bytes, got ${seen}`));
      }
    } else {
      req.resume();
    }
    const total = range.total ?? (range.openEnded ? upload.size : undefined);
    if (total === undefined || upload.size < total) {
      if (upload.size > 0) res.setHeader('Range', `bytes=0-${upload.size - 1}`);
      return reply(308);
    }
    if (upload.size > total) return reply(400, error(400, `${upload.size} bytes received, total ${total}`));
    this.uploadService.finalizeResumableUpload(id);
    const metadata = await this.adminStorageLayer.uploadObject(upload);
    const expected = /crc32c=([^,]+)/.exec(req.header('x-goog-hash') ?? '')?.[1];
    if (expected && expected !== metadata.crc32c) {
      this.adminStorageLayer.deleteFile(upload.bucketId, upload.objectId);
      return reply(400, error(400, `crc32c mismatch: client ${expected}, server ${metadata.crc32c}`));
    }
    return reply(200, new CloudStorageObjectMetadata(metadata));
  }

  saveState() {
    const files = [];
    for (const [path, file] of this._files) {
      files.push({ path, disk: this._persistence.getDiskFileName(path), metadata: JSON.parse(StoredFileMetadata.toJSON(file.metadata)) });
    }
    writeFileSync(`${STATE}.tmp`, JSON.stringify({ buckets: [...this._buckets.keys()], files }));
    renameSync(`${STATE}.tmp`, STATE);
  }

  restoreState() {
    if (!existsSync(STATE)) return;
    const state = JSON.parse(readFileSync(STATE, 'utf8'));
    for (const id of state.buckets) this.adminStorageLayer.createBucket(id);
    for (const { path, disk, metadata } of state.files) {
      this._persistence._diskPathMap.set(path, disk);
      this._files.set(path, new StoredFile(StoredFileMetadata.fromJSON(JSON.stringify(metadata), this._cloudFunctions)));
    }
  }
}

/** `bytes a-b/N`, `bytes a-b/*`, `bytes a-* /N|*`, `bytes * /N`, `bytes * /*` (without the spaces). */
function parseContentRange(header) {
  const m = /^bytes (?:(\d+)-(\d+|\*)|\*)\/(\d+|\*)$/.exec(header ?? '');
  if (!m) return undefined;
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (m[1] === undefined) return { total };
  const start = Number(m[1]);
  if (m[2] === '*') return { start, total, openEnded: true };
  const end = Number(m[2]);
  return end < start ? undefined : { start, end, total };
}

function error(code, message) {
  return { error: { code, message, errors: [{ message, domain: 'global', reason: code === 404 ? 'notFound' : 'invalid' }] } };
}

const emulator = new TestStorageEmulator({ projectId: 'dr-test', host: '127.0.0.1', port, dataDir });
EmulatorRegistry.start(emulator).then(
  () => console.log('ready'),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
