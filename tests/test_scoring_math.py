"""Math checker internals: box finding, numeric normalisation, voting keys, the hard time limit."""

import os
import threading
import time

from conftest import HANG_S, wait_until
from inftythink_eval.run.output import SampleOutput
from inftythink_eval.scoring import check_many, check_math, last_boxed, mathcheck, normalize_number
from inftythink_eval.scoring.mathcheck import MathVerdict
from inftythink_eval.scoring.timelimit import TIMED_OUT, TimeLimitedPool



def test_last_boxed_balances_braces_and_takes_the_last():
    assert last_boxed(r"\boxed{\frac{1}{2}} and \boxed{x^{2}}") == "x^{2}"
    assert last_boxed("no box") is None
    assert last_boxed(r"\fbox{7}") == "7"
    assert last_boxed(r"cut \boxed{12$.") == "12"


def test_normalize_number():
    assert normalize_number("025") == "25"
    assert normalize_number("27.0") == "27"
    assert normalize_number("-0.50") == "-0.5"
    assert normalize_number("1,000") == "1000"
    assert normalize_number("0") == "0" and normalize_number("-0") == "0"
    assert normalize_number("x") is None and normalize_number("1,2") is None


def test_equal_answers_vote_together():
    a = check_math(r"\boxed{025}", "25")
    b = check_math(r"\boxed{25.0}", "25")
    assert a.correct and b.correct and a.key == b.key == "25"


def test_sample_output_is_checked_as_its_text():
    response = SampleOutput(r" so \boxed{4}", {"tok": 3})
    assert check_math(response, "4").correct


def test_timeout_counts_as_incorrect_and_is_reported(monkeypatch):
    """A check cut by the hard limit is incorrect with note "timeout", and the next check gets a fresh worker.

    The worker is warmed first (math-verify and sympy imported), so its start-up cannot be what the limit
    cuts; the slow check is a worker call that sleeps 60 s, so only the limit can end it early."""
    pool = TimeLimitedPool(1)
    monkeypatch.setattr(mathcheck, "shared_pool", lambda **_: pool)
    try:
        assert check_many([(r"\boxed{4}", "4")], limit=HANG_S)[0].correct  # warm: one worker, idle, ready
        monkeypatch.setattr(mathcheck, "check_math", time.sleep)  # the worker runs time.sleep(60): a hung check
        assert check_many([(60,)], limit=0.05) == [MathVerdict(False, None, None, "timeout")]
        assert pool.timeouts == 1
        monkeypatch.setattr(mathcheck, "check_math", check_math)
        assert check_many([(r"\boxed{4}", "4")], limit=HANG_S)[0].correct  # the killed worker was replaced
    finally:
        pool.close()


def test_pool_kills_a_hung_call_from_a_worker_thread():
    pool = TimeLimitedPool(1)
    box = {}

    def work():
        box["warm"] = pool.call(abs, (-1,), HANG_S)         # the worker is up: the limit below cuts the call itself
        box["result"] = pool.call(time.sleep, (60,), 0.5)  # sleep returns None after 60 s: only the limit ends it
        box["after"] = pool.call(abs, (-3,), HANG_S)        # a fresh worker replaces the killed one

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(HANG_S)
    pool.close()
    assert not thread.is_alive(), "the pool hung"
    assert box == {"warm": 1, "result": TIMED_OUT, "after": 3} and pool.timeouts == 1, box


def test_exception_in_worker_is_an_error_not_a_crash():
    """An exception raised inside the worker (here: an unknown truncation rule) is an incorrect verdict whose
    note names it; the worker survives it and checks the next pair."""
    bad, good = (r"\boxed{1}", "1", "drop"), (r"\boxed{1}", "1")
    verdict, after = check_many([bad, good], limit=HANG_S)
    assert verdict.correct is False and verdict.note.startswith("error: ValueError:"), verdict
    assert "no_answer, whole" in verdict.note, verdict
    assert after.correct and after.note == "boxed", after


def test_math_verifys_own_timeout_is_a_timeout_not_a_wrong_answer(monkeypatch):
    """math-verify's signal limit (inside the worker) used to return "not equal": scored wrong, not in check_timeout.

    Here, in the main thread, math-verify's own 1 s alarm runs for real around a comparison made to block:
    the comparison sleeps 60 s and would then say "equal", so only the alarm can make the verdict a timeout."""
    from math_verify import grader

    from inftythink_eval.scoring import hooks

    def blocked_comparison(*args, **kwargs):
        time.sleep(60)
        return True

    check_math(r"\boxed{3}", "2")  # parse once at the default limit: its first-call set-up is not what is timed
    monkeypatch.setattr(mathcheck, "_INNER_SECONDS", 1)
    monkeypatch.setattr(grader, "sympy_expr_eq", blocked_comparison)
    verdict = check_math(r"\boxed{3}", "2")
    assert verdict == MathVerdict(False, "3", "3", "timeout"), verdict
    judged = hooks.Judged(verdict.answer or "", "response", verdict.correct, verdict.key, verdict.note)
    assert hooks.math_results({"answer": "2"}, [[judged]])["check_timeout"] == 1.0


def test_a_lost_math_verify_alarm_still_counts_as_a_timeout(monkeypatch):
    """math-verify's SIGALRM can fire inside a garbage-collection callback, where Python drops the exception
    (seen in CI: "Exception ignored in ... TimeoutException") and verify runs on to "not equal".  A verify
    that says "not equal" after running past the limit is read as a timeout, whenever the collector ran."""
    import math_verify

    def slow_unequal(gold, pred, **kwargs):   # what verify does when its alarm was lost: runs on, says unequal
        time.sleep(0.3)
        return False

    monkeypatch.setattr(mathcheck, "_INNER_SECONDS", 0.2)
    monkeypatch.setattr(math_verify, "verify", slow_unequal)
    assert mathcheck._mv_equal(["a"], ["b"]) == (False, True)
    monkeypatch.setattr(mathcheck, "_INNER_SECONDS", HANG_S)
    assert mathcheck._mv_equal(["a"], ["b"]) == (False, False)   # well within the limit: a plain "not equal"


def test_math_verify_errors_still_read_as_not_equal():
    assert check_math(r"\boxed{\frac{1}{}}", "2").correct is False  # malformed LaTeX: no crash, no timeout
    assert check_math(r"\boxed{\frac{1}{}}", "2").note != "timeout"


def test_a_workers_start_up_does_not_count_against_the_limit(tmp_path, monkeypatch):
    """A worker whose preload import outlasts the limit (blocked until the test releases it) still serves its first
    call: the limit is the call's own, so a cold worker on a loaded machine is not a timeout."""
    started, release = tmp_path / "started", tmp_path / "release"
    (tmp_path / "slow_start_module.py").write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.05)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    pool = TimeLimitedPool(1, preload=("slow_start_module",))
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=pool.call(abs, (-2,), 2.0)))
    thread.start()
    try:
        wait_until(started.exists, "the worker to begin its preload")
        time.sleep(3.0)  # the import has now lasted longer than the 2 s limit, whatever the machine's speed
        release.touch()
        thread.join(HANG_S)
        assert not thread.is_alive(), "the pool hung"
    finally:
        release.touch()
        pool.close()
    assert box == {"result": 2} and pool.timeouts == 0, box
