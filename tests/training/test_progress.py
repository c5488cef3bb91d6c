"""Progress of long work (training.progress): a bar on a terminal, plain periodic lines in a log,
and a TensorBoard that is not installed said once at the start of a run that asked for it."""

from __future__ import annotations

import fcntl
import io
import os
import re
import struct
import termios

import pytest

from ictal.training.progress import Progress, format_duration, show_bar


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pty_stream():
    """The slave side of a real pseudo-terminal, opened as a text file, and a reader of the master side."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    stream = os.fdopen(slave, "w", buffering=1)

    def read() -> str:
        stream.flush()
        os.set_blocking(master, False)
        chunks = []
        try:
            while True:
                chunks.append(os.read(master, 65536))
        except BlockingIOError:
            pass
        return b"".join(chunks).decode(errors="replace")

    yield stream, read
    stream.close()
    os.close(master)


def test_bar_follows_the_terminal_unless_forced(pty_stream, tmp_path):
    tty, _ = pty_stream
    with open(tmp_path / "run.log", "w") as log_file:
        assert show_bar(None, tty) is True
        assert show_bar(None, log_file) is False
        assert show_bar(True, log_file) is True and show_bar(False, tty) is False
    assert show_bar(None, object()) is False  # a stream without isatty is no terminal


def test_on_a_terminal_training_draws_a_tqdm_bar_with_loss_and_eta(pty_stream):
    tty, read = pty_stream
    progress = Progress(10, "train", "step", stream=tty)
    for _ in range(4):
        progress.update()
    progress.set_postfix(loss="0.4321")
    progress.update()
    progress.close()
    shown = read()
    assert progress.bar is not None
    assert "\r" in shown and "train:" in shown and "5/10" in shown and "loss=0.4321" in shown
    assert re.search(r"<\d\d:\d\d", shown)  # tqdm's remaining-time estimate
    assert "ETA" not in shown  # no plain lines beside the bar


def test_in_a_log_plain_lines_come_at_the_first_step_every_period_and_at_the_end():
    clock, lines = Clock(), []
    progress = Progress(100, "train", "step", bar=None, every_s=30.0, stream=io.StringIO(), clock=clock,
                        write=lines.append)
    assert progress.bar is None  # a StringIO is no terminal
    clock.now += 1.0
    progress.update()
    assert lines == ["train: step 1/100 (1.0%), 1 step/s, elapsed 0:00:01, ETA 0:01:39"]
    for _ in range(28):  # 29 s in: no new line yet
        clock.now += 1.0
        progress.update()
    assert len(lines) == 1
    progress.set_postfix(loss="0.2314")
    for _ in range(2):  # 31 s in, 30 s after the first line
        clock.now += 1.0
        progress.update()
    assert lines[1] == "train: step 31/100 (31.0%), loss 0.2314, 1 step/s, elapsed 0:00:31, ETA 0:01:09"
    clock.now += 0.5
    progress.close()
    progress.close()  # closing twice writes one last line
    assert lines[2:] == ["train: done 31/100 step in 0:00:32, loss 0.2314"]


def test_a_resumed_run_counts_its_rate_from_the_resume():
    clock, lines = Clock(), []
    progress = Progress(1000, "train", "step", bar=False, initial=900, clock=clock, write=lines.append)
    clock.now += 10.0
    progress.update(10)
    assert lines == ["train: step 910/1000 (91.0%), 1 step/s, elapsed 0:00:10, ETA 0:01:30"]


def test_no_output_on_other_ranks_nor_when_lines_are_off():
    clock, lines = Clock(), []
    for progress in (Progress(5, "train", "step", bar=True, enabled=False, clock=clock, write=lines.append),
                     Progress(5, "train", "step", bar=False, every_s=None, clock=clock, write=lines.append)):
        for _ in range(5):
            clock.now += 60.0
            progress.update()
        progress.note("evaluating dev")
        progress.close()
        lines = [line for line in lines if line != "evaluating dev"]  # notes are not progress lines
        assert lines == []
    with pytest.raises(ValueError, match="every_s"):
        Progress(5, "train", "step", every_s=0)


def test_durations_are_hours_minutes_seconds():
    assert [format_duration(s) for s in (0, 59.6, 3725, 37 * 60)] == ["0:00:00", "0:01:00", "1:02:05", "0:37:00"]
    assert format_duration(float("nan")) == "?" and format_duration(float("inf")) == "?"


def test_log_config_defaults_follow_the_terminal_and_write_lines_every_30_s(repo_root):
    from ictal.config import load_config
    from ictal.training.config import LogConfig

    assert LogConfig().progress_bar is None and LogConfig().progress_every_s == 30.0
    for name in ("demo.yaml", "demo_causal.yaml"):  # the demo recipe no longer turns its bar off
        assert load_config(repo_root / "configs/train" / name, kind="train").log.progress_bar is None


@pytest.fixture(scope="module")
def tusz_root(shared_data, tmp_path_factory):
    from tests.training.tusz_fixture import build_tusz_tree

    root = tmp_path_factory.mktemp("tusz_progress")
    build_tusz_tree(shared_data, root)
    return root


def test_a_logged_training_run_writes_progress_lines_and_says_once_that_tensorboard_is_missing(
        repo_root, tusz_root, tmp_path, capfd):
    from ictal.training.config import TrainConfig
    from ictal.training.train import tensorboard_writer_class, train
    from tests.training.test_train import make_config

    config = make_config(repo_root, tusz_root, tmp_path / "run", dev_eval=False)
    config = TrainConfig.model_validate({**config.model_dump(), "log": {
        "every_steps": 2, "tensorboard": True, "progress_bar": None, "progress_every_s": 1e-6}})
    result = train(config)
    err = capfd.readouterr().err
    assert result.global_step == 4
    assert "\r" not in err  # stderr is captured, not a terminal: no bar
    assert re.search(r"^cache: rec 1/\d+ \(", err, flags=re.M)
    steps = re.findall(r"^train: step (\d)/4 \(.*ETA (\S+)$", err, flags=re.M)
    assert [s for s, _ in steps] == ["1", "2", "3", "4"]
    # the loss once it has been averaged (every_steps 2: after step 2's line)
    assert "loss " not in err.split("train: step 2/4")[1].splitlines()[0]
    assert "loss " in err.split("train: step 3/4")[1].splitlines()[0]
    assert re.search(r"^train: done 4/4 step in \d:\d\d:\d\d, loss \d", err, flags=re.M)
    _, missing = tensorboard_writer_class()
    if missing is None:
        assert (tmp_path / "run" / "tensorboard").is_dir()
    else:
        warnings = [line for line in err.splitlines() if "TensorBoard is not installed" in line]
        assert len(warnings) == 1 and "pip install ictal[tensorboard]" in warnings[0]
        assert warnings[0].startswith("WARNING: log.tensorboard is true") and err.index(warnings[0]) < err.index("cache")
