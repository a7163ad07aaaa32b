// Small HTTP helpers over node:http (no keep-alive pooling, every request bounded in time).
import http from 'node:http';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Like sleep, but does not keep the process alive (for Promise.race deadlines). */
export const delayUnref = (ms) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/**
 * One HTTP request; resolves {status, headers, body: Buffer, text, json()}.
 * Never decompresses: the raw body is returned so gzip can be checked byte for byte.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: buf,
          text: buf.toString('utf8'),
          json() {
            try {
              return JSON.parse(buf.toString('utf8'));
            } catch (err) {
              throw new Error(`${method} ${url}: body is not JSON (${err.message}): ${buf.toString('utf8').slice(0, 500)}`);
            }
          },
        });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Polls `fn` until it returns a truthy value or the deadline passes; returns that value. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  let lastVal;
  while (Date.now() < deadline) {
    try {
      lastVal = await fn();
      if (lastVal) return lastVal;
    } catch (err) {
      lastErr = err;
    }
    await sleep(intervalMs);
  }
  const detail = lastErr ? ` (last error: ${lastErr.message})` : ` (last value: ${JSON.stringify(lastVal)?.slice(0, 300)})`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}
