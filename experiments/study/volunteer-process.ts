/**
 * One Node volunteer as a process of its own (the churn study's swarm validation): joins the
 * coordinator at argv[2] and trains whatever stage it is given; exits when the coordinator drops
 * it (a churn failure closes its socket, like a closed tab) or on SIGTERM.
 *
 *   node --import tsx experiments/study/volunteer-process.ts http://127.0.0.1:8080 name
 */
import { startNodeVolunteer } from '../../testing/node-volunteer.js';

const [url, name = 'study'] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: volunteer-process.ts <coordinator url> [name]\n');
  process.exit(2);
}
const v = await startNodeVolunteer(url, { name });
v.socket.on('disconnect', (reason) => {
  // 'io server disconnect': the coordinator dropped this tab for good; anything else may be a blip.
  if (reason === 'io server disconnect') {
    v.kill();
    process.exit(0);
  }
});
process.on('SIGTERM', () => {
  v.kill();
  process.exit(0);
});
