// Free-port allocation on loopback: bind port 0 on 127.0.0.1, read the port, close.
// A process-wide set keeps one test file from handing out the same port twice while the first
// owner has not bound it yet (the kernel may return a just-closed port again).
import net from 'node:net';

const handedOut = new Set();

export async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
        const { port: p } = srv.address();
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: could not find an unused port after 50 attempts');
}
