"""The soak's report: what each run and attempt did, the invariants that did not hold, and the table
`make soak` prints."""

from __future__ import annotations

import resource
from dataclasses import dataclass, field

from tests.reliability.soak_checks import RunCheck
from tests.reliability.soak_plan import RunPlan, SoakSettings
from tests.reliability.soak_runs import Attempt


@dataclass
class RunReport:
    plan: RunPlan
    attempts: list[Attempt]
    check: RunCheck | None
    seconds: float
    drift: dict = field(default_factory=dict)
    snapshot_after_kill: list[str] = field(default_factory=list)


@dataclass
class SoakReport:
    settings: SoakSettings
    runs: list[RunReport]
    counters: dict
    readers: dict
    key_leaks: list[str]
    debris: list[str]
    bad_records: dict[str, int]  # kind -> bad records of it in the source at the end (GET /_sim/bad_records)
    seconds: float
    cpu_seconds: float
    load_average: float  # of the machine over the last 5 minutes, at the end
    workdir: str

    @property
    def kills(self) -> int:
        return sum(attempt.killed for run in self.runs for attempt in run.attempts)

    @property
    def failed_attempts(self) -> int:
        return sum(
            1
            for run in self.runs
            for attempt in run.attempts
            if not attempt.killed and attempt.exit_code != 0
        )

    def total(self, name: str) -> int:
        return sum(getattr(run.check, name) for run in self.runs if run.check)

    @property
    def unchecked_runs(self) -> int:
        return sum(run.check is None for run in self.runs)

    @property
    def snapshots_broken_after_kill(self) -> int:
        return sum(len(run.snapshot_after_kill) for run in self.runs)

    @property
    def client_429(self) -> int:
        return int(self.counters.get("rate_limited_429", 0))

    def failures(self) -> list[str]:
        """Every invariant that did not hold, in words (empty: the soak passed)."""
        problems = []
        for name in ("lost", "duplicated", "mismatched", "ghosts", "kpi_mismatches", "issues_mismatched"):
            if self.total(name):
                problems.append(f"{self.total(name)} {name.replace('_', ' ')}")
        problems += [
            f"run {run.plan.number} not checked: no completed attempt" for run in self.runs if not run.check
        ]
        problems += [
            f"run {run.plan.number}: {sample}"
            for run in self.runs
            if run.check and not run.check.build_is_this_run
            for sample in run.check.samples[:1]
        ]
        if self.failed_attempts:
            problems.append(f"{self.failed_attempts} attempts failed without being killed")
        if self.readers["errors"] or self.readers["inconsistent"]:
            problems.append(
                f"readers: {self.readers['errors']} errors, {self.readers['inconsistent']} inconsistent snapshots"
            )
        survivors = sum(len(a.survivors) for run in self.runs for a in run.attempts)
        if survivors:
            problems.append(f"{survivors} processes of killed runs were still running after the SIGKILL")
        if self.snapshots_broken_after_kill:
            problems.append(f"{self.snapshots_broken_after_kill} broken warehouse snapshots after a kill")
        if self.key_leaks:
            problems.append(f"API key found in {len(self.key_leaks)} files: {self.key_leaks[:3]}")
        if self.client_429:
            problems.append(f"{self.client_429} 429s caused by the client")
        return problems

    def table(self) -> str:
        lines = [
            "| run | kind | logical date | attempts | killed during | wall s | visits checked | lost | "
            "duplicated | mismatched | ghosts | issues checked | issues mismatched | KPI dates | KPI mismatches |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for run in self.runs:
            check = run.check
            kills = ", ".join(
                a.kill_phase + ("" if a.killed_in_phase else " (after)") for a in run.attempts if a.killed
            )
            cells = [
                str(run.plan.number),
                run.plan.kind + (" + drift" if run.plan.in_run_drift else ""),
                run.plan.logical_date.isoformat(),
                str(len(run.attempts)),
                kills or "-",
                f"{run.seconds:.0f}",
            ]
            if check:
                cells += [
                    str(check.in_scope), str(check.lost), str(check.duplicated), str(check.mismatched),
                    str(check.ghosts), str(check.issues_checked), str(check.issues_mismatched),
                    str(check.kpi_dates), str(check.kpi_mismatches),
                ]  # fmt: skip
            else:
                cells += ["not checked"] + [""] * 8
            lines.append("| " + " | ".join(cells) + " |")
        faults = self.counters.get("faults", {})
        fault_text = ", ".join(f"{kind} {count}" for kind, count in sorted(faults.items())) or "none"
        drift = self.counters.get("drift", {})
        totals = [
            ("runs (attempts)", f"{len(self.runs)} ({sum(len(r.attempts) for r in self.runs)})"),
            (
                "visits in the source",
                f"{self.settings.visits} at start, {self.counters.get('visits', '?')} at end",
            ),
            ("API requests", str(self.counters.get("requests_total", "?"))),
            ("faults injected by kind", f"{sum(faults.values())}: {fault_text}"),
            ("drift while paging", ", ".join(f"{k} {v}" for k, v in sorted(drift.items())) or "none"),
            ("kills (SIGKILL of the run's process group)", str(self.kills)),
            ("failed attempts (not killed)", str(self.failed_attempts)),
            ("reader queries", str(self.readers["queries"])),
            ("reader errors", str(self.readers["errors"])),
            ("inconsistent reader snapshots", str(self.readers["inconsistent"])),
            ("builds seen by one reader", str(self.readers["builds_seen"])),
            ("visits checked (sum over runs)", str(self.total("in_scope"))),
            ("visits lost", str(self.total("lost"))),
            ("visits duplicated", str(self.total("duplicated"))),
            ("visits with wrong values", str(self.total("mismatched"))),
            (
                "ghost rows (deleted or moved visits, or visits that cannot be placed)",
                str(self.total("ghosts")),
            ),
            (
                "bad records in the source at the end; fields the reference does not list",
                f"{sum(self.bad_records.values())} of {len(self.bad_records)} kinds "
                f"({self.settings.bad_record_rate:.1%} of the generated visits); unknown fields on "
                f"{self.settings.unknown_field_rate:.1%} of visits, lines and extraData entries",
            ),
            ("visits that cannot be placed, checked absent (sum over runs)", str(self.total("quarantined"))),
            ("issue rows checked (sum over runs)", str(self.total("issues_checked"))),
            ("issue rows mismatched", str(self.total("issues_mismatched"))),
            (
                "most visits absent at once, moved out of a window (back at the next full refresh)",
                str(max((run.check.absent_elsewhere for run in self.runs if run.check), default=0)),
            ),
            (
                "most visits both closed and skipped at once (published, recorded as data issues)",
                str(max((run.check.closed_and_skipped for run in self.runs if run.check), default=0)),
            ),
            ("KPI dates checked", str(self.total("kpi_dates"))),
            ("KPI mismatches", str(self.total("kpi_mismatches"))),
            ("429s caused by the client", str(self.client_429)),
            ("429s injected", str(self.counters.get("injected_429", "?"))),
            ("API key found in files", str(len(self.key_leaks))),
            ("temporary files left by killed attempts", str(len(self.debris))),
            ("wall time", f"{self.seconds:.0f} s"),
            ("CPU time (soak, Airflow runs, readers, simulator)", f"{self.cpu_seconds:.0f} s"),
            ("machine load average (5 min, at the end; 2 cores)", f"{self.load_average:g}"),
        ]
        lines += ["", "| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in totals]
        return "\n".join(lines)


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for (Airflow runs, readers, simulator)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
