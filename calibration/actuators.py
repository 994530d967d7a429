"""Where the ejectors are: the line they fire across, their nozzles, and how slowly valves react."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ActuatorGeometry(BaseModel):
    """A bank of air nozzles across the belt. Positions are belt mm in C1's belt coordinates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ejector_line_x_mm: float = Field(
        gt=0, description="distance of the nozzle line downstream of C1's origin"
    )
    nozzle_count: int = Field(ge=1, le=512)
    nozzle_pitch_mm: float = Field(gt=0, description="centre-to-centre spacing across the belt")
    first_nozzle_y_mm: float = Field(description="y of nozzle 0's centre")
    valve_latency_ms: float = Field(ge=0, description="command to air at the belt")
    min_pulse_ms: float = Field(gt=0, description="shortest pulse the valve can make")

    @model_validator(mode="after")
    def _nozzles_fit(self) -> ActuatorGeometry:
        if self.nozzle_count * self.nozzle_pitch_mm > 10_000:
            raise ValueError("the nozzle bank is wider than 10 m: check nozzle_count and nozzle_pitch_mm")
        return self

    def lane(self, channel: int) -> tuple[float, float]:
        """The strip across the belt (y from, y to) that nozzle `channel` covers."""
        centre = self.first_nozzle_y_mm + channel * self.nozzle_pitch_mm
        return centre - self.nozzle_pitch_mm / 2, centre + self.nozzle_pitch_mm / 2
