// beltcam panel, Training page: while a night or a run is going, swap in the page's changing part
// (progress, curves, runs) every few seconds. Plain JavaScript, no library, nothing from elsewhere.
"use strict";

const TRAINING_REFRESH_S = 5;

async function refreshTraining() {
  const section = document.getElementById("training-live");
  if (!section || section.dataset.live !== "1") return false;
  const response = await fetch(section.dataset.source, { credentials: "same-origin" });
  if (!response.ok) return true;
  const parsed = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = parsed.getElementById("training-live");
  if (!fresh) return true;
  section.replaceWith(document.importNode(fresh, true));
  return fresh.dataset.live === "1";
}

document.addEventListener("DOMContentLoaded", () => {
  const timer = setInterval(() => {
    refreshTraining()
      .then((goOn) => { if (!goOn) clearInterval(timer); })
      .catch(() => {});
  }, TRAINING_REFRESH_S * 1000);
});
