// fake-gcp.mjs — in-process fakes of the GCS JSON API and the BigQuery v2 REST API,
// good enough for the official Node clients (@google-cloud/storage 7.x,
// @google-cloud/bigquery 8.x) to run against, with every request recorded.
//
// Zero dependencies: Node >= 18.2 built-ins only (node:http, node:crypto).
//
// Quick start
// -----------
//   import { Storage } from '@google-cloud/storage';
//   import { BigQuery } from '@google-cloud/bigquery';
//   import { startFakeGcp } from './fake-gcp.mjs';
//
//   const fake = await startFakeGcp({ gcs: { pageSize: 2 } });
//   const storage  = new Storage(fake.gcs.clientOptions({ projectId: 'p' }));
//   const bigquery = new BigQuery(fake.bigquery.clientOptions({ projectId: 'p' }));
//   ... use the clients ...
//   fake.gcs.requests        // [{ seq, service, op, method, path, pathname, query, headers, body, status, response, ... }]
//   await fake.stop();
//
// How the clients are pointed at the fakes (what clientOptions() returns)
// -----------------------------------------------------------------------
//   Storage:  { apiEndpoint: 'http://127.0.0.1:PORT', projectId, authClient: NO_AUTH, retryOptions }
//     - Any apiEndpoint different from https://storage.googleapis.com marks the client as
//       "customEndpoint" and, unless useAuthWithCustomEndpoint:true, the client then sends NO
//       Authorization header and never touches google-auth-library (no ADC / metadata lookups).
//       The authClient stub is belt-and-braces in case someone sets useAuthWithCustomEndpoint.
//     - Requests go to  {apiEndpoint}/storage/v1/...  and uploads to {apiEndpoint}/upload/storage/v1/...
//     - STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT (env, "experimental") also works with this fake:
//       the client then uses it verbatim as the JSON-API base (paths /b/..., no /storage/v1) and as
//       apiEndpoint for uploads (/upload/storage/v1/...); the fake accepts both. Setting it to
//       .../storage/v1 breaks uploads (/storage/v1/upload/storage/v1/...). Prefer apiEndpoint.
//   BigQuery: { apiEndpoint: 'http://127.0.0.1:PORT', projectId, authClient: NO_AUTH, retryOptions }
//     - BigQuery has NO customEndpoint shortcut: it always calls GoogleAuth.authorizeRequest().
//       Without credentials that would search for ADC and probe the GCE metadata server. Passing
//       an `authClient` object (not a GoogleAuth instance) makes GoogleAuth use it as its cached
//       credential, so only authClient.getRequestHeaders() is called; ours returns {}.
//     - projectId MUST be given (otherwise the client asks authClient.getProjectId()).
//     - Requests go to {apiEndpoint}/bigquery/v2/projects/P/...
//
// Retries: both libraries treat retryOptions.maxRetries === 0 as "unset" (falsy check) and fall
// back to 3 retries with 1s..64s exponential back-off. To disable retries use
// retryOptions: { autoRetry: false }. To keep retries but make them fast, cap the delay:
// retryOptions: { maxRetries: 2, maxRetryDelay: 1 /* seconds; Storage needs >= 1 */, totalTimeout: 10 }
// (BigQuery tolerates maxRetryDelay: 0.05). See FAST_RETRY_GCS / FAST_RETRY_BQ below.
//
// Operations emulated (record.op values)
// --------------------------------------
//   GCS: objects.insert (uploadType=multipart|media), objects.insert.resumable (session start) +
//        objects.insert.resumableChunk (PUT ...&upload_id=, Content-Range), objects.get,
//        objects.get.media (alt=media, Range), objects.list (prefix, delimiter, pageToken,
//        maxResults, startOffset/endOffset), objects.delete, objects.patch/update, objects.compose
//        (<= 32 sources), objects.rewrite (rewriteTo, optional multi-call rewriteToken),
//        objects.copy (copyTo), objects.move (moveTo), buckets.get.
//        Preconditions: ifGenerationMatch (0 = must not exist), ifGenerationNotMatch,
//        ifMetagenerationMatch/NotMatch, ifSource* and sourceGeneration for rewrite.
//        Objects carry generation (+1 per write), metageneration, size, md5Hash, crc32c (composite
//        objects: crc32c only). NOTE crc32c is NOT optional: the Node client validates uploads
//        against the returned crc32c and, if it is missing, DELETES the object and throws
//        FILE_NO_UPLOAD; downloads are validated against the x-goog-hash header.
//   BigQuery: jobs.insert (409 duplicate on same jobId), jobs.get (?location, 404 on mismatch),
//        jobs.list, jobs.cancel, jobs.query (POST /queries — the v8 client's query() fast path),
//        jobs.getQueryResults (GET /queries/ID, paging, jobComplete:false while "running").
//   Anything else: 404 "fake-gcp: ... route not emulated" and record.op === 'unknown'.
//
// Module API (see also the JSDoc on each function):
//   startFakeGcp({ gcs?, bigquery? })  -> { gcs, bigquery, requests, clearRequests(), stop() }
//   startFakeGcs(opts)                 -> GCS fake handle
//   startFakeBigQuery(opts)            -> BigQuery fake handle
//   NO_AUTH                            -> auth client stub (getRequestHeaders() => ({}))
//   NO_RETRY, FAST_RETRY_GCS, FAST_RETRY_BQ (FAST_RETRY = _GCS) -> ready-made retryOptions
//   decodeQueryParameters(qp)          -> BigQuery queryParameters -> { name: { type, value } } (or array)
//   crc32cBase64(buf), md5Base64(buf)  -> the hashes GCS reports

import crypto from 'node:crypto';
import http from 'node:http';

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/** Auth client stub: the official clients call getRequestHeaders(url) and merge the result. */
export const NO_AUTH = Object.freeze({
  async getRequestHeaders() {
    return {};
  },
  async getAccessToken() {
    return { token: 'fake-token' };
  },
  async getProjectId() {
    return undefined;
  },
});

/** retryOptions that switch automatic retries off (maxRetries:0 does NOT do that — it is ignored). */
export const NO_RETRY = Object.freeze({ autoRetry: false });
/**
 * retryOptions that keep retries on but cap the back-off (defaults are 1..64 s, up to 600 s total).
 * Storage: maxRetryDelay must be >= 1 (second): file.save() feeds it to async-retry as maxTimeout
 * with the default minTimeout of 1000 ms, and async-retry throws "minTimeout is greater than
 * maxTimeout" otherwise. So GCS retries cost ~1 s each at best.
 * BigQuery (retry-request only): any cap works; 0.05 => ~50 ms.
 */
export const FAST_RETRY_GCS = Object.freeze({
  autoRetry: true,
  maxRetries: 2,
  maxRetryDelay: 1,
  totalTimeout: 10,
  retryDelayMultiplier: 1.1,
});
export const FAST_RETRY_BQ = Object.freeze({
  autoRetry: true,
  maxRetries: 2,
  maxRetryDelay: 0.05,
  totalTimeout: 10,
  retryDelayMultiplier: 1.1,
});
/** Safe for both clients. */
export const FAST_RETRY = FAST_RETRY_GCS;

// CRC32C (Castagnoli), as GCS reports it: big-endian uint32, base64.
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32c(buf) {
  let crc = 0xffffffff;
  for (let i = 0; i < buf.length; i++) crc = CRC32C_TABLE[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
export function crc32cBase64(buf) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc32c(buf));
  return b.toString('base64');
}
export function md5Base64(buf) {
  return crypto.createHash('md5').update(buf).digest('base64');
}

/** An error a handler raises deep inside (e.g. an invalid object name), answered as is. */
class FakeApiError extends Error {
  constructor(response) {
    super(response.json?.error?.message ?? 'fake-gcp error');
    this.response = response;
  }
}

/** Error body in the Google JSON API format ({ error: { code, message, errors: [...], status } }). */
function apiError(code, reason, message, extra = {}) {
  const status = {
    400: 'INVALID_ARGUMENT',
    401: 'UNAUTHENTICATED',
    403: 'PERMISSION_DENIED',
    404: 'NOT_FOUND',
    409: 'ALREADY_EXISTS',
    412: 'FAILED_PRECONDITION',
    429: 'RESOURCE_EXHAUSTED',
    500: 'INTERNAL',
    502: 'UNAVAILABLE',
    503: 'UNAVAILABLE',
    504: 'DEADLINE_EXCEEDED',
  }[code];
  return {
    status: code,
    json: {
      error: {
        code,
        message,
        errors: [{ message, domain: 'global', reason, ...extra }],
        ...(status ? { status } : {}),
      },
    },
  };
}
const DEFAULT_REASON = {
  400: 'invalid',
  401: 'required',
  403: 'forbidden',
  404: 'notFound',
  409: 'conflict',
  412: 'conditionNotMet',
  429: 'rateLimitExceeded',
  500: 'backendError',
  502: 'backendError',
  503: 'backendError',
  504: 'backendError',
};

