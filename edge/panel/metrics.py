"""`/metrics` in Prometheus' text format (prometheus-client): cameras, recorder, live path, actuator
link and training, read from the store and the live view at each scrape, so the figures are the
same ones the pages show. Open without login unless `panel.public_metrics` is off."""

from __future__ import annotations

from collections import Counter

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import select

from edge.capture.report import camera_reports
from edge.panel.actuators import link_state
from edge.panel.context import PanelContext
from edge.store.models import Model, TrainingRun

bp = Blueprint("metrics", __name__)
CAMERA_COUNTERS = ("frames", "dropped", "stalls", "invalid_frames", "errors", "reconnects")
LIVE_COUNTERS = ("frames_processed", "frames_skipped", "objects_planned", "commands_sent", "late")
LIVE_GAUGES = ("latency_p50_ms", "latency_p99_ms", "mask_latency_p50_ms")
LINK_COUNTERS = ("sent", "acked", "retransmits", "naks", "dropped")


class SiteCollector:
    def __init__(self, context: PanelContext) -> None:
        self.context = context

    def collect(self):
        yield from self._cameras()
        yield from self._live()
        yield from self._link()
        yield from self._training()
        used = GaugeMetricFamily("beltcam_store_bytes", "bytes of frames, depth and masks in the store")
        used.add_metric([], self.context.store.usage_bytes())
        yield used

    def _cameras(self):
        up = GaugeMetricFamily(
            "beltcam_camera_ok", "1 while the camera delivers healthy frames", labels=["camera"]
        )
        counters = {
            name: CounterMetricFamily(
                f"beltcam_camera_{name}", f"camera {name} this session", labels=["camera"]
            )
            for name in CAMERA_COUNTERS
        }
        for report in camera_reports(self.context.store):
            up.add_metric([report.camera], 1.0 if report.state == "ok" else 0.0)
            for name, family in counters.items():
                family.add_metric([report.camera], getattr(report.counts, name))
        yield up
        yield from counters.values()

    def _live(self):
        if self.context.view is None:
            return
        status = self.context.view.status()
        for name in LIVE_COUNTERS:
            if status.get(name) is not None:
                family = CounterMetricFamily(f"beltcam_live_{name}", f"live path: {name.replace('_', ' ')}")
                family.add_metric([], status[name])
                yield family
        for name in LIVE_GAUGES:
            if status.get(name) is not None:
                family = GaugeMetricFamily(f"beltcam_live_{name}", f"live path: {name.replace('_', ' ')}")
                family.add_metric([], status[name])
                yield family

    def _link(self):
        link = link_state(self.context)
        if not link["running"]:
            return
        connected = GaugeMetricFamily("beltcam_link_connected", "1 while the actuator link is up")
        connected.add_metric([], 1.0 if link["connected"] else 0.0)
        yield connected
        for name in LINK_COUNTERS:
            family = CounterMetricFamily(f"beltcam_link_{name}", f"actuator link: {name}")
            family.add_metric([], link[name])
            yield family

    def _training(self):
        with self.context.store.session() as session:
            runs = Counter(session.scalars(select(TrainingRun.status)))
            live = session.scalar(select(Model.id).where(Model.status == "live"))
        family = GaugeMetricFamily("beltcam_training_runs", "training runs by status", labels=["status"])
        for status, count in sorted(runs.items()):
            family.add_metric([status], count)
        yield family
        model = GaugeMetricFamily("beltcam_live_model_id", "registry id of the live model (0: none)")
        model.add_metric([], live or 0)
        yield model


@bp.route("/metrics")
def metrics():
    registry = current_app.extensions.get("beltcam_metrics")
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SiteCollector(current_app.extensions["beltcam"]))
        current_app.extensions["beltcam_metrics"] = registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
