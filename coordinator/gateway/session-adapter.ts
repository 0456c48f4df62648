/**
 * socket.io's session-aware adapter (connection-state recovery) keeps every packet sent to a
 * room so a tab back from a blip can be replayed what it missed, but prunes that log only once a
 * minute. Every relayed activation goes through it, so at a high relay rate it held gigabytes
 * (see docs/benchmarks.md). This adapter drops packets older than the grace period on every send:
 * nothing older could be replayed anyway (the session itself expires then).
 */
import { SessionAwareAdapter } from 'socket.io-adapter';

type Packet = { emittedAt: number };

export class PruningSessionAdapter extends SessionAwareAdapter {
  override broadcast(packet: Parameters<SessionAwareAdapter['broadcast']>[0], opts: Parameters<SessionAwareAdapter['broadcast']>[1]): void {
    super.broadcast(packet, opts);
    const self = this as unknown as { packets: Packet[]; maxDisconnectionDuration: number };
    const threshold = Date.now() - self.maxDisconnectionDuration;
    let expired = 0;
    while (expired < self.packets.length && self.packets[expired]!.emittedAt < threshold) expired++;
    if (expired > 0) self.packets.splice(0, expired);
  }

  /** Packets currently kept for replay (for tests and metrics). */
  retainedPackets(): number {
    return (this as unknown as { packets: Packet[] }).packets.length;
  }
}
