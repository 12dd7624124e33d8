# %% [markdown]
# # Exploring incidents from Python
#
# A notebook-style script (cells marked `# %%`: open it in Jupyter with jupytext, in VS Code,
# or run it whole: `python docs/examples/explore_incidents.py [HOME]`). It loads the bundled
# sample, plots fatal errors per minute, tries a stricter threshold, and checks that the Python
# API finds exactly what the pipeline reported. HOME (default: a new temporary folder) is where
# the pipeline runs and the plot is saved.

# %%
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt

from alert_pipeline import BUILTIN_RULES, detect, load_logs

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_logs.csv"
home = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="explore-"))

# %% [markdown]
# ## Load: the pipeline's own validation, typed columns

# %%
logs = load_logs(SAMPLE, quarantined=True)
records = logs.records
print(f"{len(records)} records stored, {len(logs.quarantined)} quarantined")
print(records[["date", "severity", "bundle_id"]].dtypes.to_string())

# %% [markdown]
# ## Fatal errors per minute

# %%
fatal = records[records["severity"].str.strip().str.lower().isin(["fatal", "error"])]
per_minute = fatal.set_index("date").resample("1min").size()
axes = per_minute.plot(figsize=(10, 3), title="fatal errors per minute (UTC)")
axes.axhline(10, color="red", linestyle="--", label="threshold 10")
axes.legend()
home.mkdir(parents=True, exist_ok=True)
plt.savefig(home / "fatal_per_minute.png", dpi=80, bbox_inches="tight")
print(f"busiest minute: {per_minute.idxmax()} with {per_minute.max()} fatal errors")

# %% [markdown]
# ## Incidents with the registered rules, then with a stricter threshold

# %%
incidents = detect(records)
print(incidents[["rule", "group", "start", "end", "peak_count"]].to_string(index=False))

stricter = [replace(rule, threshold=5) for rule in BUILTIN_RULES]
for rule, count in detect(records, stricter)["rule"].value_counts().items():
    print(f"threshold 5: {count} incidents of {rule}")

# %% [markdown]
# ## The same incidents as the pipeline's report

# %%
(home / "incoming").mkdir(exist_ok=True)
(home / "incoming" / SAMPLE.name).write_bytes(SAMPLE.read_bytes())
pipeline = [sys.executable, "-m", "alert_pipeline.cli"]  # the `alert-pipeline` command
subprocess.run([*pipeline, "run", "--home", str(home)], check=True, capture_output=True)
reported = [
    incident
    for path in sorted(home.glob("reports/*/alert_report.json"))
    for incident in json.loads(path.read_text())["incidents"]
]
ids = {incident["incident_id"] for incident in reported}
assert ids == set(incidents["incident_id"]), "the API and the pipeline disagree"
print(f"the pipeline's report and detect() agree: {len(ids)} incidents")
