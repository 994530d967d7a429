// beltcam panel, Settings: after "Save and restart", wait for the restarted agent's panel, then go back.
"use strict";

function waitForPanel(target) {
  const poll = async () => {
    try {
      const response = await fetch(target, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        window.location.assign(target);
        return;
      }
    } catch (error) {
      // the panel is down while the agent restarts: try again
    }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 3000); // the agent needs a moment to stop before the old panel goes away
}

document.addEventListener("DOMContentLoaded", () => {
  const restarting = document.getElementById("restarting");
  if (restarting) waitForPanel(restarting.dataset.poll);
});
