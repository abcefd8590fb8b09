"""``stt-bench capacity``'s search for the most streams one server holds within seed 002's SLO (pure).

Two verdicts per load run (a *trial* at N concurrent streams):

* **P99**: every seed 002 target met (first partial P99 <= 2.5 s, final P99 <= 5 s, CreateSession
  P99 <= 300 ms, error rate <= 0.5%), and no stream refused;
* **worst case**: that, and every single first partial within 2.5 s and every final within 5 s.

A load holds when every trial at it held (one bad repeat is enough to reject it). The search
doubles N from ``start`` until the P99 verdict fails (or ``max_streams`` holds), then bisects the
worst-case boundary and the P99 boundary, then repeats the trial at each boundary until it has
``repeats`` trials; a repeat that fails moves the boundary down and the bisection goes on. It
stops on its own when the next trial would not finish within the time budget, and says why.
``CapacitySearch`` only decides; ``capacity_run`` runs the trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

Criterion = Literal["worst", "p99"]
CRITERIA: Final[tuple[Criterion, ...]] = ("worst", "p99")
FIRST_PARTIAL_LIMIT_SEC: Final = 2.5
FINAL_LIMIT_SEC: Final = 5.0
# The autoscaler's target leaves a quarter of a pod's capacity for the seconds a new pod needs to
# become Ready (docs/autoscaling.md), and never exceeds what held in the worst case.
TARGET_SHARE: Final = 0.75


@dataclass(frozen=True)
class Trial:
    """One load run's figures that the search needs (seconds; ``None`` when nothing was measured)."""

    streams: int
    slo_met: bool  # every seed 002 P99 target met
    refused: int  # streams refused (RESOURCE_EXHAUSTED / UNAVAILABLE): capacity was not reached
    first_partial_p99: float | None
    first_partial_max: float | None
    final_p99: float | None
    final_max: float | None
    missing_finals: int = 0
    wall_seconds: float = 0.0
    cpu_cores_busy: float | None = None
    load_average: float | None = None  # the host's 1-minute load average when the trial started

    @property
    def p99_ok(self) -> bool:
        return self.slo_met and self.refused == 0 and self.missing_finals == 0 and self.first_partial_p99 is not None

    @property
    def worst_ok(self) -> bool:
        return (self.p99_ok and self.first_partial_max is not None and self.final_max is not None
                and self.first_partial_max <= FIRST_PARTIAL_LIMIT_SEC and self.final_max <= FINAL_LIMIT_SEC)

    def ok(self, criterion: Criterion) -> bool:
        return self.worst_ok if criterion == "worst" else self.p99_ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p99_ok": self.p99_ok, "worst_ok": self.worst_ok}


@dataclass(frozen=True)
class SearchSettings:
    start: int = 4
    max_streams: int = 256
    repeats: int = 2  # trials at each boundary, the first one included
    budget_sec: float = 900.0
    first_trial_estimate_sec: float = 60.0  # before any trial has run

    def __post_init__(self) -> None:
        if self.start < 1 or self.max_streams < self.start or self.repeats < 1 or self.budget_sec <= 0:
            raise ValueError("need 1 <= start <= max_streams, repeats >= 1 and budget > 0")


@dataclass(frozen=True)
class Recommendation:
    """What to put in the SttServer spec for this hardware and audio."""

    max_sessions: int  # spec.limits.maxSessions: past this, latency leaves the SLO, so refuse instead
    target_active_sessions_per_replica: int  # spec.autoscaling.targetActiveSessionsPerReplica


@dataclass(frozen=True)
class CapacityResult:
    """The boundaries found: ``None`` for a criterion that not even one stream met."""

    p99_streams: int | None
    worst_streams: int | None
    p99_confirmed: bool  # the boundary has ``repeats`` trials, all within the SLO, and N + 1 failed
    worst_confirmed: bool
    at_max: bool  # max_streams held: the real capacity may be higher
    stopped: str  # why the search ended
    trials: tuple[Trial, ...]
    recommendation: Recommendation | None


def recommend(*, p99_streams: int | None, worst_streams: int | None) -> Recommendation | None:
    if not p99_streams:
        return None
    target = max(1, min(worst_streams or 1, math.floor(p99_streams * TARGET_SHARE)))
    return Recommendation(max_sessions=p99_streams, target_active_sessions_per_replica=target)


