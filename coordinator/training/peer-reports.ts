/**
 * Whether a result's peer-to-peer reports fit the task it answers (docs/p2p.md#trust): a tab
 * told to send its output to a peer reports either that it did (`sent`, to that peer, no frame
 * beside it) or why not (`fallback`, the frame beside it); a tab whose input came from a peer
 * reports what it got (`got`, from that peer). Anything else is an offence of the reporting tab.
 */
import type { OutMeta, TaskMeta } from '../../shared/protocol/events.js';

/** Why the reports do not fit the task, or null when they do. */
export function checkPeerReports(task: TaskMeta, out: OutMeta, frame: Uint8Array | null): string | null {
  if (out.sent) {
    if (!task.sendTo) return 'reported a frame sent peer to peer, but was told to return it';
    if (out.sent.to !== task.sendTo.peer) return `reported sending to ${out.sent.to}, but was told ${task.sendTo.peer}`;
    if (frame) return 'reported a frame sent peer to peer and returned one too';
    if (out.fallback) return 'reported both a peer-to-peer send and a fallback';
  } else if (out.fallback && !task.sendTo) {
    return 'reported a fallback, but was told to return its frame';
  } else if (out.fallback && !frame) {
    return 'reported a fallback without the frame';
  }
  if (out.refused) {
    if (!task.inputFrom) return 'refused a peer frame, but its input came with the task';
    if (out.refused.from !== task.inputFrom.peer) return `refused a frame from ${out.refused.from}, but its input came from ${task.inputFrom.peer}`;
    if (frame || out.sent || out.got || out.fallback || out.loss !== undefined) return 'refused its input and reported a result too';
    return null;
  }
  if (task.inputFrom) {
    if (!out.got) return `ran on a frame from ${task.inputFrom.peer} but did not report its digest and norm`;
    if (out.got.from !== task.inputFrom.peer) return `reported a frame from ${out.got.from}, but its input came from ${task.inputFrom.peer}`;
  } else if (out.got) {
    return 'reported a peer frame, but its input came with the task';
  }
  return null;
}
