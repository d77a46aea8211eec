"""`check --explain FILE|FOLDER`: a dry run of the daemon's own checks, file by file.

Nothing here decides anything. Which inbox takes a file is watcher.inbox's `judge`; what the
file is, whether it can be converted and whether the credit guard or the daily limit would
hold it are watcher.preflight's `check_source` and `budget_hold`, whether its sending hours
would make it wait is watcher.schedule's `wait_for`: the very functions the daemon asks
before it sends a file. This module walks the files as the watcher would find
them, asks those, and says the answers with the pages and what they would cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path

from watcher.config import Config, InboxRule
from watcher.contract import PRICE_TABLE, estimated_cost
from watcher.errors import FileRejected
from watcher.inbox import GIVE_UP_SECONDS, files_in, judge, switched_on
from watcher.intake import new_job
from watcher.jobs import Job, JobState, NewJob
from watcher.journal import JOURNAL_FILE_NAME, Journal
from watcher.preflight import (
    Budget,
    Checked,
    FileKind,
    budget_hold,
    check_source,
    is_whole_pdf,
    read_budget,
    read_ends,
    reusable_result,
)
from watcher.schedule import wait_for
from watcher.settle import SettleTracker
from watcher.wording import count


class Outcome(Enum):
    CONVERTED = "would be converted"
    HELD = "would be held, not sent"
    REFUSED = "would be refused before anything is sent"
    NOT_TAKEN = "is not taken"


@dataclass(frozen=True)
class Explanation:
    """What the daemon would do with one file: the outcome, the daemon's own reason for it,
    and more lines of detail (what the file is, its cost, where it would go)."""

    path: Path
    outcome: Outcome
    pages: int  # 0 when not known (a shortcut) or not converted
    details: tuple[str, ...]


def open_journal(config: Config) -> Journal | None:
    """The live journal, to read what the daemon knows (never created here), or None."""
    path = config.files.state_dir / JOURNAL_FILE_NAME
    return Journal(path) if path.exists() else None


def current_budget(config: Config, journal: Journal | None) -> Budget:
    """The budget the credit guard would weigh files against now."""
    limit = config.credits.daily_page_limit
    return read_budget(journal, limit) if journal is not None else Budget(None, 0, limit)


def explain(
    config: Config, path: Path, budget: Budget, journal: Journal | None = None
) -> list[Explanation]:
    """A file, or every file below a folder (in every subfolder, in name order): what the
    daemon would do with each, as if they were sent in this order (each file converted
    before it leaves less credit and less of today's limit to the next). With the journal,
    also what the daemon knows of them: results it can copy, copies of its own results."""
    path = Path(path).expanduser().absolute()
    if not path.is_dir() or path.is_symlink():
        return [_explain_file(config, path, budget, journal)]
    explanations = []
    first = budget
    for file in sorted(files_in(path, recursive=True)):
        explanation = _explain_file(config, file, budget, journal)
        if explanation.outcome is Outcome.CONVERTED:
            budget = budget.after(explanation.pages)
        elif explanation.outcome is Outcome.HELD and budget != first:
            more = "(counting the files listed before it as sent first)"
            explanation = replace(explanation, details=(*explanation.details, more))
        explanations.append(explanation)
    return explanations


def touches_an_inbox(config: Config, folder: Path) -> bool:
    """Whether a folder is an inbox, inside one or holds one: else its files need no look."""
    folder = Path(folder).expanduser().absolute().resolve()
    return any(
        folder == r.path or r.path in folder.parents or folder in r.path.parents
        for r in config.inboxes
    )


def _explain_file(
    config: Config, path: Path, budget: Budget, journal: Journal | None
) -> Explanation:
    verdict = judge(config, path)
    if not verdict.accepted or verdict.rule is None:
        return Explanation(path, Outcome.NOT_TAKEN, 0, (verdict.reason,))
    rule = verdict.rule
    taken = f"taken by inbox {rule.path} → {_settings(rule)}"
    if switched_on(config.watch.shared, rule.path):  # as watcher.stations decides it
        taken += (
            "; the inbox is shared with other PCs, so this PC converts the file only if it "
            "claims it first (claims are not made in a dry run)"
        )
    goes = rule.destinations(path)  # its result's name and folders, with subfolders kept
    known = _known(journal, path, rule) if journal is not None else None
    if known is not None:
        outcome, said = known
        return Explanation(
            path, outcome, 0, (said,) if outcome is Outcome.NOT_TAKEN else (taken, said, goes)
        )
    try:
        checked = check_source(path, outformat=rule.outformat)
    except FileRejected as exc:
        details = [taken, exc.message, *_incomplete_note(rule, path)]
        details.append(
            f"It would be moved to {rule.as_rule(path).failed} with this reason beside it; "
            "nothing is sent or charged."
        )
        return Explanation(path, Outcome.REFUSED, 0, tuple(details))
    what = _what_it_is(path, checked, rule)
    wait = wait_for(rule.send_between, rule.path, time.time())  # as the daemon asks, first
    if wait is not None:
        return Explanation(path, Outcome.HELD, 0, (taken, what, wait[1]))
    hold = budget_hold(checked.pages, budget, job_id=None)
    if hold is not None:
        return Explanation(path, Outcome.HELD, 0, (taken, what, hold.reason))
    return Explanation(path, Outcome.CONVERTED, checked.pages, (taken, what, goes))


def _known(journal: Journal, path: Path, rule: InboxRule) -> tuple[Outcome, str] | None:
    """What the journal decides before any check, as the daemon asks it: a copy of one of
    our own results is not taken (the journal refuses it), and the same bytes with the same
    settings as a finished job get that job's result copied, at no charge."""
    try:
        new = new_job(path, rule.as_rule(path), rule.path)
    except OSError:
        return None  # the checks say why it cannot be read
    own = journal.result_copied(new)
    if own is not None:
        return Outcome.NOT_TAKEN, (
            f"{path.name} is a copy of our own result {own.output} (from {own.display_name}); "
            "it is not converted again"
        )
    known = {item.name: getattr(new, item.name) for item in fields(NewJob)}
    job = Job(id=0, state=JobState.QUEUED, created_at=0.0, updated_at=0.0, **known)
    twin = reusable_result(journal, job)  # a job not journaled: its id is no other's
    if twin is None:
        return None
    return Outcome.CONVERTED, (
        f"the same content with the same settings was converted before ({twin.display_name}, "
        f"job {twin.id}): its result is copied, at no charge"
    )


def _settings(rule: InboxRule) -> str:
    ocr = "on" if rule.ocr else "off"
    return f"{rule.outformat} ({rule.lang}, OCR {ocr}), results to {rule.outbox}"


def _what_it_is(path: Path, checked: Checked, rule: InboxRule) -> str:
    """What the file is and costs, and for images and links, how they are taken."""
    facts = checked.facts
    if facts is None:
        return (
            f"an internet shortcut to {checked.url}: the service fetches the document itself, "
            "so its pages (and their cost) are known only once it is converted"
        )
    cost = _cost(facts.pages)
    if facts.kind is FileKind.PDF:
        return f"a PDF of {count(facts.pages, 'page')}: {cost}"
    name = f"a {facts.image_format.upper()} image of {count(facts.pages, 'page')}"
    if path.suffix.lower() == ".pdf":
        name += " under a .pdf name (sent as the image it is)"
    how = (
        "the service reads its text by OCR"
        if rule.ocr
        else "OCR is off in this inbox, and the text of a picture is found only by OCR: "
        "the result may be empty (set ocr = true in its [[inbox]])"
    )
    return f"{name}: {how}; {cost}"


def _cost(pages: int) -> str:
    low, high = estimated_cost(pages)
    return f"about ${low:,.2f} to ${high:,.2f} at pdfocr.org's pack prices"


def _incomplete_note(rule: InboxRule, path: Path) -> Iterator[str]:
    """For a PDF without its end: that the daemon first waits for a writer to finish it."""
    try:
        with path.open("rb") as handle:
            head, tail = read_ends(handle)
    except OSError:
        return
    if not head.startswith(b"%PDF") or is_whole_pdf(head, tail):
        return
    wait = SettleTracker(rule.settle_seconds, GIVE_UP_SECONDS).give_up_after
    yield (
        f"The daemon first waits {wait:.0f} s after it stops changing for its end to be "
        "written (a scanner or a copy may still be at it), then refuses it like this."
    )


def render(
    explanations: list[Explanation], budget: Budget, journal_seen: bool, base: Path | None = None
) -> list[str]:
    """The dry run in lines: each file's outcome and details, then the budget (when a file
    got as far as the credit guard) and a total.
    Files are named from `base` (the folder asked about) when given."""
    lines: list[str] = []
    for explanation in explanations:
        shown = explanation.path
        if base is not None and base in shown.parents:
            shown = shown.relative_to(base)
        lines.append(f"{shown}: {explanation.outcome.value}")
        lines.extend(f"    {detail}" for detail in explanation.details)
    if any(e.outcome is not Outcome.NOT_TAKEN for e in explanations):  # else it says nothing
        lines.append(_budget_line(budget, journal_seen))
    if len(explanations) > 1:
        lines.append(_total(explanations))
    return lines


def _budget_line(budget: Budget, journal_seen: bool) -> str:
    if budget.balance is not None:
        credit = f"Credit: {count(budget.balance, 'page')} left at the service's last report"
    elif journal_seen:
        credit = "Credit: not known yet (the service has not reported a balance)"
    else:
        credit = "Credit: not known (no journal yet: the daemon has not run with these rules)"
    if budget.daily_limit:
        limit = f"daily limit {count(budget.daily_limit, 'page')}, {budget.sent_today:,} sent today"
    else:
        limit = "no daily page limit"
    prices = [dollars / size for size, dollars in PRICE_TABLE]
    return (
        f"{credit}; {limit}. Prices: ${min(prices):.3f} to ${max(prices):.2f} a page, by the "
        "size of the pack bought."
    )


def _total(explanations: list[Explanation]) -> str:
    converted = [e for e in explanations if e.outcome is Outcome.CONVERTED]
    pages = sum(e.pages for e in converted)
    others = [
        f"{sum(e.outcome is outcome for e in explanations):,} {words}"
        for outcome, words in (
            (Outcome.HELD, "held"),
            (Outcome.REFUSED, "refused"),
            (Outcome.NOT_TAKEN, "not taken"),
        )
    ]
    return (
        f"In all: {count(len(explanations), 'file')}; {len(converted):,} would be converted "
        f"({count(pages, 'page')}, {_cost(pages)}), {', '.join(others)}."
    )
