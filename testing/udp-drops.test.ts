import { describe, it, expect } from 'vitest';
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { sumDrops, udpDropsByPort, udpRcvbufErrors } from './udp-drops.js';

describe('udpDropsByPort', () => {
  it("counts the datagrams a socket's full receive buffer dropped, by port, and sumDrops splits them", async () => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4096 });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    s.on('message', () => {});
    const port = s.address().port;
    const before = udpDropsByPort('127.0.0.1');
    expect(before.get(port)).toBe(0);
    const errors0 = udpRcvbufErrors();
    // Another process sends while this event loop is blocked in execFileSync: nothing reads the socket.
    execFileSync(process.execPath, ['-e', `const s=require('dgram').createSocket('udp4');let n=0;const go=()=>{if(n++<300)s.send(Buffer.alloc(1000),${port},'127.0.0.1',go);else s.close()};go()`]);
    const after = udpDropsByPort('127.0.0.1');
    expect(after.get(port)!).toBeGreaterThan(100);
    const split = sumDrops(before, after, new Set([port]));
    expect(split.mine).toBe(after.get(port)! - before.get(port)!);
    expect(udpRcvbufErrors()).toBeGreaterThanOrEqual(errors0 + split.mine);
    s.close();
  });
});
