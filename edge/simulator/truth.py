"""What only the simulated belt with its simulated valves can say: which objects the air hit.

The agent on the simulated belt (`edge.agent.simulated_truth`) hands it to the panel (verdicts on
the newest openings), to the demo's running scoreboard (recall and false ejections so far) and to
the final scoreboard (`--report`). Anywhere else there is none: a real belt has no ground truth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edge.simulator.judge import hit_scores, judge_openings, recent_verdicts, removal_scores
from edge.simulator.world import BeltWorld
from firmware_bridge.modbus_simulator import ModbusValveSimulator
from firmware_bridge.planner import NozzleBank
from firmware_bridge.valve_device import ValveOpening

SCORE_EVERY_S = 5.0  # how fresh the running score is: judging takes a while on the recorder's thread
JUDGED_SHOWN = 10  # valve openings the panel shows with the simulator's verdict


@dataclass
class SimulatedTruth:
    valves: ModbusValveSimulator
    world: BeltWorld
    epoch_ns: int
    bank: NozzleBank
    _running: tuple[int, str] = field(default=(0, ""), repr=False)  # (when, text) of the last score
    _judged: set[tuple[int, int]] = field(default_factory=set, repr=False)  # (channel, sequence) judged
    _hit_ids: set[int] = field(default_factory=set, repr=False)  # what they hit

    def recent(self) -> list[dict]:
        """The ground truth's verdicts on the newest openings (the panel's list)."""
        return recent_verdicts(
            self.valves.openings(), self.bank, self.world, self.epoch_ns, time.monotonic_ns(), JUDGED_SHOWN
        )

    def scores(self, from_ns: int, until_ns: int) -> dict:
        """Recall and false ejections over the objects that passed the ejector line between two
        monotonic times (the first segmented frame, and now or the end of the run)."""
        judgements = judge_openings(self.valves.openings(), self.bank, self.world, self.epoch_ns)
        t0_s, t1_s = ((ns - self.epoch_ns) / 1e9 for ns in (from_ns, until_ns))
        return removal_scores(judgements, self.world, self.bank.line_x_mm, t0_s, t1_s)

    def running(self, from_ns: int | None) -> str:
        """`recall R, false ejections F` so far ("" before the first segmented frame; `-` while no
        object of the kind has passed the line), judged at most every SCORE_EVERY_S and only on the
        openings that ended since (the status line is drawn on the recorder's thread). An opening
        still to come may yet merge with another or be cancelled by a fail-safe; one that ended may not."""
        now = time.monotonic_ns()
        if from_ns is None or now - self._running[0] < SCORE_EVERY_S * 1e9:
            return self._running[1]
        latency_ns = round(self.bank.valve_latency_ms * 1e6)
        ended = [
            opening
            for opening in self.valves.openings()
            if opening.close_ns + latency_ns <= now and _key(opening) not in self._judged
        ]
        for judgement in judge_openings(ended, self.bank, self.world, self.epoch_ns):
            self._hit_ids |= set(judgement.hit_ids)
        self._judged |= {_key(opening) for opening in ended}
        t0_s, t1_s = ((ns - self.epoch_ns) / 1e9 for ns in (from_ns, now))
        scores = hit_scores(self._hit_ids, self.world, self.bank.line_x_mm, t0_s, t1_s)
        shown = [f"{name.replace('_', ' ')} {'-' if scores[name] is None else f'{scores[name]:.2f}'}"
                 for name in ("recall", "false_ejections")]  # fmt: skip
        self._running = (now, ", ".join(shown))
        return self._running[1]


def _key(opening: ValveOpening) -> tuple[int, int]:
    """An opening's identity: merged openings keep the first command's sequence."""
    return opening.channel, opening.sequence