/** URLSearchParams -> plain object (repeated keys become arrays). */
function queryToObject(sp) {
  const o = {};
  for (const [k, v] of sp) {
    if (k in o) o[k] = [].concat(o[k], v);
    else o[k] = v;
  }
  return o;
}

/** Parse a multipart/related body (the format teeny-request sends for uploadType=multipart). */
function parseMultipartRelated(buf, contentType) {
  const m = /boundary="?([^";]+)"?/i.exec(contentType || '');
  if (!m) return null;
  const delim = Buffer.from(`--${m[1]}`);
  const parts = [];
  let pos = buf.indexOf(delim);
  while (pos !== -1) {
    let start = pos + delim.length;
    if (buf.slice(start, start + 2).toString() === '--') break; // closing delimiter
    if (buf.slice(start, start + 2).toString() === '\r\n') start += 2;
    const next = buf.indexOf(delim, start);
    if (next === -1) break;
    let part = buf.slice(start, next);
    if (part.slice(-2).toString() === '\r\n') part = part.slice(0, -2);
    const sep = part.indexOf('\r\n\r\n');
    const headerText = sep === -1 ? '' : part.slice(0, sep).toString();
    const body = sep === -1 ? part : part.slice(sep + 4);
    const headers = {};
    for (const line of headerText.split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    parts.push({ headers, body });
    pos = next;
  }
  return parts;
}

/**
 * Generic recording HTTP server. `route(rec, req)` returns
 * { status, json?, body?: Buffer|string, headers? } (or a Promise of it).
 * Every request becomes a record in `requests` BEFORE routing, and gets `status`/`response`
 * filled in after. Faults registered with failNext() are applied here.
 */
