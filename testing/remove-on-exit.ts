/**
 * Runs a synchronous clean-up once: on a call to the returned function, on process exit, or on
 * SIGINT / SIGTERM (then the signal is raised again, so the process still ends by it). For the
 * kernel objects the link emulations create (namespaces, bridges, VXLAN devices), which outlive a
 * process that forgets them.
 */
export function removeOnExit(clean: () => void): () => void {
  let done = false;
  const remove = () => {
    if (done) return;
    done = true;
    clean();
  };
  const onSignal = (sig: NodeJS.Signals) => {
    remove();
    process.kill(process.pid, sig);
  };
  process.once('exit', remove);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return remove;
}
