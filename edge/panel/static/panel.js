// beltcam panel: small plain-JavaScript refreshes of the live page (no framework, no CDN).
"use strict";

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  return td;
}

function row(values) {
  const tr = document.createElement("tr");
  values.forEach((value) => tr.appendChild(cell(value)));
  return tr;
}

const AGENT_FIGURES = [
  ["model", "live model"], ["frames_captured", "frames captured"], ["frames_processed", "frames segmented"],
  ["frames_skipped", "frames skipped (newest only)"], ["objects_planned", "objects planned"],
  ["commands_sent", "commands sent"], ["late", "late"], ["latency_p50_ms", "capture to command p50 (ms)"],
  ["latency_p99_ms", "capture to command p99 (ms)"], ["mask_latency_p50_ms", "capture to mask p50 (ms)"],
  ["tracks", "tracks in view"],
];

async function refreshLive() {
  const response = await fetch("/api/live", { credentials: "same-origin" });
  if (!response.ok) return;
  const live = await response.json();
  if (!live.agent_running) return;
  for (const [camera, frame] of Object.entries(live.frames)) {
    document.getElementById("fps-" + camera).textContent = frame.fps === null ? "–" : frame.fps;
    document.getElementById("seq-" + camera).textContent = frame.sequence;
  }
  if (live.openings) {
    document.getElementById("openings-section").hidden = false;
    const verdicts = { illegal: "illegal object (meant)", legal: "a legal object too", nothing: "nothing" };
    document.querySelector("#openings tbody").replaceChildren(...live.openings.map((o) => row(
      [o.seconds_ago, o.channel, o.object_id === null ? "test fire" : o.object_id, verdicts[o.verdict]])));
  }
  const body = document.querySelector("#agent-figures tbody");
  body.replaceChildren(...AGENT_FIGURES.filter(([key]) => key in live.agent)
    .map(([key, label]) => row([label, live.agent[key]])));
}

async function refreshCommands() {
  const response = await fetch("/api/commands?limit=10", { credentials: "same-origin" });
  if (!response.ok) return;
  const data = await response.json();
  const body = document.querySelector("#commands tbody");
  body.replaceChildren(...data.commands.map((c) => row(
    [c.created_utc, c.object_id, c.channels.join(", "), Math.round(c.pulse_ms), c.kind, c.status])));
}

function refreshSnapshots() {
  document.querySelectorAll("img.refresh").forEach((img) => {
    img.src = img.dataset.src + "?t=" + Date.now();
  });
}

function every(seconds, work) {
  const run = () => work().catch(() => {});
  run();
  return setInterval(run, seconds * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "live.page") {
    every(1, refreshLive);
    every(2, refreshCommands);
    setInterval(refreshSnapshots, 1000);
  }
});
