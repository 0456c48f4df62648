import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import './styles.css';

/** Operator dashboard. Placeholder: live swarm state (stages, volunteers, loss curves) will render into #swarm-state. */
function Dashboard() {
  return (
    <main className="dashboard">
      <h1>Swarm dashboard</h1>
      <div id="swarm-state" data-testid="swarm-state" className="panel">
        Waiting for swarm state from the coordinator…
      </div>
    </main>
  );
}

const container = document.getElementById('root');
if (!container) throw new Error('#root element missing');
createRoot(container).render(
  <StrictMode>
    <Dashboard />
  </StrictMode>,
);
