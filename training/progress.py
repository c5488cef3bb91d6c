"""Progress of long work: a tqdm bar on a terminal, plain periodic lines in a log.

Cache building and training report progress through :class:`Progress`. Where it goes:

- **a bar** (tqdm: count, rate, elapsed, ETA, and the postfix, e.g. the training loss) when ``bar`` is
  true, or when ``bar`` is None (the default, ``log.progress_bar: null``) and the output stream is a
  terminal (:func:`show_bar`);
- otherwise **plain lines**, one at the first update, then one whenever ``every_s`` seconds have
  passed since the last (checked at each update), and one at the end, so that a run whose output goes
  to a log file, journald or CI is never silent for longer than ``every_s`` plus one step::

      train: step 120/3000 (4.0%), loss 0.2314, 3.21 step/s, elapsed 0:00:37, ETA 0:14:57
      train: done 3000/3000 step in 0:15:34

  ``every_s`` None writes none of them.

``ETA`` is the remaining count divided by the mean rate since the reporter was created (updates made
before it, ``initial``, e.g. the steps of a resumed run, do not count in the rate); ``?`` until the
first update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def show_bar(setting: bool | None, stream: Any = None) -> bool:
    """Whether to draw a progress bar.

    Parameters
    ----------
    setting : bool or None
        ``log.progress_bar``: True or False as given; None follows the stream.
    stream : file-like, optional
        Where the bar would go; default ``sys.stderr``.

    Returns
    -------
    bool
        ``setting`` when it is not None; else whether ``stream`` is a terminal (False for a stream
        without ``isatty``, or None as under ``pythonw``).
    """
    if setting is not None:
        return bool(setting)
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` of a duration in seconds (``?`` when it is not finite or negative)."""
    if not (seconds >= 0 and seconds != float("inf")):
        return "?"
    total = int(round(seconds))
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


class Progress:
    """Progress of ``total`` units of work, as a bar or as plain periodic lines (module docstring).

    Parameters
    ----------
    total : int
        Units to do (steps, recordings), ``initial`` included.
    desc : str
        What is being done (``train``, ``cache``): the bar's label and each line's first word.
    unit : str
        Name of a unit (``step``, ``rec``).
    bar : bool or None, default None
        Draw a tqdm bar; None: when ``stream`` is a terminal (:func:`show_bar`).
    every_s : float or None, default 30
        Without a bar, seconds between plain lines; None: no lines.
    initial : int, default 0
        Units already done (a resumed run).
    enabled : bool, default True
        False: nothing at all (the ranks of a distributed run other than 0).
    stream : file-like, optional
        Where the bar or lines go; default ``sys.stderr``.
    clock : callable, optional
        Seconds, monotonic; default ``time.monotonic`` (tests pass their own).
    write : callable, optional
        Receives each plain line; default prints it to ``stream`` and flushes.

    Raises
    ------
    ValueError
        If ``every_s`` is not positive, or ``total``/``initial`` negative.
    """

    def __init__(self, total: int, desc: str, unit: str, *, bar: bool | None = None, every_s: float | None = 30.0,
                 initial: int = 0, enabled: bool = True, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, write: Callable[[str], None] | None = None) -> None:
        if every_s is not None and not every_s > 0:
            raise ValueError(f"progress every_s must be > 0 s or None (found {every_s})")
        if total < 0 or initial < 0:
            raise ValueError(f"progress of {desc}: total and initial must be >= 0 (found {total}, {initial})")
        self.total, self.desc, self.unit = int(total), desc, unit
        self.n = int(initial)
        self.initial = int(initial)
        self.enabled = enabled
        self.every_s = every_s
        self._stream = stream
        self._clock = clock
        self._write = write
        self._start = clock()
        self._last_line: float | None = None
        self._postfix: dict[str, Any] = {}
        self._closed = False
        self.bar = None
        if enabled and show_bar(bar, self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.initial, desc=desc, unit=unit, file=self.stream,
                            dynamic_ncols=True)

    @property
    def stream(self) -> Any:
        """The stream of the bar and lines (``sys.stderr`` when none was given, looked up at use)."""
        return sys.stderr if self._stream is None else self._stream

    def _emit(self, line: str) -> None:
        if self._write is not None:
            self._write(line)
        elif self.stream is not None:
            print(line, file=self.stream, flush=True)

    def rate(self) -> float:
        """Units per second since creation (``initial`` excluded); NaN before the first update."""
        elapsed = self._clock() - self._start
        done = self.n - self.initial
        return done / elapsed if done > 0 and elapsed > 0 else float("nan")

    def line(self) -> str:
        """The plain progress line of now (module docstring)."""
        elapsed = self._clock() - self._start
        rate = self.rate()
        pct = f" ({100.0 * self.n / self.total:.1f}%)" if self.total else ""
        fields = [f"{self.desc}: {self.unit} {self.n}/{self.total}{pct}"]
        fields += [f"{k} {v}" for k, v in self._postfix.items()]
        eta = (self.total - self.n) / rate if rate == rate and rate > 0 else float("nan")
        fields.append(f"{rate:.3g} {self.unit}/s" if rate == rate else f"? {self.unit}/s")
        fields.append(f"elapsed {format_duration(elapsed)}, ETA {format_duration(eta)}")
        return ", ".join(fields)

    def update(self, n: int = 1) -> None:
        """``n`` more units done: the bar moves, or a plain line is written when one is due."""
        self.n += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        if self.every_s is None:
            return
        now = self._clock()
        if self._last_line is None or now - self._last_line >= self.every_s:
            self._last_line = now
            self._emit(self.line())

    def set_postfix(self, **values: Any) -> None:
        """Figures shown after the count (e.g. ``loss="0.2314"``): on the bar, and in the next lines."""
        self._postfix.update(values)
        if self.enabled and self.bar is not None:
            self.bar.set_postfix(self._postfix)

    def note(self, text: str) -> None:
        """One message between updates (e.g. "epoch 2 done: evaluating dev"), printed above a bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self._emit(text)

    def close(self) -> None:
        """Close the bar, or write the final line (``done n/total unit in H:MM:SS``)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        elif self.every_s is not None and self.n > self.initial:
            figures = "".join(f", {k} {v}" for k, v in self._postfix.items())
            self._emit(f"{self.desc}: done {self.n}/{self.total} {self.unit} in "
                       f"{format_duration(self._clock() - self._start)}{figures}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
