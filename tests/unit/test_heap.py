"""bot.main.settle_heap: what startup made is moved out of the garbage collector's sight (in a process of
its own here: freezing the test process would keep everything the suite made so far)."""
import json
import subprocess
import sys
import textwrap


def test_settle_heap_freezes_what_startup_made_and_raises_the_young_threshold():
    script = textwrap.dedent("""
        import gc, json
        from bot.app import create_app  # startup's modules
        from bot.main import GC_YOUNG_THRESHOLD, settle_heap
        made = [object() for _ in range(3)], {"kept": [1, 2, 3]}  # containers made before the first update
        before = gc.get_freeze_count()
        settle_heap()
        print(json.dumps({"before": before, "after": gc.get_freeze_count(), "threshold": gc.get_threshold(),
                          "young": GC_YOUNG_THRESHOLD, "collected": gc.collect()}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0
    assert seen["after"] > 10_000  # the modules, routers and machinery imported above
    assert seen["threshold"][0] == seen["young"] >= 10_000
    assert seen["collected"] == 0  # nothing frozen is collected again
