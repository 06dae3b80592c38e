"""Math checker internals: box finding, numeric normalisation, voting keys, the hard time limit."""

import threading
import time

from inftythink_eval.result import SampleOutput
from inftythink_eval.scoring import check_many, check_math, last_boxed, normalize_number
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


def test_timeout_counts_as_incorrect_and_is_reported():
    slow = (r"\boxed{(x+1)^{400}-(x-1)^{400}}", r"(x+2)^{400}")  # far beyond 0.05 s of sympy anywhere
    verdicts = check_many([slow] * 2, limit=0.05)
    assert all(not v.correct and v.note == "timeout" for v in verdicts), verdicts


def test_pool_kills_a_hung_call_from_a_worker_thread():
    pool = TimeLimitedPool(1)
    box = {}

    def work():
        start = time.monotonic()
        box["result"] = pool.call(time.sleep, (30,), 0.5)
        box["took"] = time.monotonic() - start
        box["after"] = pool.call(abs, (-3,), 5.0)  # a fresh worker replaces the killed one

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(20)
    pool.close()
    assert box["result"] is TIMED_OUT and box["took"] < 5 and box["after"] == 3 and pool.timeouts == 1


def test_exception_in_worker_is_an_error_not_a_crash():
    verdict = check_many([(r"\boxed{1}", None)])[0]  # gold None: str(None) is not a valid answer, still no crash
    assert verdict.correct is False


def test_math_verifys_own_timeout_is_a_timeout_not_a_wrong_answer(monkeypatch):
    """math-verify's signal limit (inside the worker) used to return "not equal": scored wrong, not in check_timeout."""
    from inftythink_eval.scoring import hooks, mathcheck

    monkeypatch.setattr(mathcheck, "_INNER_SECONDS", 1)  # here, in the main thread, math-verify's own limit fires
    verdict = check_math(r"\boxed{(x+1)^{400}-(x-1)^{400}}", r"(x+2)^{400}")
    assert not verdict.correct and verdict.note == "timeout", verdict
    judged = hooks.Judged(verdict.answer or "", "response", verdict.correct, verdict.key, verdict.note)
    assert hooks.math_results({"answer": "(x+2)^{400}"}, [[judged]])["check_timeout"] == 1.0


def test_a_lost_math_verify_alarm_still_counts_as_a_timeout(monkeypatch):
    """math-verify's SIGALRM can fire inside a garbage-collection callback, where Python drops the exception
    (seen in CI: "Exception ignored in ... TimeoutException") and verify runs on to "not equal".  A verify
    that says "not equal" after running past the limit is read as a timeout, whenever the collector ran."""
    import time

    import math_verify

    from inftythink_eval.scoring import mathcheck

    def slow_unequal(gold, pred, **kwargs):   # what verify does when its alarm was lost: runs on, says unequal
        time.sleep(0.3)
        return False

    monkeypatch.setattr(mathcheck, "_INNER_SECONDS", 0.2)
    monkeypatch.setattr(math_verify, "verify", slow_unequal)
    assert mathcheck._mv_equal(["a"], ["b"]) == (False, True)
    monkeypatch.setattr(mathcheck, "_INNER_SECONDS", 5)
    assert mathcheck._mv_equal(["a"], ["b"]) == (False, False)   # within the limit: a plain "not equal"


def test_math_verify_errors_still_read_as_not_equal():
    assert check_math(r"\boxed{\frac{1}{}}", "2").correct is False  # malformed LaTeX: no crash, no timeout
    assert check_math(r"\boxed{\frac{1}{}}", "2").note != "timeout"
