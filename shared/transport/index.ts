/** Peer-to-peer frame transport over WebRTC data channels (issue 23); browser and Node. */
export * from './frame-digest.js';
export * from './link-down-error.js';
export type { LinkStats } from './link-stats.js';
export * from './peer-link.js';
export * from './peer-links.js';
