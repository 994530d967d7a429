from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from edge.recorder.importer import ImportRejected, import_footage
from edge.sources.image_files import read_image, read_label_map
from edge.store.models import Frame, Mask, Recording
from edge.store.reconcile import check_store

H, W = 48, 64


def frame_image(index: int) -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :, 0] = index * 10
    image[10:20, index : index + 10] = (255, 255, 255)
    return image


def write_png(path: Path, array: np.ndarray) -> None:
    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    assert cv2.imwrite(str(path), pixels)


@pytest.fixture
def folder(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in (1, 2, 10):  # natural sort puts 10 last
        write_png(frames / f"img{index}.png", frame_image(index))
    masks = tmp_path / "masks"
    masks.mkdir()
    label = np.zeros((H, W), np.uint8)
    label[10:20, 10:20] = 255  # any other nonzero value counts as illegal
    label[30:40, 30:40] = 2
    write_png(masks / "img10.png", label)
    return frames, masks


def snapshot(store):
    files = sorted(
        p.relative_to(store.data_dir).as_posix()
        for p in store.data_dir.rglob("*")
        if p.is_file() and "index.db" not in p.name
    )
    with store.session() as session:
        rows = (len(list(session.scalars(select(Recording)))), len(list(session.scalars(select(Frame)))))
    return files, rows


def test_folder_import_in_natural_order_with_masks(store, folder):
    frames, masks = folder
    summary = import_footage(store, "c1", "before", frames, masks, fps=5.0, progress=False)
    assert (summary.frames, summary.masks) == (3, 1)
    with store.session() as session:
        stored = list(session.scalars(select(Frame).order_by(Frame.seq)))
        recording = session.get(Recording, summary.recording_id)
        mask = session.scalars(select(Mask)).one()
        assert (recording.camera, recording.label, recording.frame_count) == ("c1", "before", 3)
        assert mask.frame_id == stored[2].id
        assert (stored[1].capture_utc - stored[0].capture_utc).total_seconds() == pytest.approx(0.2)
    assert np.array_equal(read_image(store.absolute(stored[2].path)), frame_image(10))
    labels = read_label_map(store.absolute(mask.path))
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[15, 15] == 1 and labels[35, 35] == 2
    assert check_store(store).clean


def test_video_import_with_masks_by_frame_index(store, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (W, H))
    for index in range(6):
        writer.write(cv2.cvtColor(frame_image(index), cv2.COLOR_RGB2BGR))
    writer.release()
    masks = tmp_path / "masks"
    masks.mkdir()
    write_png(masks / "000004.png", np.ones((H, W), np.uint8))
    summary = import_footage(store, "c2", "after", video, masks, progress=False)
    assert (summary.frames, summary.masks) == (6, 1)
    with store.session() as session:
        recording = session.get(Recording, summary.recording_id)
        assert recording.fps == pytest.approx(12.0)
        mask = session.scalars(select(Mask)).one()
        assert session.get(Frame, mask.frame_id).seq == 4


@pytest.mark.parametrize(
    "damage, message",
    [
        ("corrupt_image", r"img2.png: not a readable image"),
        ("wrong_size_mask", r"img10.png: mask is 32x32 but its frame is 64x48"),
        ("jpeg_mask", r"img10.jpg: masks must be PNG label maps"),
        ("fake_png_mask", r"img10.png: named .png but is not a PNG file"),
        ("colour_mask", r"img10.png: a mask must be a single-channel label map"),
        ("mask_without_frame", r"img99.png: no frame named img99"),
        ("frame_size_change", r"img10.png: size 32x32 differs from the first frame's 64x48"),
    ],
)
def test_bad_input_is_rejected_naming_the_file_and_nothing_stored_is_touched(store, folder, damage, message):
    frames, masks = folder
    existing = import_footage(store, "c1", "before", frames, progress=False)
    before = snapshot(store)
    if damage == "corrupt_image":
        (frames / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    elif damage == "wrong_size_mask":
        write_png(masks / "img10.png", np.zeros((32, 32), np.uint8))
    elif damage == "jpeg_mask":
        (masks / "img10.png").rename(masks / "img10.jpg")
    elif damage == "fake_png_mask":
        _, jpeg = cv2.imencode(".jpg", np.zeros((H, W), np.uint8))
        (masks / "img10.png").write_bytes(jpeg.tobytes())
    elif damage == "colour_mask":
        colour = np.zeros((H, W, 3), np.uint8)
        colour[..., 0] = 1
        write_png(masks / "img10.png", colour)
    elif damage == "mask_without_frame":
        write_png(masks / "img99.png", np.zeros((H, W), np.uint8))
    elif damage == "frame_size_change":
        write_png(frames / "img10.png", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ImportRejected, match=message) as error:
        import_footage(store, "c1", "before", frames, masks, progress=False)
    assert "\n" not in str(error.value)
    assert snapshot(store) == before
    assert existing.recording_id in [r.id for r in store.recordings()]


def test_unreadable_video_and_missing_source(store, tmp_path):
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"not a video at all" * 50)
    with pytest.raises(
        ImportRejected, match=r"clip.mp4: cannot open as a video|clip.mp4: no frame could be decoded"
    ):
        import_footage(store, "c1", "before", bogus, progress=False)
    with pytest.raises(ImportRejected, match="no such file or folder"):
        import_footage(store, "c1", "before", tmp_path / "nothing", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImportRejected, match="no image files"):
        import_footage(store, "c1", "before", empty, progress=False)
    assert store.recordings() == []
