// The official LaunchDarkly Node server SDK pointed at the relay.
import { init } from '@launchdarkly/node-server-sdk';

/** A logger that records SDK messages into the scope's notes (printed only if the test fails). */
export function captureLogger(s, label = 'sdk') {
  const log = (level) => (...args) => {
    s.notes.push(`${label} ${level}: ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`);
  };
  return { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') };
}

/** init() against the relay; the client is closed when the test ends. */
export function sdkClient(s, relay, sdkKey, options = {}, label = 'sdk') {
  const client = init(sdkKey, {
    streamUri: relay.url,
    baseUri: relay.url,
    eventsUri: relay.url,
    sendEvents: false,
    diagnosticOptOut: true,
    logger: captureLogger(s, label),
    ...options,
  });
  s.defer(() => client.close());
  return client;
}

/** Resolves with the time (performance.now()) of the next `eventName`, bounded. */
export function nextEmit(client, eventName, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const onEvent = (arg) => {
      clearTimeout(timer);
      resolve({ at: performance.now(), arg });
    };
    const timer = setTimeout(() => {
      client.off(eventName, onEvent);
      reject(new Error(`SDK did not emit "${eventName}" within ${timeoutMs} ms`));
    }, timeoutMs);
    client.once(eventName, onEvent);
  });
}
