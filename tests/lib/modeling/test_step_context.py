"""Tests of colorgan.modeling.step_context: the values a training step hands its layers while it traces them."""

import threading

from colorgan.modeling import step_context


def test_a_step_value_is_set_inside_its_block_nests_and_is_restored_after_an_error():
    value = step_context.StepValue()
    assert value.get() is None
    with value.set("outer") as given:
        assert given == "outer" == value.get()
        try:
            with value.set("inner"):
                assert value.get() == "inner"
                raise RuntimeError
        except RuntimeError:
            pass
        assert value.get() == "outer"
    assert value.get() is None


def test_each_thread_sees_only_the_value_it_set():
    """MirroredStrategy traces each replica in a thread of its own: one replica's value must not leak to another."""
    value = step_context.StepValue()
    inside, seen = threading.Event(), {}

    def other_replica():
        inside.wait()
        seen["other"] = value.get()
        with value.set(1):
            seen["own"] = value.get()

    thread = threading.Thread(target=other_replica)
    thread.start()
    with value.set(0):
        inside.set()
        thread.join()
        assert value.get() == 0
    assert seen == {"other": None, "own": 1}
