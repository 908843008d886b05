"""Metrics as JSON lines (WORKDIR/metrics.jsonl) and TensorBoard events."""

import json
import math
import os

from tensorboardX import SummaryWriter


def read_metrics(path) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsWriter:
    def __init__(self, workdir, *, resume_step: int = 0):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._drop_after(resume_step)
        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

    def _drop_after(self, step):
        """A resumed run recomputes the steps after its checkpoint: drop their old lines."""
        rows = [r for r in read_metrics(self.path) if r["step"] <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(tmp, self.path)

    def write(self, step: int, metrics: dict):
        row = {"step": int(step)}
        for k, v in metrics.items():
            v = float(v)
            row[k] = v if math.isfinite(v) else str(v)
            self.tb.add_scalar(k, v, int(step))
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def close(self):
        self.tb.close()