async function startRecordingServer({
  service,
  route,
  classify,
  host = '127.0.0.1',
  port = 0,
  log = false,
  sharedLog,
}) {
  const requests = [];
  const faults = [];
  let seq = 0;

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      const url = new URL(req.url, `http://${req.headers.host || host}`);
      const ct = req.headers['content-type'] || '';
      let body;
      if (raw.length && /json/i.test(ct)) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          body = raw.toString('utf8');
        }
      } else if (raw.length && /multipart\/related/i.test(ct)) {
        const parts = parseMultipartRelated(raw, ct) || [];
        let metadata;
        try {
          metadata = JSON.parse(parts[0]?.body.toString('utf8') || '{}');
        } catch {
          metadata = parts[0]?.body.toString('utf8');
        }
        body = {
          multipart: true,
          metadata,
          mediaContentType: parts[1]?.headers['content-type'],
          media: parts[1]?.body ?? Buffer.alloc(0),
        };
      } else if (raw.length) {
        body = raw; // raw media (uploadType=media) or unknown
      }
      const rec = {
        seq: ++seq,
        service,
        op: undefined, // e.g. 'objects.insert', 'jobs.query' — filled by classify()
        method: req.method,
        path: url.pathname, // raw (still percent-encoded) path
        pathname: safeDecode(url.pathname),
        query: queryToObject(url.searchParams),
        headers: { ...req.headers }, // all request headers, lower-cased keys
        body, // parsed JSON | { multipart, metadata, media: Buffer } | Buffer | undefined
        rawBodyLength: raw.length,
        rawBody: raw, // Buffer (useful for media / resumable chunks)
        time: new Date().toISOString(),
        status: undefined, // response status, filled in after routing
        response: undefined, // response JSON (if any)
      };
      try {
        rec.op = classify(rec);
      } catch {
        rec.op = 'unknown';
      }
      requests.push(rec);
      if (sharedLog) sharedLog.push(rec);

      let out;
      try {
        const fault = takeFault(rec);
        if (fault && !fault.afterHandling) {
          out = faultResponse(fault);
        } else {
          out = await route(rec, req);
          if (fault) out = faultResponse(fault); // side-effects happened, but the client sees an error
        }
        if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      } catch (e) {
        out =
          e instanceof FakeApiError
            ? e.response
            : apiError(500, 'backendError', `fake-gcp internal error: ${e?.stack || e}`);
      }
      rec.status = out.status;
      rec.response = out.json;
      if (log)
        console.log(
          `[fake-${service}] ${req.method} ${req.url} -> ${out.status}${rec.op ? ` (${rec.op})` : ''}`,
        );
      if (out.destroy) {
        req.socket.destroy();
        return;
      }
      const headers = { ...(out.headers || {}) };
      let payload;
      if (out.json !== undefined) {
        payload = Buffer.from(JSON.stringify(out.json));
        headers['content-type'] = 'application/json; charset=UTF-8';
      } else if (out.body !== undefined) {
        payload = Buffer.isBuffer(out.body) ? out.body : Buffer.from(String(out.body));
      } else {
        payload = Buffer.alloc(0);
      }
      headers['content-length'] = String(payload.length);
      res.writeHead(out.status, headers);
      res.end(req.method === 'HEAD' ? undefined : payload);
    });
  });

  function takeFault(rec) {
    for (let i = 0; i < faults.length; i++) {
      const f = faults[i];
      const ok =
        typeof f.match === 'function'
          ? f.match(rec)
          : f.match instanceof RegExp
            ? f.match.test(`${rec.method} ${rec.pathname}`)
            : f.match === undefined || f.match === rec.op;
      if (ok) {
        if (--f.times <= 0) faults.splice(i, 1);
        return f;
      }
    }
    return undefined;
  }
  function faultResponse(f) {
    if (f.destroy) return { status: 0, destroy: true };
    if (f.json) return { status: f.status, json: f.json };
    const reason = f.reason || DEFAULT_REASON[f.status] || 'backendError';
    return apiError(f.status, reason, f.message || `fake-gcp injected ${f.status} (${reason})`);
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  return {
    url: `http://${host}:${actualPort}`,
    port: actualPort,
    requests,
    /**
     * Make the next matching request(s) fail.
     * spec: { match?: op string | RegExp on "METHOD /decoded/path" | (rec) => bool,
     *         status = 503, reason?, message?, json? (full custom body), times = 1,
     *         afterHandling = false (true: perform the operation, THEN answer with the error —
     *                                simulates "request succeeded server-side but response lost"),
     *         destroy = false (drop the socket without answering), delayMs? }
     */
    failNext(spec = {}) {
      faults.push({ status: 503, times: 1, ...spec });
    },
    clearFaults() {
      faults.length = 0;
    },
    /** Requests whose op equals `opOrFn` (string) or for which opOrFn(rec) is true. */
    find(opOrFn) {
      return requests.filter(typeof opOrFn === 'function' ? opOrFn : (r) => r.op === opOrFn);
    },
    last(opOrFn) {
      const all = this.find(opOrFn);
      return all[all.length - 1];
    },
    clearRequests() {
      requests.length = 0;
    },
    async stop() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
function isTrue(v) {
  return v === true || v === 'true';
}

// ---------------------------------------------------------------------------------------------
// GCS fake
// ---------------------------------------------------------------------------------------------

/**
 * Start a fake of the GCS JSON API.
 * opts:
 *   pageSize = 1000          max items per objects.list page (use 2 to exercise pagination)
 *   firstGeneration = 1700000000000000   first generation number; +1 on every write
 *   autoCreateBuckets = true unknown buckets spring into existence; false -> 404 unless createBucket()
 *   rewriteCallsPerCopy = 1  >1 makes rewrite answer done:false + rewriteToken that many-1 times
 *   log = false              console.log each request
 */
export async function startFakeGcs(opts = {}) {
  const {
    pageSize = 1000,
    firstGeneration = 1_700_000_000_000_000,
    autoCreateBuckets = true,
    rewriteCallsPerCopy = 1,
    host,
    port,
    log,
    sharedLog,
  } = opts;
  const buckets = new Map(); // bucketName -> Map(objectName -> obj)
  const sessions = new Map(); // resumable upload_id -> { bucket, name, meta, query, chunks, received, done }
  // Every object created or overwritten, in order: what GCS sends an object-finalize event for
  // (uploads, copies and rewrites, composes; https://cloud.google.com/storage/docs/pubsub-notifications).
  const finalized = [];
  let uploadCounter = 0;
  let nextGeneration = firstGeneration;
  let base = ''; // set after listen, used for selfLink/mediaLink

  function bucketMap(name, create = autoCreateBuckets) {
    if (!buckets.has(name) && create) buckets.set(name, new Map());
    return buckets.get(name);
  }

  /**
   * Object names are 1 to 1024 bytes of UTF-8, with no carriage return or line feed
   * (https://cloud.google.com/storage/docs/naming-objects); GCS refuses any other name.
   */
  function checkName(name) {
    if (!name || Buffer.byteLength(name, 'utf8') > 1024 || /[\r\n]/.test(name)) {
      throw new FakeApiError(apiError(400, 'invalid', 'The specified object name is not valid.'));
    }
  }

  /** Build the stored object (data + metadata) for a write. */
  function writeObject(bucket, name, data, meta = {}, extra = {}) {
    checkName(name);
    const b = bucketMap(bucket, true);
    const now = new Date().toISOString();
    const generation = nextGeneration++;
    const prev = b.get(name);
    const obj = {
      data,
      generation,
      metageneration: 1,
      contentType: meta.contentType || 'application/octet-stream',
      contentEncoding: meta.contentEncoding,
      cacheControl: meta.cacheControl,
      metadata: meta.metadata && typeof meta.metadata === 'object' ? { ...meta.metadata } : undefined,
      md5Hash: extra.noMd5 ? undefined : md5Base64(data),
      crc32c: crc32cBase64(data),
      componentCount: extra.componentCount,
      timeCreated: now,
      updated: now,
    };
    b.set(name, obj);
    finalized.push({ bucket, name, generation: String(generation) });
    return { obj, prev };
  }

  function resource(bucket, name, o) {
    const encName = encodeURIComponent(name);
    const r = {
      kind: 'storage#object',
      id: `${bucket}/${name}/${o.generation}`,
      selfLink: `${base}/storage/v1/b/${bucket}/o/${encName}`,
      mediaLink: `${base}/download/storage/v1/b/${bucket}/o/${encName}?generation=${o.generation}&alt=media`,
      name,
      bucket,
      generation: String(o.generation),
      metageneration: String(o.metageneration),
      contentType: o.contentType,
      storageClass: 'STANDARD',
      size: String(o.data.length),
      crc32c: o.crc32c,
      etag: crypto
        .createHash('md5')
        .update(`${o.generation}/${o.metageneration}`)
        .digest('base64')
        .slice(0, 10),
      timeCreated: o.timeCreated,
      updated: o.updated,
      timeStorageClassUpdated: o.timeCreated,
      timeFinalized: o.timeCreated,
    };
    if (o.md5Hash) r.md5Hash = o.md5Hash;
    if (o.contentEncoding) r.contentEncoding = o.contentEncoding;
    if (o.cacheControl) r.cacheControl = o.cacheControl;
    if (o.metadata) r.metadata = o.metadata;
    if (o.componentCount) r.componentCount = o.componentCount;
    return r;
  }

  const notFoundObject = (bucket, name) => apiError(404, 'notFound', `No such object: ${bucket}/${name}`);
  const notFoundBucket = (_bucket) => apiError(404, 'notFound', 'The specified bucket does not exist.');
  const preconditionFailed = (location = 'If-Match') =>
    apiError(412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.', {
      locationType: 'header',
      location,
    });

  /**
   * Check GCS preconditions (query params) against the current object (or undefined).
   * prefix '' for target preconditions, 'Source' for rewrite source preconditions
   * (ifSourceGenerationMatch, ...). Returns an error response or undefined.
   * forRead: ifGenerationNotMatch / ifMetagenerationNotMatch on a GET answer 304.
   */
  function checkPreconditions(q, obj, { prefix = '', forRead = false } = {}) {
    const get = (k) => q[`if${prefix}${k}`];
    const gm = get('GenerationMatch'),
      gnm = get('GenerationNotMatch');
    const mm = get('MetagenerationMatch'),
      mnm = get('MetagenerationNotMatch');
    if (gm !== undefined) {
      if (Number(gm) === 0 ? obj !== undefined : !obj || String(obj.generation) !== String(gm))
        return preconditionFailed();
    }
    if (mm !== undefined && (!obj || String(obj.metageneration) !== String(mm))) return preconditionFailed();
    if (gnm !== undefined && obj && String(obj.generation) === String(gnm))
      return forRead ? { status: 304 } : preconditionFailed('If-None-Match');
    if (mnm !== undefined && obj && String(obj.metageneration) === String(mnm))
      return forRead ? { status: 304 } : preconditionFailed('If-None-Match');
    return undefined;
  }

  /** Segments of the raw path, each percent-decoded (object names may contain %2F). */
  function segs(rec) {
    const s = rec.path.split('/').slice(1).map(safeDecode);
    // STORAGE_EMULATOR_HOST=http://host:port makes the client send JSON-API calls to /b/... (no
    // /storage/v1 prefix) while uploads still go to /upload/storage/v1/...: accept both.
    return s[0] === 'b' ? ['storage', 'v1', ...s] : s;
  }

  function classify(rec) {
    const s = segs(rec);
    const m = rec.method;
    if (s[0] === 'upload' && s[1] === 'storage' && s[4] !== undefined && s[5] === 'o' && s.length === 6) {
      if (m === 'PUT' && rec.query.upload_id) return 'objects.insert.resumableChunk';
      if (m === 'POST')
        return rec.query.uploadType === 'resumable' ? 'objects.insert.resumable' : 'objects.insert';
      return 'unknown';
    }
    if (s[0] === 'download') return 'objects.get.media';
    if (s[0] !== 'storage' || s[1] !== 'v1' || s[2] !== 'b') return 'unknown';
    if (s.length === 3) return m === 'GET' ? 'buckets.list' : 'buckets.insert';
    if (s.length === 4)
      return { GET: 'buckets.get', DELETE: 'buckets.delete', PATCH: 'buckets.patch' }[m] || 'unknown';
    if (s[4] !== 'o') return 'unknown';
    if (s.length === 5) return m === 'GET' ? 'objects.list' : 'unknown';
    if (s.length === 6) {
      if (m === 'GET') return rec.query.alt === 'media' ? 'objects.get.media' : 'objects.get';
      return { DELETE: 'objects.delete', PATCH: 'objects.patch', PUT: 'objects.update' }[m] || 'unknown';
    }
    if (s.length === 7 && s[6] === 'compose') return 'objects.compose';
    if (s.length === 11 && s[6] === 'rewriteTo') return 'objects.rewrite';
    if (s.length === 11 && s[6] === 'copyTo') return 'objects.copy';
    if (s.length === 9 && s[6] === 'moveTo') return 'objects.move';
    return 'unknown';
  }

  function mediaResponse(rec, _bucket, _name, o) {
    let data = o.data;
    let status = 200;
    const headers = {
      'content-type': o.contentType,
      'x-goog-generation': String(o.generation),
      'x-goog-metageneration': String(o.metageneration),
      'x-goog-stored-content-encoding': o.contentEncoding || 'identity',
      'x-goog-stored-content-length': String(o.data.length),
      'x-goog-hash': [`crc32c=${o.crc32c}`, o.md5Hash ? `md5=${o.md5Hash}` : null].filter(Boolean).join(','),
      'x-goog-storage-class': 'STANDARD',
      'last-modified': new Date(o.updated).toUTCString(),
      etag: `"${o.md5Hash || o.crc32c}"`,
    };
    const range = rec.headers.range;
    const rm = range && /^bytes=(\d*)-(\d*)$/.exec(range);
    if (rm) {
      const len = data.length;
      let start, end;
      if (rm[1] === '' && rm[2] !== '') {
        start = Math.max(0, len - Number(rm[2]));
        end = len - 1;
      } else {
        start = Number(rm[1] || 0);
        end = rm[2] === '' ? len - 1 : Math.min(Number(rm[2]), len - 1);
      }
      if (start >= len && len > 0)
        return apiError(416, 'requestedRangeNotSatisfiable', 'The requested range cannot be satisfied.');
      data = data.slice(start, end + 1);
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${len}`;
    }
    return { status, headers, body: data };
  }

  async function route(rec) {
    const s = segs(rec);
    const q = rec.query;
    switch (rec.op) {
      case 'objects.insert.resumable': {
        // Start a resumable session: metadata in the JSON body (contentType may come as
        // X-Upload-Content-Type), preconditions in the query. Answer with a session URI.
        const bucket = s[4];
        if (!bucketMap(bucket)) return notFoundBucket(bucket);
        const meta =
          rec.body && typeof rec.body === 'object' && !Buffer.isBuffer(rec.body) ? { ...rec.body } : {};
        if (!meta.contentType && rec.headers['x-upload-content-type'])
          meta.contentType = rec.headers['x-upload-content-type'];
        const name = q.name || meta.name;
        if (!name) return apiError(400, 'required', 'Required parameter: name');
        // Refused when the session opens, not only at its last chunk: at least as strict as GCS.
        checkName(name);
        const pre = checkPreconditions(q, bucketMap(bucket).get(name));
        if (pre) return pre;
        const id = `fake-upload-${++uploadCounter}`;
        sessions.set(id, { bucket, name, meta, query: { ...q }, chunks: [], received: 0, done: false });
        const loc = `${base}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
        return { status: 200, headers: { location: loc, 'x-guploader-uploadid': id } };
      }
      case 'objects.insert.resumableChunk': {
        // PUT <session URI> with Content-Range: "bytes a-b/total" | "bytes a-*/total|*" | "bytes */total|*" (status check)
        const sess = sessions.get(q.upload_id);
        if (!sess) return apiError(404, 'notFound', 'No such upload session');
        if (sess.done)
          return {
            status: 200,
            json: resource(sess.bucket, sess.name, bucketMap(sess.bucket).get(sess.name)),
          };
        const cr = rec.headers['content-range'] || '';
        const m = /^bytes (\*|(\d+)-(\d+|\*))\/(\d+|\*)$/.exec(cr.trim());
        if (!m) return apiError(400, 'invalid', `Bad Content-Range: ${cr}`);
        const total = m[4] === '*' ? undefined : Number(m[4]);
        const incomplete = () => ({
          status: 308,
          headers: sess.received ? { range: `bytes=0-${sess.received - 1}` } : {},
        });
        if (m[1] !== '*') {
          const start = Number(m[2]);
          if (start !== sess.received)
            return apiError(
              400,
              'invalid',
              `Content-Range start ${start} != persisted size ${sess.received}`,
            );
          sess.chunks.push(rec.rawBody);
          sess.received += rec.rawBody.length;
          // "a-*/*" = streaming single request: the body end is the object end.
          const finished = total !== undefined ? sess.received >= total : m[3] === '*';
          if (!finished) return incomplete();
        } else if (total === undefined || sess.received < total) {
          return incomplete(); // status query
        }
        const data = Buffer.concat(sess.chunks);
        const b = bucketMap(sess.bucket);
        const pre = checkPreconditions(sess.query, b.get(sess.name));
        if (pre) return pre;
        const { obj } = writeObject(sess.bucket, sess.name, data, sess.meta);
        sess.done = true;
        return { status: 200, json: resource(sess.bucket, sess.name, obj) };
      }
      case 'objects.insert': {
        const bucket = s[4];
        const uploadType = q.uploadType;
        if (!bucketMap(bucket)) return notFoundBucket(bucket);
        let meta = {},
          data;
        if (uploadType === 'multipart') {
          if (!rec.body?.multipart) return apiError(400, 'invalid', 'Expected multipart/related body');
          meta = rec.body.metadata || {};
          data = rec.body.media;
          if (!meta.contentType && rec.body.mediaContentType)
            meta = { ...meta, contentType: rec.body.mediaContentType };
        } else if (uploadType === 'media') {
          data = Buffer.isBuffer(rec.body) ? rec.body : Buffer.from(rec.body ? JSON.stringify(rec.body) : '');
          meta = { contentType: rec.headers['content-type'] };
        } else {
          return apiError(400, 'invalid', `Unsupported uploadType: ${uploadType}`);
        }
        const name = q.name || meta.name;
        if (!name) return apiError(400, 'required', 'Required parameter: name');
        const b = bucketMap(bucket);
        const pre = checkPreconditions(q, b.get(name));
        if (pre) return pre;
        // Server-side integrity check if the client sent hashes in the metadata.
        if (meta.crc32c && meta.crc32c !== crc32cBase64(data))
          return apiError(400, 'invalid', `Provided CRC32C "${meta.crc32c}" doesn't match calculated CRC32C`);
        if (meta.md5Hash && meta.md5Hash !== md5Base64(data))
          return apiError(
            400,
            'invalid',
            `Provided MD5 hash "${meta.md5Hash}" doesn't match calculated MD5 hash`,
          );
        const { obj } = writeObject(bucket, name, data, meta);
        return { status: 200, json: resource(bucket, name, obj) };
      }
      case 'objects.get':
      case 'objects.get.media': {
        const download = s[0] === 'download';
        const bucket = download ? s[4] : s[3];
        const name = download ? s[6] : s[5];
        const b = bucketMap(bucket);
        if (!b) return notFoundBucket(bucket);
        const o = b.get(name);
        if (!o || (q.generation !== undefined && String(q.generation) !== String(o.generation)))
          return notFoundObject(bucket, name);
        const pre = checkPreconditions(q, o, { forRead: true });
        if (pre) return pre;
        if (rec.op === 'objects.get.media') return mediaResponse(rec, bucket, name, o);
        return { status: 200, json: resource(bucket, name, o) };
      }
      case 'objects.list': {
        const bucket = s[3];
        const b = bucketMap(bucket);
        if (!b) return notFoundBucket(bucket);
        const prefix = q.prefix || '';
        const delimiter = q.delimiter || '';
        const max = Math.max(1, Math.min(Number(q.maxResults) || pageSize, pageSize));
        const after = q.pageToken ? Buffer.from(q.pageToken, 'base64url').toString('utf8') : undefined;
        // Entries in lexicographic order: objects and (if delimiter) collapsed prefixes.
        const names = [...b.keys()]
          .filter(
            (n) =>
              n.startsWith(prefix) &&
              (q.startOffset === undefined || n >= q.startOffset) &&
              (q.endOffset === undefined || n < q.endOffset),
          )
          .sort();
        const entries = [];
        const seenPrefixes = new Set();
        for (const n of names) {
          if (delimiter) {
            const i = n.indexOf(delimiter, prefix.length);
            if (i !== -1) {
              const p = n.slice(0, i + delimiter.length);
              if (!seenPrefixes.has(p)) {
                seenPrefixes.add(p);
                entries.push({ key: p, prefix: p });
              }
              continue;
            }
          }
          entries.push({ key: n, name: n });
        }
        const remaining = after === undefined ? entries : entries.filter((e) => e.key > after);
        const page = remaining.slice(0, max);
        const json = { kind: 'storage#objects' };
        const items = page
          .filter((e) => e.name !== undefined)
          .map((e) => resource(bucket, e.name, b.get(e.name)));
        const prefixes = page.filter((e) => e.prefix !== undefined).map((e) => e.prefix);
        if (items.length) json.items = items;
        if (prefixes.length) json.prefixes = prefixes;
        if (remaining.length > page.length)
          json.nextPageToken = Buffer.from(page[page.length - 1].key).toString('base64url');
        return { status: 200, json };
      }
      case 'objects.delete': {
        const [bucket, name] = [s[3], s[5]];
        const b = bucketMap(bucket);
        if (!b) return notFoundBucket(bucket);
        const o = b.get(name);
        if (!o || (q.generation !== undefined && String(q.generation) !== String(o.generation)))
          return notFoundObject(bucket, name);
        const pre = checkPreconditions(q, o);
        if (pre) return pre;
        b.delete(name);
        return { status: 204 };
      }
      case 'objects.patch':
      case 'objects.update': {
        const [bucket, name] = [s[3], s[5]];
        const b = bucketMap(bucket);
        if (!b) return notFoundBucket(bucket);
        const o = b.get(name);
        if (!o) return notFoundObject(bucket, name);
        const pre = checkPreconditions(q, o);
        if (pre) return pre;
        const body = rec.body && typeof rec.body === 'object' && !Buffer.isBuffer(rec.body) ? rec.body : {};
        for (const k of ['contentType', 'contentEncoding', 'cacheControl'])
          if (k in body) o[k] = body[k] ?? undefined;
        if ('metadata' in body) {
          if (body.metadata === null) o.metadata = undefined;
          else {
            const md = rec.op === 'objects.update' ? {} : { ...(o.metadata || {}) };
            for (const [k, v] of Object.entries(body.metadata)) {
              if (v === null) delete md[k];
              else md[k] = String(v);
            }
            o.metadata = Object.keys(md).length ? md : undefined;
          }
        }
        o.metageneration++;
        o.updated = new Date().toISOString();
        return { status: 200, json: resource(bucket, name, o) };
      }
      case 'objects.compose': {
        const [bucket, dest] = [s[3], s[5]];
        const b = bucketMap(bucket);
        if (!b) return notFoundBucket(bucket);
        const body = rec.body || {};
        const sources = Array.isArray(body.sourceObjects) ? body.sourceObjects : [];
        if (sources.length === 0) return apiError(400, 'required', 'Required field: sourceObjects');
        // Real API limit: at most 32 source objects per compose request.
        if (sources.length > 32)
          return apiError(
            400,
            'invalid',
            `The number of source components provided (${sources.length}) exceeds the maximum (32)`,
          );
        const datas = [];
        let componentCount = 0;
        for (const src of sources) {
          const o = b.get(src.name);
          if (!o || (src.generation !== undefined && String(src.generation) !== String(o.generation)))
            return notFoundObject(bucket, src.name);
          const igm = src.objectPreconditions?.ifGenerationMatch;
          if (igm !== undefined && String(igm) !== String(o.generation)) return preconditionFailed();
          datas.push(o.data);
          componentCount += o.componentCount || 1;
        }
        if (componentCount > 1024)
          return apiError(
            400,
            'invalid',
            'The number of components in the composite object would exceed 1024',
          );
        const pre = checkPreconditions(q, b.get(dest));
        if (pre) return pre;
        const d = body.destination || {};
        // Composite objects have a crc32c but no md5Hash (as in real GCS).
        const { obj } = writeObject(
          bucket,
          dest,
          Buffer.concat(datas),
          {
            contentType: d.contentType || 'application/octet-stream',
            contentEncoding: d.contentEncoding,
            metadata: d.metadata,
          },
          { noMd5: true, componentCount },
        );
        return { status: 200, json: resource(bucket, dest, obj) };
      }
      case 'objects.rewrite':
      case 'objects.copy': {
        const [srcBucket, srcName, dstBucket, dstName] = [s[3], s[5], s[8], s[10]];
        const sb = bucketMap(srcBucket);
        if (!sb) return notFoundBucket(srcBucket);
        const src = sb.get(srcName);
        if (
          !src ||
          (q.sourceGeneration !== undefined && String(q.sourceGeneration) !== String(src.generation))
        )
          return notFoundObject(srcBucket, srcName);
        const srcPre = checkPreconditions(q, src, { prefix: 'Source' });
        if (srcPre) return srcPre;
        const db = bucketMap(dstBucket);
        if (!db) return notFoundBucket(dstBucket);
        const pre = checkPreconditions(q, db.get(dstName));
        if (pre) return pre;
        // Optionally simulate a multi-call rewrite (client loops on rewriteToken).
        if (rec.op === 'objects.rewrite' && rewriteCallsPerCopy > 1) {
          const round = q.rewriteToken ? Number(Buffer.from(q.rewriteToken, 'base64url').toString()) : 1;
          if (round < rewriteCallsPerCopy) {
            return {
              status: 200,
              json: {
                kind: 'storage#rewriteResponse',
                totalBytesRewritten: '0',
                objectSize: String(src.data.length),
                done: false,
                rewriteToken: Buffer.from(String(round + 1)).toString('base64url'),
              },
            };
          }
        }
        const body = rec.body && typeof rec.body === 'object' && !Buffer.isBuffer(rec.body) ? rec.body : {};
        const meta = {
          contentType: body.contentType || src.contentType,
          contentEncoding: body.contentEncoding ?? src.contentEncoding,
          cacheControl: body.cacheControl ?? src.cacheControl,
          metadata: body.metadata ?? src.metadata,
        };
        const { obj } = writeObject(dstBucket, dstName, src.data, meta, {
          noMd5: !src.md5Hash,
          componentCount: src.componentCount,
        });
        const res = resource(dstBucket, dstName, obj);
        if (rec.op === 'objects.copy') return { status: 200, json: res };
        return {
          status: 200,
          json: {
            kind: 'storage#rewriteResponse',
            totalBytesRewritten: String(src.data.length),
            objectSize: String(src.data.length),
            done: true,
            resource: res,
          },
        };
      }
      case 'objects.move': {
        const [bucket, srcName, dstName] = [s[3], s[5], s[8]];
        const b = bucketMap(bucket);
        if (!b) return notFoundBucket(bucket);
        const src = b.get(srcName);
        if (!src) return notFoundObject(bucket, srcName);
        const srcPre = checkPreconditions(q, src, { prefix: 'Source' });
        if (srcPre) return srcPre;
        const pre = checkPreconditions(q, b.get(dstName));
        if (pre) return pre;
        const { obj } = writeObject(bucket, dstName, src.data, src, {
          noMd5: !src.md5Hash,
          componentCount: src.componentCount,
        });
        b.delete(srcName);
        return { status: 200, json: resource(bucket, dstName, obj) };
      }
      case 'buckets.get': {
        const bucket = s[3];
        if (!bucketMap(bucket)) return notFoundBucket(bucket);
        return {
          status: 200,
          json: {
            kind: 'storage#bucket',
            id: bucket,
            name: bucket,
            location: 'US',
            storageClass: 'STANDARD',
            metageneration: '1',
            timeCreated: new Date(0).toISOString(),
            updated: new Date(0).toISOString(),
          },
        };
      }
      default:
        return apiError(404, 'notFound', `fake-gcp: GCS route not emulated: ${rec.method} ${rec.pathname}`);
    }
  }

  const srv = await startRecordingServer({ service: 'gcs', route, classify, host, port, log, sharedLog });
  base = srv.url;

  return {
    ...srv,
    /** Options for `new Storage(...)`. extra is merged last (e.g. { retryOptions: NO_RETRY }). */
    clientOptions(extra = {}) {
      return {
        apiEndpoint: srv.url,
        projectId: 'fake-project',
        authClient: NO_AUTH,
        retryOptions: { ...FAST_RETRY_GCS },
        ...extra,
      };
    },
    createBucket(name) {
      bucketMap(name, true);
    },
    /** Seed an object directly (bypasses HTTP, not recorded). Returns its resource. */
    putObject(bucket, name, data, meta = {}) {
      const { obj } = writeObject(
        bucket,
        name,
        Buffer.isBuffer(data) ? data : Buffer.from(String(data)),
        meta,
      );
      return resource(bucket, name, obj);
    },
    /** { data: Buffer, resource } or undefined. */
    getObject(bucket, name) {
      const o = buckets.get(bucket)?.get(name);
      return o ? { data: o.data, resource: resource(bucket, name, o) } : undefined;
    },
    /** Make an object look `ms` older (timeCreated and updated), as if it had waited that long. */
    backdate(bucket, name, ms) {
      const o = buckets.get(bucket)?.get(name);
      if (!o) throw new Error(`fake-gcp: no object ${bucket}/${name}`);
      o.timeCreated = new Date(Date.parse(o.timeCreated) - ms).toISOString();
      o.updated = new Date(Date.parse(o.updated) - ms).toISOString();
    },
    /** The object-finalize events so far (bucket, name, generation), in order. */
    finalized(bucket) {
      return finalized.filter((f) => bucket === undefined || f.bucket === bucket).map((f) => ({ ...f }));
    },
    /** Sorted object names in a bucket. */
    listObjects(bucket) {
      return [...(buckets.get(bucket)?.keys() || [])].sort();
    },
    /** Drop all buckets/objects and recorded requests/faults. */
    reset() {
      buckets.clear();
      sessions.clear();
      finalized.length = 0;
      srv.clearRequests();
      srv.clearFaults();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// BigQuery fake
// ---------------------------------------------------------------------------------------------

/**
 * Decode BigQuery `queryParameters` (as sent by the client) into something easy to assert on.
 * Named:      { now: { type: 'TIMESTAMP', value: '2024-01-01 00:00:00.000Z' }, ... }
 * Positional: [ { type, value }, ... ]
 * ARRAY values become arrays, STRUCT values objects.
 */
export function decodeQueryParameters(queryParameters = []) {
  const decodeValue = (type, pv) => {
    if (!pv) return null;
    if (type.type === 'ARRAY') return (pv.arrayValues || []).map((v) => decodeValue(type.arrayType, v));
    if (type.type === 'STRUCT') {
      const out = {};
      for (const f of type.structTypes || []) out[f.name] = decodeValue(f.type, pv.structValues?.[f.name]);
      return out;
    }
    if (type.type === 'RANGE') return pv.rangeValue;
    return pv.value ?? null; // parameterValue:{} means NULL on the server
  };
  const decoded = queryParameters.map((p) => ({
    name: p.name,
    type: p.parameterType?.type,
    value: decodeValue(p.parameterType || {}, p.parameterValue),
  }));
  if (decoded.every((d) => d.name))
    return Object.fromEntries(decoded.map((d) => [d.name, { type: d.type, value: d.value }]));
  return decoded.map((d) => ({ type: d.type, value: d.value }));
}

/**
 * Start a fake of the BigQuery v2 REST API (jobs.insert/get/list/cancel, jobs.query,
 * jobs.getQueryResults).
 * opts:
 *   projectId?            only used in messages; the client's projectId in the URL is honoured
 *   defaultLocation='US'  used when a job has no location
 *   pageSize=10000        max rows per query-results page (maxResults from the client is honoured too)
 *   strictQueries=false   true: a query matching no scriptQuery() answers 400 invalidQuery
 *   log=false
 */
export async function startFakeBigQuery(opts = {}) {
  const {
    defaultLocation = 'US',
    pageSize = 10000,
    strictQueries = false,
    host,
    port,
    log,
    sharedLog,
    loadSource,
  } = opts;
  const jobs = new Map(); // `${project}:${jobId}` -> job state
  const tables = new Map(); // `${dataset}.${table}` -> rows appended by successful load jobs
  const jobScripts = []; // [{ match, outcome, times }]
  const queryScripts = []; // [{ match, result, times }]
  let counter = 0;

  const jobKey = (p, id) => `${p}:${id}`;

  function takeScript(list, ...args) {
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      const m = s.match;
      const [subject] = args;
      const ok =
        typeof m === 'function'
          ? m(...args)
          : m instanceof RegExp
            ? m.test(subject)
            : typeof m === 'string'
              ? String(subject).includes(m)
              : true;
      if (ok) {
        if (--s.times <= 0) list.splice(i, 1);
        return s;
      }
    }
    return undefined;
  }

  function jobType(cfg = {}) {
    for (const t of ['load', 'query', 'copy', 'extract']) if (cfg[t]) return t.toUpperCase();
    return 'UNKNOWN';
  }

  // ---- value encoding for query results (f/v format) ----
  function inferType(v) {
    if (v === null || v === undefined) return 'STRING';
    if (typeof v === 'boolean') return 'BOOLEAN';
    if (typeof v === 'number') return Number.isInteger(v) ? 'INTEGER' : 'FLOAT';
    if (typeof v === 'bigint') return 'INTEGER';
    if (v instanceof Date) return 'TIMESTAMP';
    if (Buffer.isBuffer(v)) return 'BYTES';
    if (typeof v === 'object' && v.value !== undefined && v.constructor?.name === 'BigQueryTimestamp')
      return 'TIMESTAMP';
    return 'STRING';
  }
  function inferSchema(rows) {
    const first = rows[0] || {};
    return {
      fields: Object.keys(first).map((name) => ({ name, type: inferType(first[name]), mode: 'NULLABLE' })),
    };
  }
  function encodeScalar(type, v, fmt) {
    if (v === null || v === undefined) return null;
    switch (type) {
      case 'TIMESTAMP': {
        // Clients ask for formatOptions.useInt64Timestamp=true -> int64 microseconds since epoch.
        let micros;
        if (typeof v === 'number' || typeof v === 'bigint') micros = BigInt(v);
        else if (v instanceof Date) micros = BigInt(v.getTime()) * 1000n;
        else if (typeof v === 'object' && v.value) micros = BigInt(Date.parse(v.value)) * 1000n;
        else if (/^\d+$/.test(String(v))) micros = BigInt(v);
        else micros = BigInt(Date.parse(String(v))) * 1000n;
        if (fmt.timestampOutputFormat === 'ISO8601_STRING')
          return new Date(Number(micros / 1000n)).toISOString();
        if (fmt.useInt64Timestamp || fmt.timestampOutputFormat === 'INT64') return micros.toString();
        return (Number(micros) / 1e6).toExponential().replace('e+', 'E'); // float seconds, e.g. "1.7E9"
      }
      case 'BOOLEAN':
      case 'BOOL':
        return v ? 'true' : 'false';
      case 'BYTES':
        return Buffer.isBuffer(v) ? v.toString('base64') : String(v);
      case 'JSON':
        return typeof v === 'string' ? v : JSON.stringify(v);
      default:
        return v instanceof Date
          ? v.toISOString()
          : typeof v === 'object' && 'value' in v
            ? String(v.value)
            : String(v);
    }
  }
  function encodeCell(field, v, fmt) {
    if (field.mode === 'REPEATED')
      return { v: (v || []).map((x) => encodeCell({ ...field, mode: 'NULLABLE' }, x, fmt)) };
    if (field.type === 'RECORD' || field.type === 'STRUCT') {
      if (v === null || v === undefined) return { v: null };
      return { v: { f: (field.fields || []).map((f) => encodeCell(f, v[f.name], fmt)) } };
    }
    return { v: encodeScalar(field.type, v, fmt) };
  }
  function encodeRows(schema, rows, fmt) {
    return rows.map((r) =>
      r && Array.isArray(r.f) ? r : { f: schema.fields.map((f) => encodeCell(f, r[f.name], fmt)) },
    );
  }

  function nowMs() {
    return String(Date.now());
  }

  /** Create a job state from a (client-sent) job resource. */
  function createJob(project, body, { viaJobsQuery = false } = {}) {
    const ref = body.jobReference || {};
    const jobId = ref.jobId || `job_fake_${++counter}_${crypto.randomBytes(4).toString('hex')}`;
    const location = ref.location || body.location || defaultLocation;
    const configuration = { ...(body.configuration || {}) };
    const type = jobType(configuration);
    configuration.jobType = type === 'UNKNOWN' ? undefined : type;
    const resourceForMatch = { jobId, location, configuration, jobType: type };
    const jobScript = takeScript(jobScripts, jobId, resourceForMatch);
    let queryScript;
    if (type === 'QUERY')
      queryScript = takeScript(
        queryScripts,
        configuration.query.query,
        configuration.query.queryParameters || [],
        resourceForMatch,
      );
    const outcome = { ...(queryScript?.result || {}), ...(jobScript?.outcome || {}) };
    // A query result error becomes the job's errorResult.
    if (outcome.error && !outcome.errorResult) {
      outcome.errorResult = {
        reason: outcome.error.reason || 'invalidQuery',
        message: outcome.error.message || 'Invalid query',
        location: 'query',
      };
      outcome.httpStatus = outcome.error.httpStatus;
    }
    if (type === 'LOAD' && loadSource && !outcome.errorResult) appendLoad(configuration.load, outcome);
    if (type === 'QUERY' && !queryScript && strictQueries && !outcome.errorResult) {
      outcome.errorResult = {
        reason: 'invalidQuery',
        message: `fake-gcp: no scriptQuery() matches: ${configuration.query.query}`,
        location: 'query',
      };
    }
    const job = {
      project,
      jobId,
      location,
      configuration,
      type,
      outcome,
      pendingPolls: outcome.pendingPolls ?? 0,
      created: nowMs(),
      cancelled: false,
      matchedQueryScript: !!queryScript,
      matchedJobScript: !!jobScript,
      viaJobsQuery,
    };
    if (type === 'QUERY') {
      const rows = outcome.rows || [];
      job.schema = outcome.schema
        ? Array.isArray(outcome.schema)
          ? { fields: outcome.schema }
          : outcome.schema
        : inferSchema(rows);
      job.rows = rows;
    }
    jobs.set(jobKey(project, jobId), job);
    return job;
  }

  /**
   * A load job with a `loadSource`: reads its newline-delimited JSON sources and appends the rows
   * to the destination table, all or nothing, as BigQuery does with maxBadRecords 0. A missing
   * source fails the job with BigQuery's notFound ("Not found: URI gs://...").
   */
  function appendLoad(load, outcome) {
    const rows = [];
    for (const uri of load.sourceUris || []) {
      const data = loadSource(uri);
      if (!data) {
        outcome.errorResult = { reason: 'notFound', message: `Not found: URI ${uri}` };
        return;
      }
      let position = 0;
      for (const line of data.toString('utf8').split('\n')) {
        const start = position;
        position += Buffer.byteLength(line) + 1;
        if (!line.trim()) continue;
        let row;
        try {
          row = JSON.parse(line);
        } catch {
          outcome.errorResult = {
            reason: 'invalid',
            message: `Error while reading data, error message: JSON table encountered too many errors, giving up. Rows: ${rows.length + 1}; errors: 1.`,
          };
          return;
        }
        // ignoreUnknownValues false (the default): a field the schema does not have fails the job.
        const unknown = unknownField(row, load.schema?.fields);
        if (load.schema && !load.ignoreUnknownValues && unknown) {
          outcome.errorResult = {
            reason: 'invalid',
            message: `Error while reading data, error message: JSON parsing error in row starting at position ${start}: No such field: ${unknown}.`,
          };
          return;
        }
        rows.push(row);
      }
    }
    const ref = load.destinationTable || {};
    const key = `${ref.datasetId}.${ref.tableId}`;
    tables.set(key, [...(tables.get(key) || []), ...rows]);
    outcome.outputRows = rows.length;
  }

  /** The first field of a JSON row (records and repeated records included) that `fields` lacks. */
  function unknownField(row, fields = []) {
    if (row === null || typeof row !== 'object' || Array.isArray(row)) return undefined;
    for (const [name, value] of Object.entries(row)) {
      const field = fields.find((f) => f.name === name);
      if (!field) return name;
      if (field.type === 'RECORD' || field.type === 'STRUCT') {
        for (const item of Array.isArray(value) ? value : [value]) {
          const nested = unknownField(item, field.fields);
          if (nested) return `${name}.${nested}`;
        }
      }
    }
    return undefined;
  }

  function isDone(job) {
    return job.cancelled || job.pendingPolls <= 0;
  }

  function jobStatus(job, { forceRunning = false } = {}) {
    if (!forceRunning && isDone(job)) {
      const st = { state: 'DONE' };
      if (job.cancelled) {
        st.errorResult = {
          reason: 'stopped',
          message: 'Job execution was cancelled: User requested cancellation',
        };
        st.errors = [st.errorResult];
      } else if (job.outcome.errorResult) {
        st.errorResult = job.outcome.errorResult;
        st.errors = job.outcome.errors || [job.outcome.errorResult];
      } else if (job.outcome.errors) {
        st.errors = job.outcome.errors; // DONE with non-fatal errors (e.g. bad records under maxBadRecords)
      }
      return st;
    }
    return { state: job.outcome.runningState || 'RUNNING' };
  }

  function jobResource(job, opts = {}) {
    const status = jobStatus(job, opts);
    const stats = { creationTime: job.created, startTime: job.created };
    if (status.state === 'DONE') stats.endTime = nowMs();
    if (job.type === 'LOAD') {
      const n = (job.configuration.load?.sourceUris || []).length;
      stats.load = {
        inputFiles: String(n),
        inputFileBytes: '0',
        outputRows: String(job.outcome.outputRows ?? 0),
        outputBytes: '0',
        badRecords: '0',
      };
    }
    if (job.type === 'QUERY') {
      stats.query = {
        totalBytesProcessed: String(job.outcome.totalBytesProcessed ?? 0),
        totalBytesBilled: '0',
        cacheHit: false,
        statementType: job.outcome.statementType || 'SELECT',
      };
      if (job.outcome.numDmlAffectedRows !== undefined)
        stats.query.numDmlAffectedRows = String(job.outcome.numDmlAffectedRows);
      stats.totalBytesProcessed = stats.query.totalBytesProcessed;
    }
    const statistics = deepMerge(stats, job.outcome.statistics || {});
    return {
      kind: 'bigquery#job',
      etag: crypto
        .createHash('md5')
        .update(job.jobId + status.state)
        .digest('base64'),
      id: `${job.project}:${job.location}.${job.jobId}`,
      selfLink: `${base}/bigquery/v2/projects/${job.project}/jobs/${job.jobId}?location=${job.location}`,
      user_email: 'fake@fake-gcp.local',
      configuration: job.configuration,
      jobReference: { projectId: job.project, jobId: job.jobId, location: job.location },
      statistics,
      status,
    };
  }

  function jobNotFound(project, jobId, location) {
    return apiError(404, 'notFound', `Not found: Job ${project}:${location || defaultLocation}.${jobId}`);
  }

  /** For a failed query job, the results endpoints answer with an HTTP error (like real BQ). */
  function jobErrorResponse(job) {
    const er = job.cancelled
      ? { reason: 'stopped', message: 'Job execution was cancelled: User requested cancellation' }
      : job.outcome.errorResult;
    const httpStatus =
      job.outcome.httpStatus ||
      {
        invalidQuery: 400,
        invalid: 400,
        notFound: 404,
        accessDenied: 403,
        duplicate: 409,
        backendError: 500,
        internalError: 500,
        rateLimitExceeded: 403,
        quotaExceeded: 403,
        stopped: 400,
      }[er.reason] ||
      400;
    const r = apiError(
      httpStatus,
      er.reason,
      er.message,
      er.location ? { location: er.location, locationType: 'other' } : {},
    );
    if (job.outcome.errors && job.outcome.errors.length > 1)
      r.json.error.errors = job.outcome.errors.map((e) => ({ domain: 'global', ...e }));
    return r;
  }

  /** Build a page of query results (shared by jobs.query and jobs.getQueryResults). */
  function queryResultsPage(job, { pageToken, maxResults, fmt }) {
    const start = pageToken ? Number(Buffer.from(pageToken, 'base64url').toString()) : 0;
    const size = Math.min(Number(maxResults) || pageSize, pageSize);
    const slice = job.rows.slice(start, start + size);
    const out = {
      jobReference: { projectId: job.project, jobId: job.jobId, location: job.location },
      jobComplete: true,
      schema: job.schema,
      rows: encodeRows(job.schema, slice, fmt),
      totalRows: String(job.rows.length),
      totalBytesProcessed: String(job.outcome.totalBytesProcessed ?? 0),
      cacheHit: false,
    };
    if (job.outcome.numDmlAffectedRows !== undefined)
      out.numDmlAffectedRows = String(job.outcome.numDmlAffectedRows);
    if (start + size < job.rows.length)
      out.pageToken = Buffer.from(String(start + size)).toString('base64url');
    if (!out.rows.length) delete out.rows; // real API omits `rows` when empty
    return out;
  }

  function classify(rec) {
    const s = rec.path.split('/').slice(1).map(safeDecode);
    const m = rec.method;
    if (s[0] === 'upload') return 'jobs.insert.upload';
    if (s[0] !== 'bigquery' || s[1] !== 'v2' || s[2] !== 'projects') return 'unknown';
    const rest = s.slice(4);
    if (rest[0] === 'jobs') {
      if (rest.length === 1) return m === 'POST' ? 'jobs.insert' : 'jobs.list';
      if (rest.length === 2) return m === 'GET' ? 'jobs.get' : 'unknown';
      if (rest.length === 3 && rest[2] === 'cancel') return 'jobs.cancel';
      if (rest.length === 3 && rest[2] === 'delete') return 'jobs.delete';
    }
    if (rest[0] === 'queries') {
      if (rest.length === 1 && m === 'POST') return 'jobs.query';
      if (rest.length === 2 && m === 'GET') return 'jobs.getQueryResults';
    }
    if (rest[0] === 'datasets') {
      if (rest.length === 2) return 'datasets.get';
      if (rest.length === 4) return 'tables.get';
      if (rest.length === 5 && rest[4] === 'data') return m === 'GET' ? 'tabledata.list' : 'unknown';
      if (rest.length === 5 && rest[4] === 'insertAll') return 'tabledata.insertAll';
    }
    return 'unknown';
  }

  function fmtFrom(obj = {}) {
    // Accept both the JSON body form ({ formatOptions: { useInt64Timestamp } }) and the query form.
    const fo = obj.formatOptions || {};
    return {
      useInt64Timestamp: isTrue(fo.useInt64Timestamp ?? obj['formatOptions.useInt64Timestamp']),
      timestampOutputFormat: fo.timestampOutputFormat ?? obj['formatOptions.timestampOutputFormat'],
    };
  }

  async function route(rec) {
    const s = rec.path.split('/').slice(1).map(safeDecode);
    const project = s[3];
    const q = rec.query;
    switch (rec.op) {
      case 'jobs.insert': {
        const body = rec.body || {};
        const ref = body.jobReference || {};
        if (ref.jobId && jobs.has(jobKey(project, ref.jobId))) {
          const j = jobs.get(jobKey(project, ref.jobId));
          return apiError(409, 'duplicate', `Already Exists: Job ${project}:${j.location}.${ref.jobId}`);
        }
        const job = createJob(project, body);
        // Insert response: RUNNING unless the script says the failure is reported on insert.
        const onInsert = job.outcome.reportOnInsert || job.outcome.insertState === 'DONE';
        return { status: 200, json: jobResource(job, { forceRunning: !onInsert }) };
      }
      case 'jobs.get': {
        const job = jobs.get(jobKey(project, s[5]));
        if (!job || (q.location && q.location.toLowerCase() !== job.location.toLowerCase()))
          return jobNotFound(project, s[5], q.location);
        // pendingPolls = how many status reads still answer RUNNING before the job is DONE.
        if (!job.cancelled && job.pendingPolls > 0) {
          job.pendingPolls--;
          return { status: 200, json: jobResource(job, { forceRunning: true }) };
        }
        return { status: 200, json: jobResource(job) };
      }
      case 'jobs.list': {
        const all = [...jobs.values()].filter((j) => j.project === project).map((j) => jobResource(j));
        return { status: 200, json: { kind: 'bigquery#jobList', jobs: all } };
      }
      case 'jobs.cancel': {
        const job = jobs.get(jobKey(project, s[5]));
        if (!job) return jobNotFound(project, s[5], q.location);
        if (!isDone(job)) job.cancelled = true;
        return { status: 200, json: { kind: 'bigquery#jobCancelResponse', job: jobResource(job) } };
      }
      case 'jobs.query': {
        // The client's fast path: bigquery.query() POSTs here unless jobId/destination/etc. are set.
        const body = rec.body || {};
        const job = createJob(
          project,
          {
            jobReference: { location: body.location },
            configuration: {
              query: {
                query: body.query,
                queryParameters: body.queryParameters,
                parameterMode: body.parameterMode,
                useLegacySql: body.useLegacySql,
              },
            },
          },
          { viaJobsQuery: true },
        );
        if (isDone(job) && job.outcome.errorResult) return jobErrorResponse(job);
        if (!isDone(job)) {
          return {
            status: 200,
            json: {
              kind: 'bigquery#queryResponse',
              jobReference: { projectId: project, jobId: job.jobId, location: job.location },
              jobComplete: false,
            },
          };
        }
        return {
          status: 200,
          json: {
            kind: 'bigquery#queryResponse',
            ...queryResultsPage(job, { maxResults: body.maxResults, fmt: fmtFrom(body) }),
          },
        };
      }
      case 'jobs.getQueryResults': {
        const job = jobs.get(jobKey(project, s[5]));
        if (!job || (q.location && q.location.toLowerCase() !== job.location.toLowerCase()))
          return jobNotFound(project, s[5], q.location);
        if (job.type !== 'QUERY')
          return apiError(400, 'invalid', `Job ${project}:${job.location}.${job.jobId} is not a query job`);
        if (!job.cancelled && job.pendingPolls > 0) {
          job.pendingPolls--;
          return {
            status: 200,
            json: {
              kind: 'bigquery#getQueryResultsResponse',
              jobReference: { projectId: project, jobId: job.jobId, location: job.location },
              jobComplete: false,
            },
          };
        }
        if (job.cancelled || job.outcome.errorResult) return jobErrorResponse(job);
        return {
          status: 200,
          json: {
            kind: 'bigquery#getQueryResultsResponse',
            ...queryResultsPage(job, { pageToken: q.pageToken, maxResults: q.maxResults, fmt: fmtFrom(q) }),
          },
        };
      }
      default:
        return apiError(
          404,
          'notFound',
          `fake-gcp: BigQuery route not emulated: ${rec.method} ${rec.pathname}`,
        );
    }
  }

  let base = '';
  const srv = await startRecordingServer({
    service: 'bigquery',
    route,
    classify,
    host,
    port,
    log,
    sharedLog,
  });
  base = srv.url;

  return {
    ...srv,
    /** Options for `new BigQuery(...)`. extra is merged last. */
    clientOptions(extra = {}) {
      return {
        apiEndpoint: srv.url,
        projectId: 'fake-project',
        authClient: NO_AUTH,
        retryOptions: { ...FAST_RETRY_BQ },
        ...extra,
      };
    },
    /**
     * Script the outcome of jobs created by jobs.insert (and query jobs).
     * match: jobId substring (string) | RegExp on jobId | (jobId, { jobId, location, configuration, jobType }) => bool | undefined (any)
     * outcome: {
     *   errorResult?: { reason, message, location? }   // DONE with a fatal error
     *   errors?: [{ reason, message }]                 // defaults to [errorResult]; alone = non-fatal errors
     *   pendingPolls?: n                               // first n jobs.get/getQueryResults calls answer RUNNING (Infinity + finishJob())
     *   reportOnInsert?: true                          // insert response already DONE with the error (createJob rejects)
     *   statistics?: {...}                             // deep-merged into statistics
     *   outputRows?: n                                 // statistics.load.outputRows
     * }
     * times: how many jobs this script applies to (default Infinity).
     */
    scriptJob(match, outcome = {}, { times = Infinity } = {}) {
      jobScripts.push({ match, outcome, times });
    },
    /**
     * Script the result of queries (jobs.query fast path and query jobs via jobs.insert).
     * match: SQL substring | RegExp on SQL | (sql, queryParameters, jobInfo) => bool
     * result: { rows?: [plainObject | {f:[{v}]}], schema?: {fields} | [fields], error?: { reason='invalidQuery', message, httpStatus? },
     *           pendingPolls?, totalBytesProcessed?, numDmlAffectedRows?, statementType? }
     * times: default Infinity.
     */
    scriptQuery(match, result = {}, { times = Infinity } = {}) {
      queryScripts.push({ match, result, times });
    },
    /** Change the outcome of an existing job (e.g. finish a job scripted with pendingPolls: Infinity). */
    finishJob(jobId, outcome = {}, project) {
      const job = [...jobs.values()].find((j) => j.jobId === jobId && (!project || j.project === project));
      if (!job) throw new Error(`fake-gcp: no job ${jobId}`);
      Object.assign(job.outcome, outcome);
      if (outcome.rows) job.rows = outcome.rows;
      job.pendingPolls = 0;
    },
    /** Rows successful load jobs appended to `dataset.table` (with a loadSource). */
    tableRows(name) {
      return [...(tables.get(name) || [])];
    },
    /** Internal job state (configuration, outcome, rows...) or undefined. */
    getJob(jobId, project) {
      return [...jobs.values()].find((j) => j.jobId === jobId && (!project || j.project === project));
    },
    jobs,
    /** Drop all jobs, scripts, recorded requests and faults. */
    reset() {
      jobs.clear();
      tables.clear();
      jobScripts.length = 0;
      queryScripts.length = 0;
      srv.clearRequests();
      srv.clearFaults();
    },
  };
}

function deepMerge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object'
        ? deepMerge(a[k], v)
        : v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Both
// ---------------------------------------------------------------------------------------------

/**
 * Start both fakes (each on its own random port of 127.0.0.1).
 * Returns { gcs, bigquery, requests (all, in arrival order), clearRequests(), stop() }.
 */
export async function startFakeGcp({ gcs = {}, bigquery = {} } = {}) {
  const requests = [];
  const g = await startFakeGcs({ ...gcs, sharedLog: requests });
  let b;
  try {
    // Load jobs read their gs:// sources from the GCS fake, as BigQuery reads them from GCS.
    const loadSource = (uri) => {
      const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
      return m ? g.getObject(m[1], m[2])?.data : undefined;
    };
    b = await startFakeBigQuery({ loadSource, ...bigquery, sharedLog: requests });
  } catch (e) {
    await g.stop();
    throw e;
  }
  return {
    gcs: g,
    bigquery: b,
    requests,
    clearRequests() {
      requests.length = 0;
      g.clearRequests();
      b.clearRequests();
    },
    async stop() {
      await Promise.all([g.stop(), b.stop()]);
    },
  };
}
