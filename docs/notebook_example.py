# %% [markdown]
# # ictal in a notebook: score one EDF file with the demo checkpoint
#
# Each `# %%` block is a notebook cell (Jupyter, VS Code); the file also runs as a script:
#
#     python docs/notebook_example.py [RECORDING.edf] [OUT.png]
#
# Default recording: `iiic_01.edf` of the project's real-data folder (`../shared/data/labelled/`, an ICU
# segment whose central 10 s experts rated seizure; IIIC: Jing J. et al., Neurology 2023). The demo
# checkpoint is a tiny model trained on the CPU in minutes: it shows the pipeline, it is not a clinical
# detector. `ictal.predict_file` runs the daemon's own per-bed path, so these are the probabilities and
# alarms `ictal serve` would have produced replaying the file.

# %%
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed: the figure goes to a PNG
import matplotlib.pyplot as plt
import numpy as np

import ictal

root = Path(ictal.__file__).resolve().parent.parent
shared_data = Path(os.environ.get("ICTAL_SHARED_DATA", root.parent / "shared" / "data"))
recording = Path(sys.argv[1]) if len(sys.argv) > 1 else shared_data / "labelled" / "iiic_01.edf"
out_png = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("probabilities.png")

# %% Load the checkpoint once; it can then score many files.
checkpoint = ictal.demo_checkpoint()
detector = ictal.load_detector(checkpoint, device="cpu")
print(f"checkpoint {checkpoint} (id {detector.model_id}, {detector.direction}), thresholds {detector.thresholds}")

# %% Score the recording: one probability per sample at 256 Hz, NaN before the first window.
pred = ictal.predict_file(recording, checkpoint=detector)
print(pred.summary())
print(f"times_s {pred.times_s.shape}, probabilities {pred.probabilities.shape}")

# %% The alarms the daemon would have raised, and the signal-quality events.
for ev in pred.events:
    print(f"seizure alarm: onset {ev.onset_s:.2f} s, offset {ev.offset_s:.2f} s, raised at {ev.raised_s:.2f} s, "
          f"peak p {ev.peak:.3f} ({ev.end_reason})")
if not pred.events:
    print("no seizure alarm")
for q in pred.quality_events:
    print(f"signal quality at {q.stream_time_s:.2f} s: {q.reason} {q.problems}")

# %% Plot the probabilities with the thresholds and the alarms.
fig, ax = plt.subplots(figsize=(10, 3))
ax.plot(pred.times_s, pred.probabilities, lw=1, label="p(seizure)")
ax.axhline(pred.thresholds.tau_on, color="tab:red", ls="--", lw=0.8, label=f"tau_on {pred.thresholds.tau_on:g}")
ax.axhline(pred.thresholds.tau_off, color="tab:orange", ls=":", lw=0.8, label=f"tau_off {pred.thresholds.tau_off:g}")
for ev in pred.events:
    ax.axvspan(ev.onset_s, ev.offset_s, color="tab:red", alpha=0.15)
ax.set(xlabel="time from recording start (s)", ylabel="probability", ylim=(0, 1), xlim=(0, pred.duration_s),
       title=f"{recording.name}: {len(pred.events)} alarm(s), {pred.mode} mode")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
fig.savefig(out_png, dpi=100)
print(f"wrote {out_png} ({int(np.isfinite(pred.probabilities).sum())} scored samples)")
