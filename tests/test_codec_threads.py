"""One thread per codec call in the sweep's workers, and the same bitstreams for any count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pku_aigi import codecs
from pku_aigi.bench import BenchImage, run_sweep
from pku_aigi.bench.sweep import CodecRun, _task_cost
from pku_aigi.codecs import by_name
from pku_aigi.codecs.ffmpeg_codecs import HevcCodec, VvcCodec
from pku_aigi.codecs.pillow_codecs import JpegCodec
from pku_aigi.codecs.threads import codec_threads, set_codec_threads
from pku_aigi.errors import CodecError


@pytest.fixture
def threads():
    yield set_codec_threads
    set_codec_threads(0)


@pytest.fixture(scope="module")
def crop(pku_examples):
    with Image.open(pku_examples / "mj52" / "1.png") as image:
        return image.convert("RGB").crop((256, 256, 256 + 320, 256 + 192))


@pytest.mark.parametrize(
    ("name", "quality"), [("hevc", 30), ("vvc", 30), ("avif", 60), ("jpegxl", 2)]
)
def test_the_thread_count_does_not_change_the_bitstream(name, quality, crop, threads):
    codec = codecs.get(name)
    streams, pictures = set(), set()
    for count in (0, 1, 3):
        threads(count)
        data = codec.encode(crop, quality)
        streams.add(data)
        pictures.add(codec.decode(data).tobytes())
    assert len(streams) == 1 and len(pictures) == 1


def test_ffmpeg_and_x265_get_the_thread_count(threads):
    assert HevcCodec.thread_args() == []
    assert ":pools=" not in " ".join(HevcCodec().encoder_args(30))
    threads(1)
    assert HevcCodec.thread_args() == ["-filter_threads", "1", "-threads", "1"]
    assert ":pools=1:frame-threads=1" in " ".join(HevcCodec().encoder_args(30))
    assert VvcCodec.thread_args() == ["-filter_threads", "1", "-threads", "1"]
    with pytest.raises(ValueError, match="whole number >= 0"):
        threads(-1)


class ThreadProbe(JpegCodec):
    """JPEG that refuses to run unless torch and the codecs are at one thread."""

    name = "thread-probe"

    def encode(self, image, quality, *, prompt=None):
        if codec_threads() != 1 or torch.get_num_threads() != 1:
            raise CodecError(f"threads: codecs {codec_threads()}, torch {torch.get_num_threads()}")
        return super().encode(image, quality)


def test_sweep_workers_run_every_library_at_one_thread(crop, tmp_path, monkeypatch):
    monkeypatch.setitem(by_name._CODECS._objects, ThreadProbe.name, ThreadProbe)
    monkeypatch.setitem(by_name._CODECS._aliases, ThreadProbe.name, ThreadProbe.name)
    rgb = np.asarray(crop)
    images = [BenchImage(f"{i}.png", "s", np.ascontiguousarray(rgb[:, i:])) for i in range(4)]
    result = run_sweep(images, [CodecRun("thread-probe", (50, 80))], tmp_path, workers=2,
                       progress=False)  # fmt: skip
    assert result.failures == [] and result.measured == 8
    assert codec_threads() == 0  # the main process keeps the libraries' defaults


def test_the_longest_tasks_are_scheduled_first():
    small = BenchImage("a.png", "s", np.zeros((200, 200, 3), np.uint8))
    large = BenchImage("b.png", "s", np.zeros((400, 400, 3), np.uint8))
    vvc, jpeg = CodecRun("vvc", (20, 50)), CodecRun("jpeg", (20, 90))
    assert _task_cost(vvc, small, 20) > _task_cost(vvc, small, 50) > _task_cost(jpeg, small, 90)
    assert _task_cost(jpeg, small, 90) > _task_cost(jpeg, small, 20)
    assert _task_cost(jpeg, large, 20) > _task_cost(jpeg, small, 20)
