"""What a running server counts: requests by status, latencies, batch sizes, reloads.

Counts are plain numbers that can be merged across worker processes, rendered as
Prometheus text for `GET /metrics`, and summed up in the summary printed at shutdown.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import Counter
from typing import Any

# Prometheus buckets, in seconds, for request latency and in rows for batch sizes.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Percentiles come from log-spaced bins 2% wide, from 10 µs up: small and mergeable.
_FINE_BASE = 1e-5
_FINE_RATIO = math.log(1.02)
_FINE_BINS = 1000


class ServeStats:
    """Counters of one server process, safe to update from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.latency_bins = [0] * _FINE_BINS
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.batch_sizes: Counter[int] = Counter()
        self.reloads: Counter[str] = Counter()
        self.log_enabled = False
        """Whether a prediction log is kept (`serve --log-predictions`)."""
        self.log_rows: Counter[str] = Counter()
        """Rows of the prediction log: "written" (in complete files), "dropped"; and "files"."""

    def record(self, status: int, seconds: float) -> None:
        """Count one answered request."""
        fine = int(math.log(max(seconds, _FINE_BASE) / _FINE_BASE) / _FINE_RATIO)
        coarse = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            self.statuses[status] += 1
            self.latency_bins[min(fine, _FINE_BINS - 1)] += 1
            self.latency_buckets[coarse] += 1
            self.latency_sum += seconds

    def record_batch(self, rows: int) -> None:
        with self._lock:
            self.batch_sizes[rows] += 1

    def record_reload(self, outcome: str) -> None:
        with self._lock:
            self.reloads[outcome] += 1

    def record_log(self, written: int = 0, dropped: int = 0, files: int = 0) -> None:
        with self._lock:
            self.log_rows.update(written=written, dropped=dropped, files=files)

    def snapshot(self) -> dict[str, Any]:
        """All counts as a JSON-able dict, for merging across processes."""
        with self._lock:
            return {
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "latency_bins": list(self.latency_bins),
                "latency_buckets": list(self.latency_buckets),
                "latency_sum": self.latency_sum,
                "batch_sizes": {str(k): v for k, v in self.batch_sizes.items()},
                "reloads": dict(self.reloads),
                "log": dict(self.log_rows) if self.log_enabled else None,
            }

    def merge(self, snapshot: dict[str, Any]) -> None:
        """Add another process's snapshot to these counts."""
        with self._lock:
            self.statuses.update({int(k): v for k, v in snapshot["statuses"].items()})
            for i, value in enumerate(snapshot["latency_bins"]):
                self.latency_bins[i] += value
            for i, value in enumerate(snapshot["latency_buckets"]):
                self.latency_buckets[i] += value
            self.latency_sum += snapshot["latency_sum"]
            self.batch_sizes.update({int(k): v for k, v in snapshot["batch_sizes"].items()})
            self.reloads.update(snapshot["reloads"])
            if snapshot.get("log") is not None:
                self.log_enabled = True
                self.log_rows.update(snapshot["log"])

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 400)

    @property
    def batches(self) -> int:
        return sum(self.batch_sizes.values())

    @property
    def mean_batch_rows(self) -> float:
        batches = self.batches
        return sum(k * v for k, v in self.batch_sizes.items()) / batches if batches else 0.0

    def percentile(self, share: float) -> float:
        """The latency, in seconds, below which `share` of the requests were answered."""
        total = sum(self.latency_bins)
        if not total:
            return 0.0
        rank = share * total
        seen = 0
        for index, count in enumerate(self.latency_bins):
            seen += count
            if seen >= rank:
                return float(_FINE_BASE * math.exp(_FINE_RATIO * (index + 0.5)))
        return float(_FINE_BASE * math.exp(_FINE_RATIO * _FINE_BINS))

    def prometheus(
        self,
        model_sha256: str,
        model_path: str,
        ready: bool,
        registry: dict[str, Any] | None = None,
    ) -> str:
        """The counts in the Prometheus text exposition format; a model from an MLflow
        registry is also named by its URI and the version that URI resolved to."""
        lines = [
            "# HELP infer_cli_requests_total Requests answered, by HTTP status.",
            "# TYPE infer_cli_requests_total counter",
        ]
        with self._lock:
            for status in sorted(self.statuses):
                lines.append(f'infer_cli_requests_total{{code="{status}"}} {self.statuses[status]}')
            lines += _histogram(
                "infer_cli_request_duration_seconds",
                "Time from reading a request to sending its answer.",
                LATENCY_BUCKETS,
                self.latency_buckets,
                self.latency_sum,
            )
            batch_counts = [0] * (len(BATCH_BUCKETS) + 1)
            for rows, count in self.batch_sizes.items():
                batch_counts[bisect.bisect_left(BATCH_BUCKETS, rows)] += count
            rows_total = float(sum(k * v for k, v in self.batch_sizes.items()))
            lines += _histogram(
                "infer_cli_batch_rows",
                "Rows scored per model call.",
                BATCH_BUCKETS,
                batch_counts,
                rows_total,
            )
            lines += [
                "# HELP infer_cli_model_reloads_total Hot reloads, by outcome.",
                "# TYPE infer_cli_model_reloads_total counter",
            ]
            for outcome in ("ok", "failed"):
                lines.append(
                    f'infer_cli_model_reloads_total{{outcome="{outcome}"}} {self.reloads[outcome]}'
                )
        lines += [
            "# HELP infer_cli_model_info The model being served.",
            "# TYPE infer_cli_model_info gauge",
            f'infer_cli_model_info{{sha256="{model_sha256}",path="{_label(model_path)}"'
            f"{_registry_labels(registry)}}} 1",
            "# HELP infer_cli_ready Whether a model is loaded and requests are answered.",
            "# TYPE infer_cli_ready gauge",
            f"infer_cli_ready {int(ready)}",
        ]
        return "\n".join(lines) + "\n"

    def prediction_log_prometheus(self) -> str:
        """The prediction log's counts, in the Prometheus text format."""
        with self._lock:
            written, dropped = self.log_rows["written"], self.log_rows["dropped"]
            files = self.log_rows["files"]
        return (
            "# HELP infer_cli_prediction_log_rows_total Rows recorded in complete log files.\n"
            "# TYPE infer_cli_prediction_log_rows_total counter\n"
            f"infer_cli_prediction_log_rows_total {written}\n"
            "# HELP infer_cli_prediction_log_dropped_total Rows the prediction log dropped "
            "(its queue full, or its directory not writable).\n"
            "# TYPE infer_cli_prediction_log_dropped_total counter\n"
            f"infer_cli_prediction_log_dropped_total {dropped}\n"
            "# HELP infer_cli_prediction_log_files_total Prediction log files made whole.\n"
            "# TYPE infer_cli_prediction_log_files_total counter\n"
            f"infer_cli_prediction_log_files_total {files}\n"
        )


def _histogram(
    name: str, help_text: str, bounds: tuple[float, ...], counts: list[int], total: float
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    cumulative = 0
    for bound, count in zip(bounds, counts, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{le="{bound:g}"}} {cumulative}')
    cumulative += counts[-1]
    lines.append(f'{name}_bucket{{le="+Inf"}} {cumulative}')
    lines.append(f"{name}_sum {total:g}")
    lines.append(f"{name}_count {cumulative}")
    return lines


def _registry_labels(registry: dict[str, Any] | None) -> str:
    if not registry:
        return ""
    labels = {
        "model_uri": registry["uri"],
        "name": registry.get("name") or "",
        "version": "" if registry.get("version") is None else registry["version"],
        "resolved": registry["resolved"],
    }
    return "".join(f',{key}="{_label(str(value))}"' for key, value in labels.items())


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
