"""A prediction request on its way through the batcher: the `Job` a route makes, what it
becomes once decoded (its rows, the outputs asked for, how its reply is written), and the
state of a large request scored in parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import protocol
from .messages import Reply, Request, request_id
from .payloads import Payload

if TYPE_CHECKING:
    from ..core.model import Model, Prepared
    from ..core.threshold import Decision
    from .prediction_log import LogEntry


@dataclass(eq=False)
class Job:
    """A prediction request waiting for the model it was routed to."""

    request: Request
    model: Model
    infer: bool
    """An Open Inference Protocol request, rather than MLflow's `/invocations`."""
    name: str = ""
    """The name the model is served under: jobs of different names never share a batch."""
    parts: Parts | None = None
    """How far a large request, scored in parts, has come."""
    request_id: str = ""
    """The id its replies carry (`X-Request-Id`) and its rows are logged under."""

    def __post_init__(self) -> None:
        self.request_id = self.request_id or request_id(self.request.headers)


@dataclass(frozen=True)
class Writer:
    """How a request's reply is written: its predictions a part at a time (V2 writes the
    probabilities row-major, `flat`, and the outputs named in `binary` as raw bytes), then
    the reply around the parts."""

    flat: bool
    body: Callable[[list[protocol.Part]], Reply]
    binary: frozenset[str] = frozenset()

    def part(self, values: Any, probabilities: Any) -> protocol.Part:
        return protocol.encode_part(values, probabilities, flat=self.flat, binary=self.binary)

    def encode(self, values: Any, probabilities: Any) -> Reply:
        return self.body([self.part(values, probabilities)])


@dataclass(eq=False)
class Decoded:
    model: Model
    payload: Payload
    proba: bool
    writer: Writer
    decision: Decision | None = None
    name: str = ""


@dataclass(eq=False)
class Parts:
    """A request of more than FIRST_PART_ROWS rows, scored a part per turn of the batcher
    and its reply written likewise, so that no turn takes long."""

    decoded: Decoded
    done: int = 0
    size: int = 0
    written: list[protocol.Part] = field(default_factory=list)
    logged: list[LogEntry] = field(default_factory=list)


@dataclass(eq=False)
class Scoring:
    index: int
    model: Model
    prepared: Prepared
    proba: bool
    writer: Writer
    decision: Decision | None = None
    payload: Payload | None = None
    name: str = ""

    @property
    def needs_proba(self) -> bool:
        """Whether its rows need the class probabilities: asked for, or to apply a threshold."""
        return self.proba or self.decision is not None

    def labelled(self, values: Any, probabilities: Any) -> tuple[Any, Any]:
        """Its rows' labels (by its threshold, if it has one) and the probabilities it asked for."""
        return labelled(values, probabilities, self.proba, self.decision)


def labelled(
    values: Any, probabilities: Any, proba: bool, decision: Decision | None
) -> tuple[Any, Any]:
    """A request's labels, by its decision threshold if it has one, and its probabilities if
    it asked for them (a call shared with other requests may have computed them anyway)."""
    if decision is not None:
        values = decision.labels(probabilities)
    return values, probabilities if proba else None
