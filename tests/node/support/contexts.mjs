// Helpers for the client-side routes (protocol reference §1.5, §1.6, §1.8): context encodings,
// secure-mode hashes, SSE over REPORT, CORS header views.
import http from 'node:http';
import { createHmac } from 'node:crypto';
import { SseClient } from './sse-client.mjs';

/** base64url of the context JSON, without padding (what the JS SDK sends). */
export function b64url(context) {
  const json = typeof context === 'string' ? context : JSON.stringify(context);
  return Buffer.from(json, 'utf8').toString('base64url');
}

/** base64url of the context JSON with '=' padding to a multiple of 4. */
export function b64urlPadded(context) {
  const s = b64url(context);
  return s + '='.repeat((4 - (s.length % 4)) % 4);
}

/**
 * A user context whose base64url encoding needs padding and holds both URL-safe characters
 * ('-' and '_'), so that padded/unpadded and alphabet handling are both exercised.
 */
export function awkwardContext(key) {
  for (let n = 0; n < 64; n++) {
    const ctx = { kind: 'user', key, name: `~~~???>>>${'x'.repeat(n)}` };
    const enc = b64url(ctx);
    if (enc.length % 4 !== 0 && enc.includes('-') && enc.includes('_')) return ctx;
  }
  throw new Error('awkwardContext: no candidate found');
}

/** Secure mode hash: lowercase hex HMAC-SHA256 keyed by the SDK key over the fully-qualified key. */
export function secureHash(sdkKey, fullyQualifiedKey) {
  return createHmac('sha256', sdkKey).update(fullyQualifiedKey, 'utf8').digest('hex');
}

/** The ld-relay request headers every browser CORS response allows (§1.8), in order. */
export const CORS_BASE_HEADERS = [
  'Cache-Control',
  'Content-Type',
  'Content-Length',
  'Accept-Encoding',
  'X-LaunchDarkly-User-Agent',
  'X-LaunchDarkly-Payload-ID',
  'X-LaunchDarkly-Wrapper',
  'X-LaunchDarkly-Event-Schema',
  'X-LaunchDarkly-Tags',
];

/** The Access-Control-* response headers (lower-case names) of a response. */
export function corsHeaders(headers) {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith('access-control-')));
}

/**
 * Opens an SSE request with a body (REPORT /eval/{envId}, REPORT /meval); resolves once the
 * response headers are in (any status). Options: method (REPORT), headers, timeoutMs.
 */
export function openSseWithBody(url, body, { method = 'REPORT', headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
    const req = http.request(url, {
      method,
      headers: { Accept: 'text/event-stream', 'Content-Type': 'application/json', 'Content-Length': payload.length, ...headers },
      agent: false,
    });
    const client = new SseClient(url, req);
    const timer = setTimeout(() => {
      req.destroy(new Error(`SSE ${method} ${url}: no response headers within ${timeoutMs} ms`));
    }, timeoutMs);
    req.once('response', (res) => {
      clearTimeout(timer);
      client._attach(res, false);
      resolve(client);
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(payload);
  });
}