class CapacitySearch:
    """Doubling, then bisection, then boundary repeats, within a time budget; feed it trials."""

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.trials: list[Trial] = []
        self.stopped = ""  # why the search ended
        self.why = ""  # why the last N was chosen

    # --- what the trials say ----------------------------------------------------------------------

    def _verdicts(self, criterion: Criterion) -> dict[int, bool]:
        verdicts: dict[int, bool] = {}
        for trial in self.trials:
            verdicts[trial.streams] = verdicts.get(trial.streams, True) and trial.ok(criterion)
        return verdicts

    def bounds(self, criterion: Criterion) -> tuple[int, int | None]:
        """(largest N that held below the smallest that failed, or 0; smallest N that failed, or None)."""
        verdicts = self._verdicts(criterion)
        failed = [n for n, ok in verdicts.items() if not ok]
        high = min(failed) if failed else None
        held = [n for n, ok in verdicts.items() if ok and (high is None or n < high)]
        return (max(held) if held else 0), high

    def runs_at(self, streams: int) -> int:
        return sum(1 for trial in self.trials if trial.streams == streams)

    # --- deciding ---------------------------------------------------------------------------------

    def record(self, trial: Trial) -> None:
        self.trials.append(trial)

    def trial_estimate(self) -> float:
        """Seconds the next trial will take: the longest so far (trials grow slower with N)."""
        return max((t.wall_seconds for t in self.trials), default=self.settings.first_trial_estimate_sec)

    def _wanted(self) -> tuple[int | None, str]:
        s = self.settings
        if not self.trials:
            return s.start, "start"
        low, high = self.bounds("p99")
        if high is None:
            if low >= s.max_streams:
                return self._repeat_or_done("held at --max-streams")
            return min(s.max_streams, max(low * 2, s.start)), "doubling"
        for criterion in CRITERIA:
            low, high = self.bounds(criterion)
            if high is not None and high - low > 1:
                return (low + high) // 2, f"bisecting the {criterion} boundary"
        return self._repeat_or_done("boundaries found and repeated")

    def _repeat_or_done(self, done: str) -> tuple[int | None, str]:
        for criterion in ("p99", "worst"):
            low, _ = self.bounds(criterion)  # type: ignore[arg-type]
            if low and self.runs_at(low) < self.settings.repeats:
                return low, f"repeating the {criterion} boundary"
        return None, done

    def next_streams(self, *, elapsed_sec: float) -> int | None:
        """The N to run next, or ``None`` when done (``stopped`` says why)."""
        streams, why = self._wanted()
        if streams is None:
            self.stopped = why
            return None
        if self.trials and elapsed_sec + self.trial_estimate() > self.settings.budget_sec:
            self.stopped = (f"time budget: {elapsed_sec:.0f} s spent, the next trial ({why}, {streams} streams) "
                            f"would take about {self.trial_estimate():.0f} s more than the "
                            f"{self.settings.budget_sec:.0f} s allowed")
            return None
        self.why = why
        return streams

    def result(self) -> CapacityResult:
        found: dict[str, int | None] = {}
        confirmed: dict[str, bool] = {}
        for criterion in CRITERIA:
            low, high = self.bounds(criterion)
            found[criterion] = low or None
            confirmed[criterion] = bool(low) and self.runs_at(low) >= self.settings.repeats and (
                high == low + 1 or (high is None and low >= self.settings.max_streams))
        _, p99_high = self.bounds("p99")
        return CapacityResult(
            p99_streams=found["p99"], worst_streams=found["worst"], p99_confirmed=confirmed["p99"],
            worst_confirmed=confirmed["worst"],
            at_max=p99_high is None and (found["p99"] or 0) >= self.settings.max_streams,
            stopped=self.stopped, trials=tuple(self.trials),
            recommendation=recommend(p99_streams=found["p99"], worst_streams=found["worst"]))


def trials_table(trials: Sequence[Trial]) -> list[str]:
    """Markdown rows, one per trial, in the order they ran."""
    def s(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    rows = [("| # | streams | first partial P99 / max | final P99 / max | refused | server cores | P99 SLO | worst case "
            "| host load avg |"), "|---|---|---|---|---|---|---|---|---|"]
    for index, t in enumerate(trials, 1):
        rows.append(f"| {index} | {t.streams} | {s(t.first_partial_p99)} / {s(t.first_partial_max)} | "
                    f"{s(t.final_p99)} / {s(t.final_max)} | {t.refused} | {s(t.cpu_cores_busy)} | "
                    f"{'met' if t.p99_ok else 'missed'} | {'met' if t.worst_ok else 'missed'} | {s(t.load_average)} |")
    return rows
