/**
 * One Node volunteer as a process of its own, for bench/p2p-swarm.ts --links (started inside a
 * network namespace with `ip netns exec`): joins `url`, paces each task to `pace` ms; its ICE
 * policy: `relay` offers only TURN-relayed candidates, `bind=IP` only host candidates on IP
 * (libdatachannel's bindAddress: the overlay of testing/tcp-overlay.ts), `any` everything; `stack`
 * picks the Node WebRTC stack (trainer/node-webrtc.ts). Exits when its parent is gone.
 *
 * With a trace file, the hop-trace marks (shared/transport/hop-trace.ts) are appended to it as
 * JSON lines, for bench/hop-breakdown.ts.
 *
 *   node --import tsx bench/p2p-ns-volunteer.ts <url> <name> <paceMs> [relay|any|bind=IP] [traceFile] [libdatachannel|libwebrtc]
 */
import { appendFileSync } from 'node:fs';
import { startNodeVolunteer } from '../testing/node-volunteer.js';
import { setHopTraceSink } from '../shared/transport/hop-trace.js';
import { DEFAULT_NODE_STACK, parseNodeStack } from '../trainer/node-webrtc.js';

const [url, name, pace, policy, traceFile, stackName] = process.argv.slice(2);
if (!url || !name) throw new Error('usage: p2p-ns-volunteer.ts <url> <name> <paceMs> [relay|any|bind=IP] [traceFile] [libdatachannel|libwebrtc]');
const stack = parseNodeStack(stackName || DEFAULT_NODE_STACK);
if (traceFile) setHopTraceSink((e) => appendFileSync(traceFile, JSON.stringify(e) + '\n'));
// An experiment's SCTP settings for libdatachannel (bench/p2p-swarm.ts passes its environment on):
// P2P_SCTP='{"initialCongestionWindow":200}' (in MTUs) before any link exists.
if (process.env.P2P_SCTP && stack === 'libdatachannel') {
  const { setSctpSettings } = await import('node-datachannel');
  setSctpSettings(JSON.parse(process.env.P2P_SCTP) as Parameters<typeof setSctpSettings>[0]);
}
function rtcPolicy(p: string | undefined): RTCConfiguration {
  if (p === 'relay') return { iceTransportPolicy: 'relay' };
  const bind = /^bind=(\d+\.\d+\.\d+\.\d+)$/.exec(p ?? '');
  if (bind) return { bindAddress: bind[1] } as RTCConfiguration;
  if (p && p !== 'any') throw new Error(`ICE policy ${p}: expected relay, any or bind=IP`);
  return {};
}
const parent = process.ppid;
const v = await startNodeVolunteer(url, {
  name,
  stack,
  ...(Number(pace) > 0 ? { paceMs: Number(pace) } : {}),
  rtcExtra: rtcPolicy(policy),
});
console.log(`${name} joined ${url}`);
const bye = () => {
  v.kill();
  process.exit(0);
};
process.on('SIGTERM', bye);
process.on('SIGINT', bye);
setInterval(() => {
  try {
    process.kill(parent, 0);
  } catch {
    bye();
  }
}, 1000);
