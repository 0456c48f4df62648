/** One raw HTTP exchange over TCP (node:net), for requests no HTTP client library would send. */
import { connect } from 'node:net';

export interface RawAnswer {
  /** The status code of the first response line; null when the connection closed without one. */
  status: number | null;
  /** Whatever came back (headers and body), as latin1 text. */
  text: string;
  /** True when no status line (and no close) came within the timeout. */
  timedOut: boolean;
}

/** Sends `request` (bytes as given) to `port` on 127.0.0.1 and reads until close, a full response or `timeoutMs`. */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 3000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      sock.destroy();
      const text = buf.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, text, timedOut: timedOut && !m });
    };
    const t = setTimeout(() => finish(true), timeoutMs);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      // A complete response with a content-length: no need to wait for the server to close.
      const text = buf.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head));
      if (head >= 0 && len && buf.length >= head + 4 + Number(len[1])) finish(false);
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
    sock.write(request);
  });
}
