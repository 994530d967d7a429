"""The store on a real PostgreSQL server, as a plant server gathering several belts would run it."""

from sqlalchemy import inspect, select

from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Mask, Recording
from edge.store.reconcile import check_store


def test_record_check_and_quota_on_postgresql(make_config, run_recorder, postgres):
    config = make_config(
        {
            "storage": {"database_url": postgres, "disk_quota_mb": 0.3},
            "simulator": {"realtime": False, "truth_every": 10},
        }
    )
    store, summary = run_recorder(config, 2.0)
    assert "frames" in inspect(store.engine).get_table_names()
    assert summary.evicted_frames > 0
    with store.session() as session:
        recordings = list(session.scalars(select(Recording)))
        assert {r.label for r in recordings} == {"before", "after"}
        masks = list(session.scalars(select(Mask)))
        assert masks and isinstance(masks[0].objects, list)
        kept = sum(r.frame_count for r in recordings)
        assert kept == len(list(session.scalars(select(Frame))))
    assert check_store(store).clean
    assert store.usage_bytes() <= 0.3e6
    reopened = FrameStore.from_config(config.storage)  # migrations are idempotent on PostgreSQL too
    assert len(reopened.recordings()) == len(recordings)
    reopened.close()
