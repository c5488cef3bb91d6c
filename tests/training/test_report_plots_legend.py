"""The evaluate timeline's legend stands outside the probability axes (issue 19: it hid false alarms)."""

from __future__ import annotations

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.training.evaluate_metrics import ScoredRecording
from ictal.training.report_plots import plot_timeline, timeline_figure


def _recording_with_a_peak_top_right() -> ScoredRecording:
    """Probability near 1 at the right end of the trace: where the old legend sat (upper right)."""
    n = 256 * 60
    probs = np.full(n, 0.05, np.float32)
    probs[-256 * 10:] = 0.98
    return ScoredRecording("peak_at_end", 60.0, probs, np.zeros(n, np.int8), [])


def test_timeline_legend_does_not_overlap_the_probability_axes():
    import matplotlib.pyplot as plt

    fig = timeline_figure(_recording_with_a_peak_top_right(), [], AlarmThresholds())
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend()
        assert legend is not None, "the probability panel has lost its legend"
        box = legend.get_window_extent()
        axes_box = ax.get_window_extent()
        assert box.x0 >= axes_box.x1, (f"legend starts at x={box.x0:.1f} px, inside the axes that end at "
                                       f"x={axes_box.x1:.1f} px")
        # and it stays on the figure (tight_layout made room for it)
        fig_box = fig.bbox
        assert box.x1 <= fig_box.x1 + 0.5, f"legend ends at x={box.x1:.1f} px, past the figure's {fig_box.x1:.1f} px"
    finally:
        plt.close(fig)


def test_plot_timeline_writes_the_figure(tmp_path):
    path = plot_timeline(_recording_with_a_peak_top_right(), [], AlarmThresholds(), tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sensitivity_curve_is_still_written_to_its_file(tmp_path):
    from ictal.training.report_plots import plot_sensitivity_vs_fa

    path = plot_sensitivity_vs_fa([], {}, tmp_path / "curve.png")
    assert path == tmp_path / "curve.png" and path.read_bytes()[:4] == b"\x89PNG"
